// The fleets of the scheduling bench, the bursts they get (drawn from a
// seeded RNG, so every algorithm gets the same ones), what each job costs on
// each worker (the sim's own formula, imported from the build) and the lower
// bound on a burst's makespan.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "./env.mjs";

const { generationMs, batchMs, parseGainCurve, DEFAULT_GAIN_CURVE_SPEC } = await import(pathToFileURL(path.join(repoRoot, "dist", "src", "sim", "latency.js")).href);
const { imageGenerationBatchKey } = await import(pathToFileURL(path.join(repoRoot, "dist", "src", "sim", "images.js")).href);
/** The sims' batching gain (the fleets run them with the default table). */
const GAIN_CURVE = parseGainCurve(DEFAULT_GAIN_CURVE_SPEC);

export const QWEN = "Qwen/Qwen-Image";
export const FLUX = "black-forest-labs/FLUX.1-dev";
export const WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";

/**
 * A worker of a fleet: the model it serves, its speed and attention factor, more sim flags, and
 * `shape`: the sim-only cost terms (`outputMs`, `pixelExponent`: see src/sim/latency.ts) and
 * `slots` (its --dp-size: generations it runs at once).
 */
function w(model, speed = 1, attention = 0, extra = [], shape = {}) {
  return { model, speed, attention, video: /wan|video|t2v/i.test(model), extra, outputMs: shape.outputMs ?? 0, pixelExponent: shape.pixelExponent ?? 1, slots: shape.slots ?? 1 };
}
const times = (n, f) => Array.from({ length: n }, f);

/** sglang serve + sim flags of a fleet worker. */
export function simArgs(worker) {
  const shape = [];
  if (worker.outputMs) shape.push("--output-ms", String(worker.outputMs));
  if (worker.pixelExponent !== 1) shape.push("--pixel-exponent", String(worker.pixelExponent));
  if (worker.slots > 1) shape.push("--dp-size", String(worker.slots));
  return ["--model-path", worker.model, "--speed", String(worker.speed), "--attention-factor", String(worker.attention), ...shape, ...worker.extra];
}

