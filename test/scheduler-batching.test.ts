/**
 * Batch capacity in the plan (issue 20), on virtual fleets of batching
 * workers (test/helpers/virtual-batching.ts: the sim's FIFO queue, signature
 * rule, max size 4 and batch time) driven through the router's real
 * admission with --worker-batch-size 4, in virtual time (no timing
 * assertion). Makespan is compared with the bound that accounts for
 * batching (each signature's jobs at their best split into batches).
 */
import { describe, expect, it } from "vitest";
import { batchingBoundMs, benchSignatureBurst, signatureBurst } from "./helpers/virtual-batching.js";
import { rng, VirtualFleet, type VirtualGpu } from "./helpers/virtual-fleet.js";

const fleets: Record<string, VirtualGpu[]> = {
  "8 equal": Array.from({ length: 8 }, () => ({ speed: 1, batching: 4 })),
  "4 fast + 4 at half speed": [...Array.from({ length: 4 }, () => ({ speed: 1, batching: 4 })), ...Array.from({ length: 4 }, () => ({ speed: 0.5, batching: 4 }))],
};

/** Makespan / bound per burst (the first is the warm-up), and the largest batch seen. */
async function run(gpus: VirtualGpu[], workerBatchSize: number, seed: number, bursts = 5): Promise<{ ratios: number[]; largest: number; behind: number }> {
  const fleet = new VirtualFleet(gpus, "earliest-finish", { workerBatchSize });
  const random = rng(seed);
  const ratios: number[] = [];
  for (let b = 0; b < bursts; b++) {
    const jobs = signatureBurst(random, 48);
    const { makespanMs } = await fleet.burst(jobs);
    ratios.push(makespanMs / batchingBoundMs(gpus, jobs.map((j) => j.body)));
    fleet.nowMs += 2000;
  }
  return { ratios, largest: Math.max(...fleet.trace.map((t) => t.batch ?? 1)), behind: waitedBehindQueued(fleet) };
}

/**
 * Requests that waited in a worker's queue behind a batch that had not
 * started when they were sent (another batch started on that worker between
 * their send and their start): the router could no longer move them.
 */
function waitedBehindQueued(fleet: VirtualFleet): number {
  const starts = new Map<number, Set<number>>();
  for (const t of fleet.trace) starts.set(t.worker, (starts.get(t.worker) ?? new Set()).add(t.startMs));
  return fleet.trace.filter((t) => [...starts.get(t.worker)!].some((s) => s > t.sentMs && s < t.startMs)).length;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe("batching workers in the plan", () => {
  for (const [name, gpus] of Object.entries(fleets)) {
    it(`${name}, max size 4, 48 requests of 6 signatures: later bursts <= 1.2x the batching bound (median) and well below sending one at a time (grouping every compatible request: 2.6x; the myopic join alone: 1.32 and 1.27 against 1.34 and 1.30)`, async () => {
      const batched: number[] = [];
      const single: number[] = [];
      const warm: number[] = [];
      const firstAfter: number[] = [];
      for (let seed = 1; seed <= 4; seed++) {
        const b = await run(gpus, 4, seed);
        const s = await run(gpus, 1, seed);
        console.log(name, `seed ${seed}`, "batch 4:", b.ratios.map((r) => r.toFixed(3)).join(" "), `(largest batch ${b.largest}, ${b.behind} of ${48 * 5} waited behind a queued batch)`, "| batch 1:", s.ratios.map((r) => r.toFixed(3)).join(" "));
        expect(b.largest).toBe(4);
        warm.push(b.ratios[0]!);
        firstAfter.push(b.ratios[1]!);
        batched.push(...b.ratios.slice(1));
        single.push(...s.ratios.slice(1));
      }
      console.log(name, "median later bursts: batch 4", median(batched).toFixed(3), "max", Math.max(...batched).toFixed(3), "| batch 1", median(single).toFixed(3), "| warm-up max", Math.max(...warm).toFixed(3), "| first after warm-up: median", median(firstAfter).toFixed(3), "max", Math.max(...firstAfter).toFixed(3));
      // Grouping always up to 4 ran four 1024² requests (no gain in the sim's table) on one GPU at a burst's end: 2.6-2.7x.
      // Batch units (plan-units.ts): 1.14 and 1.12 (one at a time 1.34 and 1.30); with answers handed over a
      // turn at a time (virtual-fleet.ts since scale part 5) 1.212 and 1.175, 1.163 and 1.124 with an unseen gain explored.
      expect(median(batched)).toBeLessThanOrEqual(1.2);
      expect(median(batched)).toBeLessThanOrEqual(median(single) * 0.92);
    });
  }
});

/**
 * The bench's `signatures` fleet (bench:schedule): 8 workers at a third of the sim's speed
 * (--slowdown 3), max size 4, --batching-delay-ms 20, bursts of 48 with about 3 requests per
 * signature, 2 s apart (so every worker is idle and silent before each burst: LoadBook.staleIdle).
 * Median over seeds of the later bursts and of the first after the warm-up, / the batching bound.
 */
async function benchSignatures(arrivalsPerTurn: number | undefined, seeds: number): Promise<{ later: number; first: number; log: string[] }> {
  const gpus: VirtualGpu[] = Array.from({ length: 8 }, () => ({ speed: 1 / 3, batching: 4, batchingDelayMs: 20 }));
  const later: number[] = [];
  const first: number[] = [];
  const log: string[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const fleet = new VirtualFleet(gpus, "earliest-finish", { workerBatchSize: 4, ...(arrivalsPerTurn === undefined ? {} : { arrivalsPerTurn }) });
    const random = rng(seed);
    const ratios: number[] = [];
    for (let b = 0; b < 4; b++) {
      const jobs = benchSignatureBurst(random, 48);
      const { makespanMs } = await fleet.burst(jobs);
      ratios.push(makespanMs / batchingBoundMs(gpus, jobs.map((j) => j.body)));
      fleet.nowMs += 2000;
    }
    log.push(ratios.map((r) => r.toFixed(3)).join(" "));
    first.push(ratios[1]!);
    later.push(...ratios.slice(1));
  }
  return { later: median(later), first: median(first), log };
}

describe("the bench's signatures bursts: about 3 requests per signature, 20 ms batching delay", () => {
  it("a burst after an idle gap is planned as batches, not begun with its smallest requests one per worker (stale-worker probes): later bursts <= 1.27x the bound and the first after the warm-up <= 1.36x (medians; 1.219 and 1.295, with the probes 1.333 and 1.416)", async () => {
    const r = await benchSignatures(undefined, 6);
    console.log("signatures, all at once:", r.log.join(" | "), `| median later ${r.later.toFixed(3)}, first after warm-up ${r.first.toFixed(3)}`);
    expect(r.later).toBeLessThanOrEqual(1.27);
    expect(r.first).toBeLessThanOrEqual(1.36);
  });

  it("a burst that reaches the router over many event-loop turns (4 requests a turn) is gathered before its first plan on an idle fleet: later bursts <= 1.3x the bound and the first after the warm-up <= 1.45x (medians; 1.209 and 1.372, planning each turn's arrivals at once 1.387 and 1.583)", async () => {
    const r = await benchSignatures(4, 6);
    console.log("signatures, 4 per turn:", r.log.join(" | "), `| median later ${r.later.toFixed(3)}, first after warm-up ${r.first.toFixed(3)}`);
    expect(r.later).toBeLessThanOrEqual(1.3);
    expect(r.first).toBeLessThanOrEqual(1.45);
  });
});
