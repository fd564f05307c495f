/**
 * The first burst after workers changed speed (issue 20, the bench's `drift`
 * fleet): 8 equal workers (60 ms per output, cost ~ pixels^1.4), then three
 * of them 3x slower, then recovered; the router is not told. Through the
 * router's real admission, cost model and planner on a virtual fleet
 * (test/helpers/virtual-fleet.ts: the sim's own formula, a virtual clock, so
 * no figure here depends on the machine's speed).
 *
 * Before: the burst right after the slowdown took 1.41-1.69x the offline plan
 * (LPT knowing the new speeds) when it arrived at once (a rollout job): the
 * burst's largest requests went out in its first plan, three of them to the
 * slowed workers (nothing had told the router yet), and a slowed worker's
 * first slow answer did not move its speed (one answer may be a stall), so
 * it was then sent more work sized for the old speed. Now a worker idle for
 * a while before a burst is probed with a small request first, and a last
 * answer 2x off its prediction counts until the next one.
 */
import { describe, expect, it } from "vitest";
import { LoadBook } from "../src/admission/loads.js";
import type { Ticket } from "../src/admission/ticket.js";
import { Registry } from "../src/registry/registry.js";
import { readRequestFacts } from "../src/scheduler/request-facts.js";
import { speedChangeRatios } from "./helpers/speed-changes.js";
import { rng, serviceMs, type Job, type VirtualGpu } from "./helpers/virtual-fleet.js";

const MIX = { sizes: ["512x512", "768x768", "1024x1024", "1536x1536"], steps: [20, 30], n: [1, 2, 3, 4] };

/** `count` images (48 as the bench's drift fleet draws them, 24 with --quick: 512² to 1536², 20/30 steps, 1-4 outputs, seeded). */
function burst(random: () => number, count = 48): Job[] {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  return Array.from({ length: count }, (_, i) => ({ body: { prompt: `p${i}`, size: pick(MIX.sizes), num_inference_steps: pick(MIX.steps), n: pick(MIX.n), seed: i } }));
}

/** The bench's drift workers, 3x slower overall (its --slowdown 3): jobs of 0.3-10 s. */
const BASE: VirtualGpu = { speed: 1 / 3, outputMs: 60, pixelExponent: 1.4 };
/** Worker i's speed factor in burst b: workers 0-2 are 3x slower in bursts 2 and 3, back from 4. */
const factor = (b: number, i: number) => (i < 3 && (b === 2 || b === 3) ? 1 / 3 : 1);

