/**
 * The bench's `straggler` fleet (issue 20): 8 equal Qwen-Image workers; before
 * each measured burst another one of them is set 4x slower while the fleet is
 * idle, unknown to the router (the one slowed before recovers). Through the
 * router's real admission, cost model and planner on a virtual fleet
 * (test/helpers/virtual-fleet.ts: the sim's formula, a virtual clock; it has
 * no hedging, so what it shows is the plan's own).
 *
 * Before: with the bench's --quick bursts (16 images, 62 ms - 1.3 s) the
 * straggler's stale probe (the burst's smallest request, 62 ms) answered in
 * ~250 ms, ~170 ms beyond its prediction: under the 250 ms floor of a miss,
 * so the worker looked fast again and was sent a 1.3 s request that took 5 s
 * (through the router 2.9-3.3x the bound). A stale worker's first answer now
 * counts as a miss from 100 ms (misses.ts MISS_GAP_MIN_MS), against the lesser of
 * its prediction at the send and after learning from it (straggler9: with two
 * observations the model had absorbed a 4x probe at its own size, 1.3x off).
 */
import { describe, expect, it } from "vitest";
import { speedChangeRatios } from "./helpers/speed-changes.js";
import { rng, type Job, type VirtualGpu } from "./helpers/virtual-fleet.js";

/** bench/lib/fleets.mjs IMAGES: 512² to 1024², 30/40 steps, 1-4 outputs, seeded. */
const IMAGES = { sizes: ["512x512", "768x768", "1024x1024"], steps: [30, 40], n: [1, 2, 3, 4] };

function burst(random: () => number, count: number): Job[] {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  return Array.from({ length: count }, (_, i) => ({ body: { prompt: `p${i}`, size: pick(IMAGES.sizes), num_inference_steps: pick(IMAGES.steps), n: pick(IMAGES.n), seed: i } }));
}

/** The bench's speed (--quick: --slowdown 1). */
const BASE: VirtualGpu = { speed: 1 };
/** Burst b slows worker b - 1 to a quarter (the warm-up, burst 0, none). */
const factor = (b: number, i: number) => (b >= 1 && i === (b - 1) % 8 ? 0.25 : 1);

/** Makespan / offline LPT (knowing that burst's speeds) of bursts 0..bursts-1, burst 0 the warm-up. */
async function straggler(seed: number, count: number, arrivalsPerTurn: number, bursts = 5): Promise<number[]> {
  const random = rng(seed);
  // The bench runs the other algorithms' bursts in between: every worker is stale at the next.
  return speedChangeRatios({ base: BASE, workers: 8, factor, bursts, gapMs: 5000, arrivalsPerTurn, burst: () => burst(random, count) });
}

describe("straggler: another of eight workers 4x slower each burst, unknown to the router", () => {
  // [burst size, arrivals per event-loop turn, the measured bursts checked (1 = first after the warm-up), the bound each must meet].
  // Main before (cced566), same seeds: 32 at 4 per turn 1.006-2.106 (median 1.392), now 0.991-1.065;
  // 16 at 4 per turn up to 2.209 (four bursts over 1.6), now up to 1.321; 16 at once bursts 2-4 up
  // to 2.206, now up to 1.319. The first burst of 16 arriving at once was 2.1-2.3 on 3 of 6 seeds
  // until straggler9 (da30f7f: 2.202, 2.115, 2.305 on seeds 2, 4, 5), now 1.098-1.319: the probe's
  // miss is judged against its send-time prediction too (loads.ts, docs/decisions.md).
  for (const [count, perTurn, from, bound] of [
    [32, 4, 1, 1.15],
    [16, 4, 1, 1.35],
    [16, Infinity, 1, 1.35],
  ] as const) {
    it(`bursts of ${count}, ${perTurn} arrival(s) per turn: every burst from the ${from === 1 ? "first" : "second"} after the warm-up <= ${bound}x offline LPT, on 6 seeds`, async () => {
      for (let seed = 1; seed <= 6; seed++) {
        const r = await straggler(seed, count, perTurn);
        console.log(`${count} a burst, ${perTurn} per turn, seed ${seed}: ${r.map((x) => x.toFixed(3)).join(" ")} (warm-up, then a new straggler each)`);
        // A straggler sent a 1.3 s request as if fast ends its burst at 1.5-2.3x here (no hedging in the virtual fleet).
        for (let b = from; b < r.length; b++) expect(r[b], `seed ${seed}, burst ${b}`).toBeLessThanOrEqual(bound);
      }
    });
  }
});
