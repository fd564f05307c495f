/**
 * The direct plan's rule (src/scheduler/direct-plan.ts), table-tested: which
 * class a free worker takes, given the other workers' free times and the
 * requests queued ahead. Workers of group 0 run at speed 1, group 1 at 0.5.
 */
import { describe, expect, it } from "vitest";
import type { Board } from "../src/scheduler/board-plan.js";
import { DirectPlanner, type DirectClass } from "../src/scheduler/direct-plan.js";

/** `speeds` per worker; `busyUntil` per worker (<= now: free). */
function boardOf(speeds: number[], busyUntil: number[], now: number): Board {
  return {
    busy: Float64Array.from(busyUntil, (b) => Math.max(b, now)),
    free: Int32Array.from(busyUntil, (b) => (b <= now ? 1 : 0)),
    noise: new Float64Array(speeds.length),
    group: Int32Array.from(speeds, (s) => (s === 1 ? 0 : 1)),
    learned: new Uint8Array(speeds.length).fill(1),
    other: speeds.map(() => null),
  };
}

/** Classes of requests costing `ms` at speed 1 (twice that at 0.5), with their counts, largest first. */
function classesOf(speeds: number[], spec: [ms: number, count: number][]): DirectClass[] {
  return spec.map(([ms, count]) => ({ cost: Float64Array.from(speeds, (s) => ms / s), floors: Float64Array.of(ms, ms * 2), count }));
}

interface Case {
  name: string;
  speeds: number[];
  busyUntil: number[];
  classes: [number, number][];
  /** [class index, worker] sends expected. */
  expected: [number, number][];
}

const now = 0;
const cases: Case[] = [
  {
    name: "a fast worker frees with a long queue: it takes the largest class",
    speeds: [1, 1, 1, 0.5],
    busyUntil: [0, 500, 900, 700],
    classes: [[1000, 40], [400, 40], [50, 40]],
    expected: [[0, 0]],
  },
  {
    name: "a slow worker frees with a long queue: not the largest (the fast ones finish it sooner), the largest it finishes no later than they would reach it",
    speeds: [1, 1, 1, 0.5],
    busyUntil: [100, 100, 100, 0],
    classes: [[1000, 10], [400, 10], [50, 10]],
    expected: [[1, 3]],
  },
  {
    name: "a slow worker frees with a short queue: the fast ones soon free take everything, it stays free",
    speeds: [1, 1, 1, 0.5],
    busyUntil: [10, 10, 10, 0],
    classes: [[1000, 1], [400, 1]],
    expected: [],
  },
  {
    name: "two free workers, fast and slow: the fast takes the head; the slow the largest class it is worth",
    speeds: [1, 0.5, 1, 1, 1],
    busyUntil: [0, 0, 300, 300, 300],
    classes: [[1000, 6], [400, 6], [100, 6]],
    expected: [[0, 0], [1, 1]],
  },
  {
    name: "the last request of a class taken: the next free worker goes on to the next class",
    speeds: [1, 1, 1, 1],
    busyUntil: [0, 0, 5000, 5000],
    classes: [[1000, 1], [400, 5]],
    expected: [[0, 0], [1, 1]],
  },
  {
    name: "nobody else in the pool: the free worker takes the head whatever its speed",
    speeds: [0.5],
    busyUntil: [0],
    classes: [[1000, 3], [10, 3]],
    expected: [[0, 0]],
  },
];

describe("direct plan: the class a free worker takes", () => {
  for (const c of cases) {
    it(c.name, () => {
      const board = boardOf(c.speeds, c.busyUntil, now);
      const classes = classesOf(c.speeds, c.classes);
      const pool = Int32Array.from(c.speeds, (_, k) => k);
      const sends = new DirectPlanner().plan(classes, board, pool, now, 0);
      expect(sends).toEqual(c.expected);
      // What was given is counted off its class, and its worker is busy with it.
      for (const [ci, k] of sends) {
        expect(board.free[k]).toBe(0);
        expect(board.busy[k]).toBe(now + c.classes[ci]![0] / c.speeds[k]!);
      }
      const given = c.classes.map((_, ci) => sends.filter(([x]) => x === ci).length);
      expect(classes.map((x) => x.count)).toEqual(c.classes.map(([, n], ci) => n - given[ci]!));
    });
  }

  it("a planner reused across rounds of different fleets answers each from its own inputs", () => {
    const planner = new DirectPlanner();
    const big = Array.from({ length: 300 }, (_, k) => (k % 4 === 3 ? 0.5 : 1));
    const busy = big.map((_, k) => (k === 0 ? 0 : 1000 + k));
    expect(planner.plan(classesOf(big, [[800, 500], [100, 500]]), boardOf(big, busy, now), Int32Array.from(big, (_, k) => k), now)).toEqual([[0, 0]]);
    const small = [0.5, 1];
    expect(planner.plan(classesOf(small, [[800, 1], [100, 1]]), boardOf(small, [0, 50], now), Int32Array.of(0, 1), now)).toEqual([[1, 0]]);
  });
});
