/**
 * The plan's pick among free workers at a large fleet's burst end (issue 25,
 * docs/benchmarks.md Scale part 9). A request goes to a free worker only if
 * that worker finishes it about as early as the best one (PREFER_FREE); at
 * a burst's end on 4,096 workers the idle ones are the half-speed quarter,
 * which no queued request should go to while fast workers free up sooner.
 * The plan walked every idle slow worker for every queued request (1,600 x
 * 1,024), a round of ~460 ms of CPU that every GPU waited for; now a group
 * of workers whose least time for the request is already past the limit is
 * skipped whole (free-time-index.ts firstFree). The work is counted (cost
 * reads), not timed, and the picks are compared with the walk over every
 * free worker they replace.
 */
import { describe, expect, it } from "vitest";
import { planBoard, type Board, type BoardItem } from "../src/scheduler/board-plan.js";
import { FreeTimeIndex } from "../src/scheduler/free-time-index.js";
import { prng } from "../src/sim/picture.js";

const N = 4096;
const FAST_MS = 2040; // 512x512, 50 steps on a speed-1 GPU in bench:scale
const NOW = 10_000;

/** 3,072 fast workers busy for `fastBusyMs` more, 1,024 half-speed ones idle. */
function burstEnd(fastBusyMs: number): Board {
  const slowW = (w: number) => w % 4 === 3;
  return {
    busy: Float64Array.from({ length: N }, (_, w) => (slowW(w) ? 0 : NOW + fastBusyMs)),
    free: Int32Array.from({ length: N }, (_, w) => (slowW(w) ? 1 : 0)),
    noise: new Float64Array(N).fill(0.02),
    group: Int32Array.from({ length: N }, (_, w) => (slowW(w) ? 1 : 0)),
    learned: new Uint8Array(N).fill(1),
    other: Array.from({ length: N }, () => null),
  };
}

/** `count` queued requests of one class over the whole fleet; the cost array counts its reads. */
function queued(count: number): { items: BoardItem[]; reads: () => number } {
  let reads = 0;
  const costs = Float64Array.from({ length: N }, (_, w) => (w % 4 === 3 ? 2 * FAST_MS : FAST_MS));
  const cost = new Proxy(costs, {
    get(target, key) {
      if (typeof key === "string" && key.length > 0 && key.charCodeAt(0) <= 57) reads++;
      return Reflect.get(target, key) as unknown;
    },
  });
  const pool = Int32Array.from({ length: N }, (_, w) => w);
  const floors = Float64Array.of(FAST_MS, 2 * FAST_MS);
  return { items: Array.from({ length: count }, () => ({ pool, cost, floors })), reads: () => reads };
}

describe("a burst's end on 4,096 workers: 1,600 queued, the half-speed quarter idle", () => {
  it("fast workers free within 0.5 s: nothing goes to a slow worker, and the round reads a few costs per request, not one per idle worker", () => {
    const { items, reads } = queued(1600);
    const sends = planBoard(items, burstEnd(500), NOW, 0, false);
    // 4.08 s on an idle slow worker against 2.54 s on a fast one free in 0.5 s: every request waits for a fast one.
    expect(sends).toEqual([]);
    // Before: every request walked the 1,024 idle slow workers (1.6 M reads).
    expect(reads()).toBeLessThan(1600 * 8);
  });

  it("fast workers busy for 3 s more: the idle slow workers take the first 1,024 requests, each its own, in the rotating order", () => {
    const { items } = queued(1600);
    const sends = planBoard(items, burstEnd(3000), NOW, 0, false);
    expect(sends).toHaveLength(1024);
    const workers = sends.map(([, w]) => w);
    expect(new Set(workers).size).toBe(1024);
    expect(workers.every((w) => w % 4 === 3)).toBe(true);
    expect(sends.map(([i]) => i)).toEqual(Array.from({ length: 1024 }, (_, i) => i));
  });
});

