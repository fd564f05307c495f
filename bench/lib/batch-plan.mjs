// The offline reference for batching fleets (issue 20): a plan that knows
// every job's true cost on every worker and the sims' true batching gain, and
// what it takes on the sims' own queues (their FIFO, the signature rule, the
// batching delay). The bench's lower bound (fleets.mjs lowerBound) spreads each
// signature's least GPU time fractionally over the fleet; with bursts of ~3
// requests per signature, indivisible batches and the delay no schedule may
// reach it, so the bench also reports makespan / this plan's makespan.
//
// The plan: each signature split into the batches of least GPU time, the
// units placed largest first on the worker finishing each earliest (LPT), then
// a local search while the makespan drops: split a unit (peel one off or cut
// it), move a unit off a worker that ends at the makespan, or swap two. Each
// candidate is judged by simulating every worker's queue as the sim runs it
// (all its jobs sent at once in plan order: the first head waits out the
// delay unless its batch is full, later heads arrived long before the GPU was
// free and start at once).
import path from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "./env.mjs";

const { batchMs, parseGainCurve, DEFAULT_GAIN_CURVE_SPEC } = await import(pathToFileURL(path.join(repoRoot, "dist", "src", "sim", "latency.js")).href);
const { imageGenerationBatchKey } = await import(pathToFileURL(path.join(repoRoot, "dist", "src", "sim", "images.js")).href);
const GAIN_CURVE = parseGainCurve(DEFAULT_GAIN_CURVE_SPEC);

/** A worker's value of a sim flag (`--batching-max-size`), or `dflt`. */
function simFlag(worker, name, dflt) {
  const i = worker.extra.indexOf(name);
  return i < 0 ? dflt : Number(worker.extra[i + 1]);
}

/** Whether the offline batch plan applies: image jobs of one model on batching workers (the `batching` and `signatures` fleets). */
export function batchPlanApplies(jobs, workers) {
  return workers.length > 0 && workers.every((x) => simFlag(x, "--batching-max-size", 1) > 1 && x.model === workers[0].model && (x.slots ?? 1) === 1) && jobs.every((j) => j.kind === "image" && j.model === workers[0].model);
}

/** The time (ms) of a batch of `b` of `work` on `worker` (the sims' formula and gain table). */
function batchTime(worker, work, b) {
  return batchMs(work, b, worker.speed, worker.attention, GAIN_CURVE, { outputMs: worker.outputMs ?? 0, pixelExponent: worker.pixelExponent ?? 1 });
}

/**
 * When a worker ends the jobs it was sent at time 0, in this order: the sim's
 * queue (src/sim/scheduler.ts) with every arrival at 0. The head takes up to
 * `max` of its key from anywhere behind it; it waits for partners until
 * `delay` after its arrival unless full (only the first batch can wait: the
 * later heads' windows are over by the time the GPU is free, for delay <= the
 * first batch's time).
 */
function queueEnd(worker, queue, max, delay) {
  const q = [...queue];
  let t = 0;
  while (q.length > 0) {
    const head = q[0];
    const batch = [0];
    for (let i = 1; i < q.length && batch.length < max; i++) if (q[i].key === head.key && head.key !== null) batch.push(i);
    if (head.key !== null && batch.length < max) t = Math.max(t, delay);
    t += batchTime(worker, head.work, batch.length);
    for (let i = batch.length - 1; i >= 0; i--) q.splice(batch[i], 1);
  }
  return t;
}

/** Jobs by sim batch signature (unbatchable jobs alone): { key, work, jobs }. */
function signatures(jobs, max) {
  const groups = new Map();
  jobs.forEach((job, i) => {
    const key = imageGenerationBatchKey({ batchingMaxSize: max, taskType: "T2I" }, job.body) ?? `alone ${i}`;
    const g = groups.get(key) ?? { key, work: job.work, jobs: [] };
    g.jobs.push(job);
    groups.set(key, g);
  });
  return [...groups.values()];
}

/** Each signature split into the batches of least GPU time on `unit` (a speed-1 worker): units { g, size }. */
function leastWork(groups, unit, max) {
  const units = [];
  for (const g of groups) {
    const n = g.jobs.length;
    const best = [0];
    const size = [0];
    for (let m = 1; m <= n; m++) {
      let t = Infinity;
      let s = 1;
      for (let b = 1; b <= Math.min(max, m); b++) {
        const c = best[m - b] + batchTime(unit, g.work, b);
        if (c < t - 1e-9) {
          t = c;
          s = b;
        }
      }
      best.push(t);
      size.push(s);
    }
    for (let m = n; m > 0; m -= size[m]) units.push({ g, size: size[m] });
  }
  return units;
}

