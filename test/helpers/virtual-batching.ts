/**
 * A batching GPU of the virtual fleet: the simulated worker's dynamic
 * batching (src/sim/scheduler.ts) in virtual time. One FIFO queue; when the
 * GPU is free its head, if batchable, takes every task with the same
 * signature anywhere behind it (the sim's own key, src/sim/images.ts), up to
 * the max size, and the batch runs for the sim's batch time
 * (src/sim/latency.ts batchMs, default gain table). With a batching delay
 * (`batchingDelayMs`, the sim's --batching-delay-ms; default 0, as the
 * sim's and SGLang's) the head, unless its batch is full, waits for
 * partners until that long after its own arrival, as the sim does.
 */
import { imageGenerationBatchKey } from "../../src/sim/images.js";
import { batchMs, DEFAULT_GAIN_CURVE_SPEC, parseGainCurve, type Work } from "../../src/sim/latency.js";

const CURVE = parseGainCurve(DEFAULT_GAIN_CURVE_SPEC);

export interface BatchingGpu {
  speed: number;
  attention?: number;
  outputMs?: number;
  pixelExponent?: number;
  /** The worker's --batching-max-size. */
  batching?: number;
  /** The worker's --batching-delay-ms. Default 0. */
  batchingDelayMs?: number;
}

/** A task waiting in a batching GPU's queue. */
export interface QueuedTask<T> {
  readonly key: string | null;
  readonly work: Work;
  readonly arrivedMs: number;
  readonly item: T;
}

/** One started batch: when it began and ends, and its tasks. */
export interface StartedBatch<T> {
  readonly beginMs: number;
  readonly endMs: number;
  readonly tasks: QueuedTask<T>[];
}

/** The sim's work of an image body (as virtual-fleet.ts serviceMs reads it). */
export function workOfBody(body: Record<string, unknown>): Work {
  const [w, h] = typeof body.size === "string" ? body.size.split("x").map(Number) : [Number(body.width ?? 1024), Number(body.height ?? 1024)];
  const n = Number(body.n ?? body.num_outputs_per_prompt ?? 1);
  return { width: w!, height: h!, steps: Number(body.num_inference_steps ?? 50), frames: 1, outputs: n };
}

/** The sim's batch key of an image body on a T2I worker batching up to `maxSize`. */
export function simBatchKey(body: Record<string, unknown>, maxSize: number): string | null {
  return imageGenerationBatchKey({ batchingMaxSize: maxSize, taskType: "T2I" }, body);
}

/** The sim's time (ms) for a batch of `b` of `work` on `gpu`. */
export function simBatchMs(gpu: BatchingGpu, work: Work, b: number): number {
  return batchMs(work, b, gpu.speed, gpu.attention ?? 0, CURVE, { outputMs: gpu.outputMs ?? 0, pixelExponent: gpu.pixelExponent ?? 1 });
}

export class BatchingQueue<T> {
  readonly #queue: QueuedTask<T>[] = [];
  /** When the GPU finishes its current batch. */
  freeAtMs = 0;

  constructor(
    private readonly gpu: BatchingGpu,
    private readonly jitter: () => number,
  ) {}

  push(task: QueuedTask<T>): void {
    this.#queue.push(task);
  }

  /** Starts the batches the GPU begins up to `limitMs` (each with the partners queued by its start). */
  startUpTo(limitMs: number): StartedBatch<T>[] {
    const started: StartedBatch<T>[] = [];
    const max = this.gpu.batching ?? 1;
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const partners = head.key === null ? [] : this.#queue.filter((t, i) => i > 0 && t.key === head.key).slice(0, max - 1);
      // The sim's head waits (from its own arrival) for partners until its delay is out or the batch is full.
      const filledMs = partners.length >= max - 1 ? (partners[max - 2]?.arrivedMs ?? head.arrivedMs) : Infinity;
      const waitsMs = head.key === null ? head.arrivedMs : Math.min(filledMs, head.arrivedMs + (this.gpu.batchingDelayMs ?? 0));
      const beginMs = Math.max(this.freeAtMs, head.arrivedMs, waitsMs);
      if (beginMs > limitMs) break;
      const tasks = [head, ...partners.filter((t) => t.arrivedMs <= beginMs)];
      for (const t of tasks) this.#queue.splice(this.#queue.indexOf(t), 1);
      this.freeAtMs = beginMs + simBatchMs(this.gpu, head.work, tasks.length) * this.jitter();
      started.push({ beginMs, endMs: this.freeAtMs, tasks });
    }
    return started;
  }
}

/**
 * A lower bound on a burst's makespan on batching GPUs of one cost shape:
 * the least GPU time each signature's jobs can take (the best split of its
 * n jobs into batches of at most the max size: a signature of 3 cannot fill
 * a batch of 4), spread over the fleet's total speed; and no job ends
 * before its time alone on the fastest GPU (a batch is never faster than its
 * one request).
 */
export function batchingBoundMs(gpus: readonly BatchingGpu[], bodies: readonly Record<string, unknown>[]): number {
  const max = Math.max(...gpus.map((g) => g.batching ?? 1));
  const unit = { ...gpus[0]!, speed: 1 };
  const total = gpus.reduce((t, g) => t + g.speed, 0);
  const fastest = Math.max(...gpus.map((g) => g.speed));
  const groups = new Map<string, { work: Work; n: number }>();
  let largest = 0;
  bodies.forEach((body, i) => {
    const work = workOfBody(body);
    const key = simBatchKey(body, max) ?? `alone ${i}`;
    const g = groups.get(key) ?? { work, n: 0 };
    g.n++;
    groups.set(key, g);
    largest = Math.max(largest, simBatchMs(unit, work, 1) / fastest);
  });
  let work = 0;
  for (const { work: w, n } of groups.values()) {
    const best = [0];
    for (let m = 1; m <= n; m++) {
      let t = Infinity;
      for (let b = 1; b <= Math.min(max, m); b++) t = Math.min(t, best[m - b]! + simBatchMs(unit, w, b));
      best.push(t);
    }
    work += best[n]!;
  }
  return Math.max(work / total, largest);
}

/** A burst of mixed signatures: 6 shapes (size × steps), prompts and seeds all different (not in the key). */
export function signatureBurst(random: () => number, count: number): { body: Record<string, unknown> }[] {
  const sizes = ["512x512", "768x768", "1024x1024"];
  const steps = [20, 50];
  return Array.from({ length: count }, (_, i) => ({
    body: { prompt: `p${i}`, seed: Math.floor(random() * 1e6), size: sizes[Math.floor(random() * sizes.length)]!, num_inference_steps: steps[Math.floor(random() * steps.length)]! },
  }));
}


/**
 * A burst like bench:schedule's `signatures` fleet (bench/lib/fleets.mjs): 512² twice as often as
 * 768², 20 or 30 steps, n of 1, 1 or 2, half of them with a negative prompt: 16 signatures, so a
 * burst of 48 has about 3 requests per signature (a batch of 4 rarely fills).
 */
export function benchSignatureBurst(random: () => number, count: number): { body: Record<string, unknown> }[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const body: Record<string, unknown> = { prompt: `bench image ${i}`, seed: i, size: pick(["512x512", "512x512", "768x768"]), num_inference_steps: pick([20, 30]), n: pick([1, 1, 2]) };
    if (random() < 0.5) body.negative_prompt = "blurry";
    return body;
  }).map((body) => ({ body }));
}