/** Makespan / offline LPT (which knows each burst's speeds) of bursts 0-5, burst 0 the warm-up. */
async function drift(seed: number, arrivalsPerTurn: number, count = 48): Promise<number[]> {
  const random = rng(seed);
  return speedChangeRatios({ base: BASE, workers: 8, factor, bursts: 6, gapMs: 2000, arrivalsPerTurn, burst: () => burst(random, count) });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

describe("drift: three of eight workers 3x slower, then recovered", () => {
  for (const [name, perTurn] of [
    ["a burst that arrives at once (a rollout job)", Infinity],
    ["a burst that arrives 4 requests per event-loop turn (HTTP)", 4],
  ] as const) {
    it(`${name}: the first burst after the slowdown and after the recovery <= 1.15x offline LPT, later bursts <= 1.05x (median), on 4 seeds`, async () => {
      for (let seed = 1; seed <= 4; seed++) {
        const r = await drift(seed, perTurn);
        console.log(`seed ${seed}: ${r.map((x) => x.toFixed(3)).join(" ")} (warm-up, steady, slowed, slowed, recovered, recovered)`);
        expect(r[2], `seed ${seed}, first burst after the slowdown`).toBeLessThanOrEqual(1.15);
        expect(r[4], `seed ${seed}, first burst after the recovery`).toBeLessThanOrEqual(1.15);
        const later = [r[1]!, r[3]!, r[5]!].sort((a, b) => a - b);
        expect(later[1], `seed ${seed}, median of the other bursts after the warm-up`).toBeLessThanOrEqual(1.05);
      }
    });
  }
});

describe("drift with bursts of 24 (bench --quick: 3 requests per worker)", () => {
  // A slowed worker has 6-7 observations at the second burst after its change: the cost model's
  // change detection (8) does not see it yet, so only the 2x-miss bridge (from 4 observations,
  // was 8) keeps a large request off it. Before: 1.172. (At 4 arrivals per event-loop turn the
  // median went from 1.156 to 1.124, and to 1.154 after main's batch units were merged: not asserted.)
  it("a burst that arrives at once: the second burst after the slowdown <= 1.15x offline LPT (median of 10 seeds)", async () => {
    const second: number[] = [];
    for (let seed = 1; seed <= 10; seed++) second.push((await drift(seed, Infinity, 24))[3]!);
    console.log(`24 a burst, at once: second burst after the slowdown ${second.map((x) => x.toFixed(3)).join(" ")}`);
    expect(median(second)).toBeLessThanOrEqual(1.15);
  });

  it("a burst that arrives 4 requests per event-loop turn (HTTP): the second burst after the slowdown <= 1.10x offline LPT (median of 10 seeds)", async () => {
    // The bench's case through the router: a slowed worker's stale probe answered 2.1x slow, and the
    // cost model, which had learned half of it, predicted its next request 1.8x fast; the 2x-miss
    // bridge ended there and a 6 s request was planned at 3.3 s. A run of misses now keeps the
    // stretch (MISS_AGAIN). Before: median 1.154 (1.007-1.323); now 1.014 (1.000-1.057).
    const second: number[] = [];
    for (let seed = 1; seed <= 10; seed++) second.push((await drift(seed, 4, 24))[3]!);
    console.log(`24 a burst, 4 per turn: second burst after the slowdown ${second.map((x) => x.toFixed(3)).join(" ")}`);
    expect(median(second)).toBeLessThanOrEqual(1.1);
  });
});

describe("drift's first slowed burst, whatever the arrival order (bursts of 24, bench --quick)", () => {
  // The burst after the slowdown arriving 1, 4 or 16 requests per event-loop turn (HTTP): planned as
  // its requests came, each stale worker's first request was whatever arrived first, and a large one
  // on a worker that slowed during the gap ended 2-3x late (bench's own bursts at 4 per turn: 2.21;
  // these seeds on main up to 1.93). Now a burst that finds stale workers is gathered before its first plan
  // (one more turn, then while arrivals come, at most 25 ms), so each stale worker first gets a small
  // probe, and a stale worker's first answer counts as a miss from 1.25x (not 2x) and from 2
  // observations, so its slowdown holds in the next plan. Before (main, 8a9a1d0), first slowed at 1 per turn 1.086 1.252 1.072 0.985 1.586 1.934, at 4 1.086 1.251
  // 1.041 0.980 1.454 1.933, at 16 1.135 1.016 1.033 1.026 0.987 1.045; now at most 1.089. Cost: every burst after a
  // gap is probed, as one arriving at once was: the second slowed burst at 4 per turn median 1.013 -> 1.046.
  for (const perTurn of [1, 4, 16]) {
    it(`${perTurn} arrival(s) per turn: the first burst after the slowdown <= 1.15x offline LPT on each of 6 seeds, the second <= 1.15x (median)`, async () => {
      const first: number[] = [];
      const second: number[] = [];
      for (let seed = 1; seed <= 6; seed++) {
        const r = await drift(seed, perTurn, 24);
        first.push(r[2]!);
        second.push(r[3]!);
      }
      console.log(`24 a burst, ${perTurn} per turn: first slowed ${first.map((x) => x.toFixed(3)).join(" ")}; second ${second.map((x) => x.toFixed(3)).join(" ")}`);
      first.forEach((x, i) => expect(x, `seed ${i + 1}, first burst after the slowdown`).toBeLessThanOrEqual(1.15));
      expect(median(second)).toBeLessThanOrEqual(1.15);
    });
  }
});

describe("a worker's first slow answer (LoadBook)", () => {
  // One worker of a fleet that was fast for 12 requests, then 3x slower (or one stall).
  const setup = () => {
    let now = 0;
    const registry = new Registry();
    const { worker } = registry.add("http://10.0.0.1:8000", { capabilities: { taskType: "T2I", videoSupport: false, models: ["Qwen/Qwen-Image"] } });
    const loads = new LoadBook(() => now);
    const body = { prompt: "p", size: "1024x1024", num_inference_steps: 30, n: 2 };
    const ticket = (): Ticket => {
      const facts = readRequestFacts("image", body, null);
      return { demand: { kind: "image", model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
    };
    const trueMs = (factor: number) => serviceMs({ ...BASE, speed: BASE.speed * factor }, body);
    const answer = (factor: number) => {
      const t = ticket();
      const run = loads.start(worker, t, null);
      now += trueMs(factor);
      loads.end(run, t, { ok: true, doneMs: now });
    };
    /** What the planner takes the next such request to cost on the worker: prediction x slowdown. */
    const planned = () => loads.predictMs(ticket().facts.work, worker) * loads.slowdown(worker, now);
    return { answer, planned, trueMs };
  };

  it("after one answer 3x slower the next request is planned within 25% of its 3x time, and after the second too; recovered, never planned faster than it is and within 25% of its time from its 5th fast answer (1.95x after the 1st)", () => {
    const { answer, planned, trueMs } = setup();
    for (let k = 0; k < 13; k++) answer(1);
    expect(Math.abs(planned() / trueMs(1) - 1)).toBeLessThan(0.05);
    answer(1 / 3);
    expect(Math.abs(planned() / trueMs(1 / 3) - 1)).toBeLessThan(0.25);
    answer(1 / 3);
    expect(Math.abs(planned() / trueMs(1 / 3) - 1)).toBeLessThan(0.25);
    // Recovery is learned by recency only (the two slow answers are the worker's whole history
    // since its change, and a change needs 8): planned slower than it is for a few answers, which
    // under-uses it but makes no tail.
    const over: number[] = [];
    for (let k = 0; k < 8; k++) {
      answer(1);
      over.push(planned() / trueMs(1));
    }
    for (const x of over) expect(x).toBeGreaterThan(0.9);
    expect(Math.abs(over[4]! - 1)).toBeLessThan(0.25);
  });

  it("a worker with few observations (5, as a bench --quick worker has): after two answers 3x slower its next request is planned within 25% of its 3x time", () => {
    // The cost model's change detection needs 8 observations, and after two slow answers of seven it
    // predicted the worker ~1.8x slower; the 2x-miss stretch ended at the second answer (1.8x off
    // what the model predicted then), so a large request went to it planned at half its time.
    const { answer, planned, trueMs } = setup();
    for (let k = 0; k < 6; k++) answer(1);
    answer(1 / 3);
    expect(Math.abs(planned() / trueMs(1 / 3) - 1)).toBeLessThan(0.25);
    answer(1 / 3);
    expect(Math.abs(planned() / trueMs(1 / 3) - 1)).toBeLessThan(0.25);
  });

  it("one stall (one answer 3x slow between fast ones) counts for that worker's next request only", () => {
    const { answer, planned, trueMs } = setup();
    for (let k = 0; k < 13; k++) answer(1);
    answer(1 / 3);
    answer(1);
    expect(Math.abs(planned() / trueMs(1) - 1)).toBeLessThan(0.1);
  });
});