/** The fleet a plan is judged on: its workers, max batch size, batching delay, and a speed-1 worker to rank units by. */
function fleetOf(workers) {
  return {
    workers,
    max: Math.min(...workers.map((x) => simFlag(x, "--batching-max-size", 1))),
    delay: Math.max(...workers.map((x) => simFlag(x, "--batching-delay-ms", 0))),
    unit: { ...workers[0], speed: 1 },
  };
}

/** Each worker's end with its queue of units (the sims' queues), the makespan, and how many workers end at it. */
function evaluate(f, assign) {
  const ends = assign.map((list, i) => queueEnd(f.workers[i], list.flatMap((u) => Array.from({ length: u.size }, () => ({ key: u.g.key, work: u.g.work }))), f.max, f.delay));
  const ms = Math.max(...ends);
  return { ends, ms, top: ends.filter((e) => e >= ms - 1e-6).length };
}

/** Units largest first, each to the worker that ends it earliest; a worker's queue is its units in that order. */
function lpt(f, list) {
  const assign = f.workers.map(() => []);
  const free = f.workers.map(() => 0);
  for (const u of [...list].sort((a, b) => batchTime(f.unit, b.g.work, b.size) - batchTime(f.unit, a.g.work, a.size))) {
    let at = 0;
    let atEnd = Infinity;
    for (let i = 0; i < f.workers.length; i++) {
      const e = (free[i] === 0 && u.size < f.max ? f.delay : 0) + free[i] + batchTime(f.workers[i], u.g.work, u.size);
      if (e < atEnd) {
        atEnd = e;
        at = i;
      }
    }
    free[at] = atEnd;
    assign[at].push(u);
  }
  return assign;
}

/** The neighbours of a plan: every split of a unit (re-placed by LPT), every move and swap off a worker that ends at the makespan. */
function* neighbours(f, units, assign, plan) {
  for (let i = 0; i < units.length; i++) {
    const u = units[i];
    for (let a = 1; a <= u.size / 2; a++) yield lpt(f, [...units.slice(0, i), { g: u.g, size: u.size - a }, { g: u.g, size: a }, ...units.slice(i + 1)]);
  }
  for (let i = 0; i < f.workers.length; i++) {
    if (plan.ends[i] < plan.ms - 1e-6) continue;
    for (let k = 0; k < assign[i].length; k++) {
      const u = assign[i][k];
      for (let j = 0; j < f.workers.length; j++) {
        if (j === i) continue;
        const moved = assign.map((l) => [...l]);
        moved[i].splice(k, 1);
        moved[j].push(u);
        yield moved;
        for (let m = 0; m < assign[j].length; m++) {
          const swapped = assign.map((l) => [...l]);
          swapped[i][k] = assign[j][m];
          swapped[j][m] = u;
          yield swapped;
        }
      }
    }
  }
}

/**
 * The plan: `{ ms, queues }`, queues[i] the jobs for worker i in the order
 * to send them (all at once), ms the makespan the sims' queues give it.
 */
export function batchPlan(jobs, workers) {
  const f = fleetOf(workers);
  const groups = signatures(jobs, f.max);
  let units = leastWork(groups, f.unit, f.max);
  let assign = lpt(f, units);
  let plan = evaluate(f, assign);
  const better = (a, b) => a.ms < b.ms - 1e-6 || (a.ms <= b.ms + 1e-6 && a.top < b.top);
  // Steepest descent: the best neighbour while it is better.
  for (let round = 0; round < 500; round++) {
    let next = null;
    let nextPlan = plan;
    for (const cand of neighbours(f, units, assign, plan)) {
      const p = evaluate(f, cand);
      if (better(p, nextPlan)) {
        next = cand;
        nextPlan = p;
      }
    }
    if (next === null) break;
    assign = next;
    plan = nextPlan;
    units = assign.flat();
  }
  // Jobs of each signature handed out to its units in turn.
  const left = new Map(groups.map((g) => [g.key, [...g.jobs]]));
  return { ms: plan.ms, queues: assign.map((list) => list.flatMap((u) => left.get(u.g.key).splice(0, u.size))) };
}