describe("a burst's end on 4,096 workers: 2,048 fast workers idle, their floors 3% low (a floor only goes down between full rounds)", () => {
  it("600 queued each go to their own idle fast worker, and the round reads a few costs per request, not one per idle worker", () => {
    let reads = 0;
    // Fast workers' learned costs differ by up to 2% (one group); the slow quarter is busy.
    const costs = Float64Array.from({ length: N }, (_, w) => (w % 4 === 3 ? 2 * FAST_MS : FAST_MS * (1 + 0.02 * ((w * 7919) % 100) / 100)));
    const cost = new Proxy(costs, {
      get(target, key) {
        if (typeof key === "string" && key.length > 0 && key.charCodeAt(0) <= 57) reads++;
        return Reflect.get(target, key) as unknown;
      },
    });
    const pool = Int32Array.from({ length: N }, (_, w) => w);
    const floors = Float64Array.of(FAST_MS * 0.97, 2 * FAST_MS);
    const items: BoardItem[] = Array.from({ length: 600 }, () => ({ pool, cost, floors }));
    const board = burstEnd(0);
    // Half the fast workers idle, the rest and the slow quarter busy for 5 s.
    for (let w = 0; w < N; w++) {
      const idle = w % 4 !== 3 && w % 2 === 0;
      board.busy[w] = idle ? 0 : NOW + 5000;
      board.free[w] = idle ? 1 : 0;
    }
    const sends = planBoard(items, board, NOW, 0, false);
    expect(sends).toHaveLength(600);
    expect(new Set(sends.map(([, w]) => w)).size).toBe(600);
    expect(sends.every(([, w]) => w % 4 !== 3 && w % 2 === 0)).toBe(true);
    // Before: each request's search walked every idle fast worker left (~1 M reads).
    expect(reads).toBeLessThan(600 * 8);
  });
});

describe("the free-time index's pick among free workers (firstFree)", () => {
  it("300 seeded random boards: the same worker as a walk over every free worker, with closed groups never looked at", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = prng(seed);
      const W = 1 + Math.floor(r() * 300);
      const now = 100;
      const busy = Float64Array.from({ length: W }, () => (r() < 0.5 ? 0 : r() * 3000));
      const free = Int32Array.from(busy, (b) => (b <= now ? 1 : 0));
      const speed = Float64Array.from({ length: W }, () => [0.5, 1, 1.5][Math.floor(r() * 3)]!);
      const group = Int32Array.from(speed, (s) => [0.5, 1, 1.5].indexOf(s));
      const noise = Float64Array.from({ length: W }, () => (r() < 0.3 ? r() * 0.2 : 0));
      const pool = Int32Array.from({ length: W }, (_, k) => k).filter(() => r() < 0.8);
      if (pool.length === 0) continue;
      const index = new FreeTimeIndex(pool, busy, free, now, group, noise);
      for (let step = 0; step < 20; step++) {
        const ms = 50 + r() * 400;
        const limit = now + r() * 1500;
        const accept = (k: number) => now + ms / speed[k]! <= limit;
        // A group is open when its fastest time (the floor) can meet the limit.
        const floors = [ms / 0.5, ms, ms / 1.5];
        const closed = new Set<number>();
        const open = (g: number, groupNoise: number) => {
          expect(groupNoise).toBe(Math.max(0, ...Array.from(pool).filter((k) => group[k] === g).map((k) => noise[k]!)));
          const ok = now + floors[g]! <= limit;
          if (!ok) closed.add(g);
          return ok;
        };
        const start = Math.floor(r() * pool.length);
        let walked = -1;
        for (const k of index.freeFrom(start)) {
          if (accept(k)) {
            walked = k;
            break;
          }
        }
        const looked: number[] = [];
        const picked = index.firstFree(start, open, (k) => (looked.push(k), accept(k)));
        expect(picked, `seed ${seed} step ${step}`).toBe(walked);
        expect(looked.some((k) => closed.has(group[k]!))).toBe(false);
        // Take it (or a random free worker), as a plan round does, and pick again.
        const taken = picked >= 0 ? picked : [...index.freeFrom(0)][0];
        if (taken === undefined) break;
        busy[taken] = now + ms;
        free[taken] = 0;
        index.raised(taken, true);
      }
    }
  });
});
