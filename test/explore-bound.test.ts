/**
 * The exploration step's work per plan round (issue 25, explore.ts). At
 * 4,096 workers the step cost each explored worker x 64 queued requests x
 * the whole pool: a round of 0.9 s of CPU at a burst's first turn, every GPU
 * waiting for it (docs/benchmarks.md, Scale part 7). Now each demand class's
 * earliest finish is found once per round and the checks are bounded; the
 * workers it must still find (one that answered faster than predicted: it
 * may have recovered) are looked at first. Admission's real parts in
 * process (registry, load book and cost model, wait queue, plan board,
 * candidates); the work is counted, not timed.
 */
import { describe, expect, it } from "vitest";
import { Candidates } from "../src/admission/candidates.js";
import { EXPLORE_CHECKS, exploreAged } from "../src/admission/explore.js";
import { RoutingKeys } from "../src/admission/keys.js";
import { LoadBook } from "../src/admission/loads.js";
import { PlanBoard } from "../src/admission/plan-board.js";
import { lightTraffic } from "../src/admission/plan-probes.js";
import { WaitQueue, type Waiter } from "../src/admission/queue.js";
import type { Ticket } from "../src/admission/ticket.js";
import { Registry } from "../src/registry/registry.js";
import type { Worker } from "../src/registry/worker.js";
import { EligibilityCache } from "../src/scheduler/eligibility.js";
import { readRequestFacts } from "../src/scheduler/request-facts.js";

const N = 4096;
const SIZES = [512, 768, 1024];
const STEPS = [20, 30];

function ticket(px: number, steps: number): Ticket {
  const facts = readRequestFacts("image", { prompt: "p", size: `${px}x${px}`, num_inference_steps: steps }, null);
  return { demand: { kind: "image", model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
}

/** Ms of a request on a speed-1 GPU (pixels x steps). */
const serviceMs = (px: number, steps: number) => ((px * px) / (1024 * 1024)) * steps * 40;

describe("the exploration step on 4,096 idle workers, a quarter of them 4x slower and left out", () => {
  it("its work is bounded (checks, pool reads) and a worker that answered faster than predicted still gets the smallest request", () => {
    let nowMs = 0;
    const registry = new Registry();
    const workers: Worker[] = Array.from({ length: N }, (_, i) => registry.add(`http://10.${i >> 8}.${i & 255}.1:8000`, { capabilities: { models: ["m"] } }).worker);
    const slow = (i: number) => i % 4 === 3;
    const loads = new LoadBook(() => nowMs);
    registry.on("change", (e) => loads.onRegistryChange(e));
    // Every worker measured on each size (the 4x slower ones 4x slower): three sends of the model each.
    for (const px of SIZES) {
      for (const [i, w] of workers.entries()) {
        const t = ticket(px, 20);
        const run = loads.start(w, t, null);
        loads.end(run, t, { ok: true, doneMs: nowMs + serviceMs(px, 20) * (slow(i) ? 4 : 1) });
      }
      nowMs += 10_000;
    }
    // The fast ones were sent three more requests each since (sequential traffic): the slow ones are aged.
    for (let r = 0; r < 3; r++) for (const [i, w] of workers.entries()) if (!slow(i)) loads.ages.sent(w, "m");
    // One slow worker answered 6x faster than predicted: it may have recovered. It is the youngest of the slow ones.
    const surprised = workers[N - 1]!;
    loads.ages.answered(surprised, 6);

    const queue = new WaitQueue({ queueSize: 1000, queueTimeoutMs: 60_000, ordered: true, whyWaiting: () => "" });
    for (let j = 0; j < 64; j++) {
      const px = SIZES[j % 3]!;
      const steps = STEPS[j % 2]!;
      void queue.add(ticket(px, steps), serviceMs(px, steps), null, () => 0).catch(() => undefined);
    }
    const live: Waiter[] = queue.live();
    const planBoard = new PlanBoard(registry, loads, (w) => 1 - loads.runsOn(w));
    const board = planBoard.round(nowMs);
    const candidates = new Candidates(new EligibilityCache(registry), new RoutingKeys(), (url) => registry.get(url));
    const plan: [Waiter, Worker][] = [];
    const work = exploreAged(loads.ages, { nowMs, live, board, planBoard, candidates, light: true, taken: new Set() }, plan);

    const classes = SIZES.length * STEPS.length;
    console.log(`aged slow workers ${N / 4 - 1}, queued 64 (${classes} classes): visited ${work.visited}, checks ${work.checks}, pool reads ${work.scanned}, explored ${work.explored}; unbounded it was up to ${(N / 4) * 64 * N} pool reads`);
    // Before: each aged worker read the whole pool for each of the 64 requests (1,023 x 64 x 4,096 = 268 M reads).
    expect(work.checks).toBeLessThanOrEqual(EXPLORE_CHECKS + 1);
    expect(work.scanned).toBeLessThanOrEqual(classes * N);
    // The step stopped at its bound: the aged slow workers would take more checks than it allows.
    expect(work.visited).toBeLessThan(N / 4);
    // The surprised worker took the smallest queued request (512x512 at 20 steps); no still-slow worker took anything.
    expect(plan.map(([, w]) => w)).toEqual([surprised]);
    const [[sent]] = plan as [[Waiter, Worker]];
    expect(sent.ticket.facts.work).toEqual(ticket(512, 20).facts.work);
    expect(sent).toBe(live[live.length - 1]);
    queue.rejectAll(new Error("test over"));
  });
});

describe("light traffic (where exploration runs) is sequential traffic, not a burst's turns", () => {
  // [case, workers, runs, queued, arrived since the last round, light]
  const table: [string, number, number, number, number, boolean][] = [
    ["one request at a time on 8 idle workers", 8, 0, 1, 1, true],
    ["two sequential clients' requests in one turn", 8, 1, 2, 2, true],
    ["a burst's first turn: 64 requests on 4,096 idle workers", 4096, 0, 64, 64, false],
    ["a burst's later arrival turn", 4096, 960, 64, 64, false],
    ["a burst's tail: 1,481 queued, few running, nothing arrived", 4096, 12, 1481, 0, false],
    ["a request that waited a round (a busy faster worker) and a new one", 8, 1, 2, 1, false],
    ["three at once", 64, 0, 3, 3, false],
    ["more than half the workers busy", 8, 4, 1, 1, false],
  ];
  it.each(table)("%s", (_, workers, runs, queued, arrived, light) => {
    expect(lightTraffic(workers, runs, queued, arrived)).toBe(light);
  });
});
