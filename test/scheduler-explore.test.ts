/**
 * Exploration under sequential traffic (issue 20): one request at a time on
 * an idle fleet of 8 workers, three of which became 3x slower for a while
 * (another tenant, a throttled GPU) and then recovered; the router is not
 * told. Before, earliest-finish sent every request to the workers measured
 * fast, so a worker once measured slow was never sent anything again: it
 * stayed out for the whole run after it recovered. Now a worker left out for
 * a while may take a request within an allowance that grows with how long
 * it was left out (src/admission/explore.ts). Through the router's real
 * admission, cost model and planner on a virtual fleet (virtual clock, the
 * sim's own formula: no figure depends on the machine's speed).
 */
import { describe, expect, it } from "vitest";
import { rng, serviceMs, VirtualFleet, type Job, type VirtualGpu } from "./helpers/virtual-fleet.js";

const MIX = { sizes: ["512x512", "768x768", "1024x1024", "1536x1536"], steps: [20, 30], n: [1, 2, 3, 4] };

function jobs(random: () => number, count: number): Job[] {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  return Array.from({ length: count }, (_, i) => ({ body: { prompt: `p${i}`, size: pick(MIX.sizes), num_inference_steps: pick(MIX.steps), n: pick(MIX.n), seed: i } }));
}

/** The bench's drift workers (3x slower overall, as with its --slowdown 3): jobs of 0.3-10 s. */
const BASE: VirtualGpu = { speed: 1 / 3, outputMs: 60, pixelExponent: 1.4 };
const SLOW = [0, 1, 2];

interface Phase {
  /** Requests each worker served, by fleet index, in send order. */
  order: number[];
  /** Sum of the requests' times / the same requests' times on a fast worker. */
  timeRatio: number;
}

/** `count` requests one at a time (each after the previous answered, 100 ms apart). */
async function sequential(fleet: VirtualFleet, random: () => number, count: number): Promise<Phase> {
  const workers = [...fleet.gpus.keys()];
  const order: number[] = [];
  let took = 0;
  let fast = 0;
  for (const job of jobs(random, count)) {
    const { makespanMs, served } = await fleet.burst([job]);
    order.push(workers.indexOf([...served.keys()][0]!));
    took += makespanMs;
    fast += serviceMs(BASE, job.body);
    fleet.nowMs += 100;
  }
  return { order, timeRatio: took / fast };
}

async function run(seed: number): Promise<{ slowed: Phase; recovered: Phase }> {
  const fleet = new VirtualFleet(Array.from({ length: 8 }, () => BASE));
  const workers = [...fleet.gpus.keys()];
  const random = rng(seed);
  const setSlow = (factor: number) => SLOW.forEach((i) => (fleet.gpus.get(workers[i]!)!.speed = BASE.speed * factor));
  // Warm-up: every worker learned at its speed, then three of them 3x slower and learned so in a burst.
  for (let b = 0; b < 2; b++) {
    await fleet.burst(jobs(random, 48));
    fleet.nowMs += 2000;
  }
  setSlow(1 / 3);
  for (let b = 0; b < 2; b++) {
    await fleet.burst(jobs(random, 48));
    fleet.nowMs += 2000;
  }
  const slowed = await sequential(fleet, random, 400);
  setSlow(1);
  const recovered = await sequential(fleet, random, 400);
  return { slowed, recovered };
}

describe("sequential traffic on an idle fleet: three of eight workers 3x slower, then recovered", () => {
  it("a still-slow worker gets at most 3% of the requests and costs at most 5% in time; each recovered worker gets work back within 200 requests and then about its share", async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const { slowed, recovered } = await run(seed);
      const share = slowed.order.filter((i) => SLOW.includes(i)).length / slowed.order.length;
      const firstBack = SLOW.map((i) => recovered.order.indexOf(i));
      const lastHalf = recovered.order.slice(200);
      const counts = SLOW.map((i) => lastHalf.filter((x) => x === i).length);
      console.log(
        `seed ${seed}: still slow: ${(share * 100).toFixed(1)}% of 400 requests to the slow workers, time ${slowed.timeRatio.toFixed(3)}x all-fast; ` +
          `recovered: first request back after ${firstBack.join(", ")} requests, of the last 200: ${counts.join(", ")} (fair 25), time ${recovered.timeRatio.toFixed(3)}x`,
      );
      expect(share, `seed ${seed}: share of the still-slow workers`).toBeLessThanOrEqual(0.03);
      expect(slowed.timeRatio, `seed ${seed}: time while three are slow`).toBeLessThanOrEqual(1.05);
      for (const [j, at] of firstBack.entries()) {
        expect(at, `seed ${seed}: recovered worker ${SLOW[j]} got nothing`).toBeGreaterThanOrEqual(0);
        expect(at, `seed ${seed}: recovered worker ${SLOW[j]}'s first request`).toBeLessThan(200);
      }
      for (const c of counts) expect(c, `seed ${seed}: a recovered worker's requests among the last 200`).toBeGreaterThanOrEqual(12);
    }
  });
});