/** mulberry32 seeded from a string: the same bursts on every run and for every algorithm. */
export function rng(key) {
  let a = 0;
  for (const ch of key) a = (Math.imul(a ^ ch.charCodeAt(0), 2654435761) + 0x9e3779b9) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (r, list) => list[Math.floor(r() * list.length)];

/** One image request: `POST /v1/images/generations` (url answers: small, like a worker's default). */
function image(r, i, model, mix) {
  const size = pick(r, mix.sizes);
  const steps = pick(r, mix.steps);
  const n = pick(r, mix.n);
  const [width, height] = size.split("x").map(Number);
  return {
    kind: "image",
    model,
    body: { model, prompt: `bench image ${i}`, size, num_inference_steps: steps, n, seed: i, response_format: "url" },
    work: { width, height, steps, frames: 1, outputs: n },
  };
}

/** One video job: `POST /v1/videos`, then polled until completed. */
function video(r, i, model, mix) {
  const size = pick(r, mix.sizes);
  const steps = pick(r, mix.steps);
  const frames = pick(r, mix.frames);
  const [width, height] = size.split("x").map(Number);
  return {
    kind: "video",
    model,
    body: { model, prompt: `bench video ${i}`, size, num_frames: frames, num_inference_steps: steps, seed: i },
    work: { width, height, steps, frames, outputs: 1 },
  };
}

/** Jobs of 60 ms – 1.3 s at speed 1. */
const IMAGES = { sizes: ["512x512", "768x768", "1024x1024"], steps: [30, 40], n: [1, 2, 3, 4] };
/** Mixed resolutions, where the attention factor shows (1536x1024 is 1.57 MP). */
const RESOLUTIONS = { sizes: ["512x512", "768x768", "1024x1024", "1280x720", "1536x1024", "1024x1536"], steps: [20, 30], n: [1, 2] };
/** Wan-style clips of 150 ms – 1.3 s. */
const VIDEOS = { sizes: ["832x480", "1280x720"], steps: [10, 20], frames: [17, 33] };
/** Two shapes of small pictures (62 and 137 ms alone): batches form, and gain x1.59 (b = 2) to x2.77 (b = 4) at 512x512. */
const BATCHABLE = { sizes: ["512x512", "512x512", "512x512", "768x768"], steps: [30], n: [1] };

/** Small bursts of very different sizes: 256² to 2048², up to 4 outputs (45 ms to 2.6 s at speed 1). */
const SPREAD = { sizes: ["256x256", "512x512", "768x768", "1024x1024", "1536x1536", "2048x2048"], steps: [10, 20], n: [1, 2, 3, 4] };
/** Batching workers with the real signature rule: only equal sizes, steps, n and negative prompts batch. */
const SIGNATURES = { sizes: ["512x512", "512x512", "768x768"], steps: [20, 30], n: [1, 1, 2] };
/** Sizes for a fixed cost per output and a steep pixel exponent. */
const STEEP = { sizes: ["512x512", "768x768", "1024x1024", "1536x1536"], steps: [20, 30], n: [1, 2, 3, 4] };

/** Images with half of them asking for a negative prompt: another batch signature. */
function signatureImage(r, i, model, mix) {
  const job = image(r, i, model, mix);
  if (r() < 0.5) job.body.negative_prompt = "blurry";
  return job;
}

/**
 * The `random` fleet's cost shape, drawn per run (the bench prints it and its seed; `--random-seed`
 * repeats one): 8 workers in 2-3 speed classes, a pixel exponent, an attention factor and a fixed
 * cost per output, none chosen by whoever tuned the router.
 */
export function randomFleet(seed) {
  const r = rng(`random-fleet/${seed}`);
  const classes = 2 + Math.floor(r() * 2);
  const speeds = times(classes, () => Math.round((0.3 + r() * 0.9) * 100) / 100);
  speeds[0] = 1;
  const shape = { pixelExponent: Math.round((1 + r() * 0.5) * 100) / 100, outputMs: Math.round(r() * 150) };
  const attention = Math.round(r() * 0.8 * 100) / 100;
  const workers = times(8, (_, i) => w(QWEN, speeds[i % classes], attention, [], shape));
  const title = `random shape (seed ${seed}): speeds ${speeds.join("/")}, pixels^${shape.pixelExponent}, attention ${attention}, ${shape.outputMs} ms per output`;
  return { title, workers, burst: (rr, size) => times(Math.round(48 * size), (_, i) => image(rr, i, QWEN, STEEP)) };
}

/** Shuffles in place with `r` (the arrival order of a burst). */
function shuffle(r, list) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

/**
 * `size` scales a burst (1 = the full bench, 0.5 = --quick). `check` fleets
 * are about where answers go (wrong-model count), not only time.
 */
export const FLEETS = {
  equal: {
    title: "8 equal workers",
    workers: times(8, () => w(QWEN)),
    burst: (r, size) => times(Math.round(64 * size), (_, i) => image(r, i, QWEN, IMAGES)),
  },
  slow: {
    title: "6 fast + 2 at speed 0.4",
    workers: [...times(6, () => w(QWEN)), ...times(2, () => w(QWEN, 0.4))],
    burst: (r, size) => times(Math.round(64 * size), (_, i) => image(r, i, QWEN, IMAGES)),
  },
  kinds: {
    title: "4 + 4 of two GPU kinds (speed 1, attention 0.3 / speed 0.7, attention 1.0), mixed resolutions",
    workers: [...times(4, () => w(QWEN, 1, 0.3)), ...times(4, () => w(QWEN, 0.7, 1.0))],
    burst: (r, size) => times(Math.round(48 * size), (_, i) => image(r, i, QWEN, RESOLUTIONS)),
  },
  video: {
    title: "6 image workers + 2 Wan video workers; images + videos",
    workers: [...times(6, () => w(QWEN)), ...times(2, () => w(WAN))],
    burst: (r, size) =>
      shuffle(r, [...times(Math.round(40 * size), (_, i) => image(r, i, QWEN, IMAGES)), ...times(Math.round(10 * size), (_, i) => video(r, i, WAN, VIDEOS))]),
  },
  batching: {
    title: "8 workers with --batching-max-size 4 --batching-delay-ms 20 (bound counts the batching gain)",
    newAlgorithmArgs: ["--worker-batch-size", "4"],
    workers: times(8, () => w(QWEN, 1, 0, ["--batching-max-size", "4", "--batching-delay-ms", "20"])),
    burst: (r, size) => times(Math.round(160 * size), (_, i) => image(r, i, QWEN, BATCHABLE)),
  },
  drift: {
    title: "8 equal workers, 60 ms per output, pixels^1.4; 3 of them 3x slower from burst 2, recovered from burst 4",
    workers: times(8, () => w(QWEN, 1, 0, [], { outputMs: 60, pixelExponent: 1.4 })),
    // Speed factor of each worker during burst b (the bench sets it through POST /sim/config before the round).
    speedAt: (b, i) => (i < 3 && (b === 2 || b === 3) ? 1 / 3 : 1),
    minMeasured: 4,
    burst: (r, size) => times(Math.round(48 * size), (_, i) => image(r, i, QWEN, STEEP)),
  },
  small: {
    title: "4 fast + 4 half-speed, bursts of 12 from 256² to 2048², up to 4 outputs",
    workers: [...times(4, () => w(QWEN)), ...times(4, () => w(QWEN, 0.5))],
    minMeasured: 4,
    burst: (r) => times(12, (_, i) => image(r, i, QWEN, SPREAD)),
  },
  steep: {
    title: "6 fast + 2 at speed 0.5, 80 ms per output, pixels^1.4",
    workers: [...times(6, () => w(QWEN, 1, 0, [], { outputMs: 80, pixelExponent: 1.4 })), ...times(2, () => w(QWEN, 0.5, 0, [], { outputMs: 80, pixelExponent: 1.4 }))],
    burst: (r, size) => times(Math.round(48 * size), (_, i) => image(r, i, QWEN, STEEP)),
  },
  dp2: {
    title: "4 workers with --dp-size 2 + 2 with dp_size 1 at speed 0.7",
    workers: [...times(4, () => w(QWEN, 1, 0, [], { slots: 2 })), ...times(2, () => w(QWEN, 0.7))],
    burst: (r, size) => times(Math.round(64 * size), (_, i) => image(r, i, QWEN, IMAGES)),
  },
  signatures: {
    title: "8 workers with --batching-max-size 4 --batching-delay-ms 20, mixed batch signatures (bound counts the batching gain)",
    newAlgorithmArgs: ["--worker-batch-size", "4"],
    workers: times(8, () => w(QWEN, 1, 0, ["--batching-max-size", "4", "--batching-delay-ms", "20"])),
    burst: (r, size) => times(Math.round(96 * size), (_, i) => signatureImage(r, i, QWEN, SIGNATURES)),
  },
  straggler: {
    title: "8 equal workers; each measured burst one of them (another each burst) runs 4x slower, unknown to the router until it shows",
    workers: times(8, () => w(QWEN)),
    // Burst b slows worker b - 1 (the warm-up none): the router learned it fast, and the one slowed before has recovered.
    speedAt: (b, i) => (b >= 1 && i === (b - 1) % 8 ? 0.25 : 1),
    burst: (r, size) => times(Math.round(32 * size), (_, i) => image(r, i, QWEN, IMAGES)),
  },
  models: {
    title: "mixed pool: 2 Qwen-Image, 1 FLUX.1-dev, 1 Wan T2V; requests name their model",
    check: true,
    workers: [w(QWEN), w(QWEN), w(FLUX), w(WAN)],
    burst: (r, size) =>
      shuffle(r, [
        ...times(Math.round(24 * size), (_, i) => image(r, i, QWEN, IMAGES)),
        ...times(Math.round(12 * size), (_, i) => image(r, 100 + i, FLUX, IMAGES)),
        ...times(Math.round(6 * size), (_, i) => video(r, i, WAN, VIDEOS)),
      ]),
  },
};

/** What a job takes on a worker, by the sim's formula (ms). */
export function cost(job, worker) {
  return generationMs(job.work, worker.speed, worker.attention, { outputMs: worker.outputMs ?? 0, pixelExponent: worker.pixelExponent ?? 1 });
}

/** A worker's parallel slots (dp_size): the bound and the oracle count each as a worker. */
export const slotsOf = (worker) => worker.slots ?? 1;

/** Whether a worker may serve a job: it serves the job's model (and so the right pipeline). */
export function eligible(job, worker) {
  return worker.model === job.model;
}

/**
 * Lower bound on the makespan of `jobs` on `workers`: per pool of workers
 * that can serve a job (same model), the best fractional split of the pool's
 * jobs over its kinds of worker (kind = cost shape: attention factor, cost per
 * output, pixel exponent; with one kind that is total work / total speed, a
 * dp_size-N worker counting N times), and no job faster than on its best
 * worker. A pool of batching workers of one kind (issue 20) counts each
 * batch signature's jobs at their least GPU time: the best split into
 * batches of at most the max size, at the sims' gain table (a signature of
 * 3 cannot fill a batch of 4). With equal attention factors this is the brief's
 * max(total work / total speed, largest job / fastest worker), per pool.
 */
export function lowerBound(jobs, workers) {
  let bound = 0;
  for (const job of jobs) bound = Math.max(bound, Math.min(...workers.filter((x) => eligible(job, x)).map((x) => cost(job, x))));
  for (const model of new Set(workers.map((x) => x.model))) {
    const pool = workers.filter((x) => x.model === model);
    const mine = jobs.filter((j) => j.model === model);
    if (mine.length === 0) continue;
    // A kind is a cost shape; its capacity is the sum of its workers' speeds x slots, and its
    // costs are taken at speed 1 (work splits freely in the fractional bound).
    const kindOf = (x) => `${x.attention}/${x.outputMs ?? 0}/${x.pixelExponent ?? 1}`;
    const capacity = (x) => pool.filter((y) => kindOf(y) === kindOf(x)).reduce((n, y) => n + y.speed * slotsOf(y), 0);
    const kinds = [...new Map(pool.map((x) => [kindOf(x), { ...x, speed: 1, count: capacity(x) }])).values()];
    const max = Math.min(...pool.map(batchMaxOf));
    const batched = max > 1 && kinds.length === 1 && mine.every((j) => j.kind === "image");
    bound = Math.max(bound, batched ? batchedWork(mine, kinds[0], max) / kinds[0].count : fractionalBound(mine, kinds));
  }
  return bound;
}

/** A worker's --batching-max-size (1: it does not batch). */
function batchMaxOf(worker) {
  const i = worker.extra.indexOf("--batching-max-size");
  return i < 0 ? 1 : Number(worker.extra[i + 1]);
}

/** Least GPU time (ms at the kind's speed 1) of image jobs on batching workers: per sim batch signature, its best split into batches. */
function batchedWork(jobs, kind, max) {
  const groups = new Map();
  jobs.forEach((job, i) => {
    const key = imageGenerationBatchKey({ batchingMaxSize: max, taskType: "T2I" }, job.body) ?? `alone ${i}`;
    const g = groups.get(key) ?? { work: job.work, n: 0 };
    g.n++;
    groups.set(key, g);
  });
  const shape = { outputMs: kind.outputMs ?? 0, pixelExponent: kind.pixelExponent ?? 1 };
  let total = 0;
  for (const { work, n } of groups.values()) {
    const best = [0];
    for (let m = 1; m <= n; m++) {
      let t = Infinity;
      for (let b = 1; b <= Math.min(max, m); b++) t = Math.min(t, best[m - b] + batchMs(work, b, 1, kind.attention, GAIN_CURVE, shape));
      best.push(t);
    }
    total += best[n];
  }
  return total;
}

/** Exact fractional makespan for one or two kinds; sum of best costs over all slots otherwise (looser, still a bound). */
function fractionalBound(jobs, kinds) {
  if (kinds.length === 1) return jobs.reduce((s, j) => s + cost(j, kinds[0]), 0) / kinds[0].count;
  if (kinds.length > 2) {
    const n = kinds.reduce((s, k) => s + k.count, 0);
    return jobs.reduce((s, j) => s + Math.min(...kinds.map((k) => cost(j, k))), 0) / n;
  }
  const [A, B] = kinds;
  // Jobs that are relatively cheapest on A go to A first; the best split is where the loads per worker meet.
  const sorted = jobs.map((j) => ({ a: cost(j, A), b: cost(j, B) })).sort((x, y) => x.a / x.b - y.a / y.b);
  let loadA = 0;
  let loadB = sorted.reduce((s, j) => s + j.b, 0);
  let best = loadB / B.count;
  for (const j of sorted) {
    const before = Math.max(loadA / A.count, loadB / B.count);
    const nextA = loadA + j.a;
    const nextB = loadB - j.b;
    // Part x of this job on A: (loadA + x a)/nA = (loadB - x b)/nB, if 0 <= x <= 1.
    const x = (loadB / B.count - loadA / A.count) / (j.a / A.count + j.b / B.count);
    if (x >= 0 && x <= 1) best = Math.min(best, (loadA + x * j.a) / A.count);
    loadA = nextA;
    loadB = nextB;
    best = Math.min(best, before, Math.max(loadA / A.count, loadB / B.count));
  }
  return best;
}

/**
 * The oracle's plan: largest job first (by its best cost), each to the
 * eligible worker that would finish it earliest. Returns, per worker index,
 * its jobs in the order to send them.
 */
export function lptPlan(jobs, workers) {
  const free = workers.map(() => 0);
  const queues = workers.map(() => []);
  const order = jobs
    .map((job) => ({ job, best: Math.min(...workers.filter((x) => eligible(job, x)).map((x) => cost(job, x))) }))
    .sort((x, y) => y.best - x.best);
  for (const { job } of order) {
    let at = -1;
    for (let i = 0; i < workers.length; i++) {
      if (!eligible(job, workers[i])) continue;
      if (at < 0 || free[i] + cost(job, workers[i]) < free[at] + cost(job, workers[at])) at = i;
    }
    free[at] += cost(job, workers[at]);
    queues[at].push(job);
  }
  return queues;
}
