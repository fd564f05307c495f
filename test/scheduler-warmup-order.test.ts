/**
 * The queue's order while the fleet learns (issue 25, docs/benchmarks.md
 * Scale part 6 point 2.4 and part 7). A queued request's key is its
 * fleet-average prediction minus its arrival time (largest first, ageing);
 * during a warm-up the fleet's learned shape is wrong for seconds (it has
 * seen one size at a time), so large requests that arrived then were keyed
 * as small, waited behind smaller ones that came earlier and were sent last:
 * the burst ended with its largest requests on whatever workers were free.
 * Now the queue's keys move with the shape when a refit is put in place
 * (admission/queue-keys.ts).
 *
 * Through the router's real admission, cost model and planner on a virtual
 * fleet (test/helpers/virtual-fleet.ts): 256 workers (3/4 at speed 1, 1/4 at
 * 0.5, jobs of 0.1-8 s as bench:scale runs them), a cold cost model, the
 * burst arriving 8 requests per event-loop turn and 2 ms of router time per
 * turn (fixed, so that nothing here depends on the machine's load): the
 * arrivals take ~0.5 s while the first answers already teach the model.
 * Before: 1.30, 1.23 and 1.07 of the bound for seeds 1-3, the first two
 * ending with a 1024x1024, 50-step request; now 1.035-1.050, the largest
 * requests all done by 86% of the makespan.
 */
import { describe, expect, it } from "vitest";
import { boundMs, mixedBurst, rng, VirtualFleet } from "./helpers/virtual-fleet.js";

const gpus = Array.from({ length: 256 }, (_, i) => ({ speed: (i % 4 === 3 ? 0.5 : 1) / 20 }));

describe("a warm-up whose first learned shape is wrong", () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: its largest requests go first once the shape is learned, and the burst ends within 1.07 of the bound`, async () => {
      const fleet = new VirtualFleet(gpus, "earliest-finish", { arrivalsPerTurn: 8, routerCpu: 2 });
      const jobs = mixedBurst(rng(seed), 8 * gpus.length);
      const { makespanMs } = await fleet.burst(jobs);
      const ratio = makespanMs / boundMs(gpus, jobs);
      const largest = fleet.trace.filter((e) => e.body.size === "1024x1024" && e.body.num_inference_steps === 50);
      const largestEnd = Math.max(...largest.map((e) => e.endMs)) / makespanMs;
      console.log(`seed ${seed}: makespan / bound ${ratio.toFixed(3)}, the last of ${largest.length} 1024x1024 50-step requests ended at ${(100 * largestEnd).toFixed(0)}% of the makespan`);
      expect(jobs.length).toBe(fleet.trace.length);
      // Largest first: the burst's tail is small requests, not a large one sent late.
      expect(largestEnd).toBeLessThan(0.95);
      expect(ratio).toBeLessThanOrEqual(1.07);
    });
  }
});
