/**
 * A fleet of simulated GPUs in virtual time, driven through the router's
 * real admission (scheduler, cost model, planner) with a fake clock: each
 * worker runs what it is sent one request at a time in arrival order (as
 * SGLang's one scheduler does), for a service time from the worker's own
 * cost formula. Deterministic, so scheduling quality can be asserted without
 * wall-clock noise; the process benchmark (bench/schedule.mjs) measures the
 * same thing through real sockets.
 */
import { createAdmission, type Admission, type SchedulingMode, type Ticket } from "../../src/admission/admission.js";
import { createLeastRequestPolicy } from "../../src/balancer/index.js";
import { Registry } from "../../src/registry/registry.js";
import type { Worker } from "../../src/registry/worker.js";
import { readRequestFacts, type RouteKind } from "../../src/scheduler/request-facts.js";
import { generationMs } from "../../src/sim/latency.js";
import { prng } from "../../src/sim/picture.js";

export interface VirtualGpu {
  /** Latency divider (2 = twice as fast). */
  speed: number;
  /** Superlinear pixel cost: ms × (1 + attention × megapixels). */
  attention?: number;
  model?: string;
  taskType?: string;
  /** Data-parallel replicas (the worker's dp_size): generations it runs at once, each at `speed`. Default 1. */
  slots?: number;
  /** The sim's cost shape (src/sim/latency.ts CostShape): a fixed ms per output, the pixel exponent. */
  outputMs?: number;
  pixelExponent?: number;
}

export interface Job {
  body: Record<string, unknown>;
  kind?: RouteKind;
}

/** The simulated worker's formula (src/sim/latency.ts), with its attention factor and cost shape. */
export function serviceMs(gpu: VirtualGpu, body: Record<string, unknown>): number {
  const [w, h] = typeof body.size === "string" ? body.size.split("x").map(Number) : [Number(body.width ?? 1024), Number(body.height ?? 1024)];
  const steps = Number(body.num_inference_steps ?? 50);
  const n = Number(body.n ?? body.num_outputs_per_prompt ?? 1);
  return generationMs({ width: w!, height: h!, steps, frames: 1, outputs: n }, gpu.speed, gpu.attention ?? 0, { outputMs: gpu.outputMs ?? 0, pixelExponent: gpu.pixelExponent ?? 1 });
}

/**
 * A lower bound on the makespan: max(total work / total speed, largest job /
 * fastest GPU). With GPUs of two kinds (different cost shapes), "total work"
 * is the optimum of the fractional assignment: jobs go to the kind that is
 * relatively better at them (sorted by the ratio of their costs), split so
 * both kinds finish together. More kinds: each job counted at its cheapest,
 * which is still a bound, only looser.
 */
export function boundMs(gpus: readonly VirtualGpu[], jobs: readonly Job[]): number {
  // A kind is a cost shape (attention factor, cost per output, pixel exponent); speeds add up within it.
  const kinds = new Map<string, { attention: number; outputMs?: number; pixelExponent?: number; speed: number; fastest: number }>();
  for (const g of gpus) {
    const a = g.attention ?? 0;
    const key = `${a}/${g.outputMs ?? 0}/${g.pixelExponent ?? 1}`;
    const k = kinds.get(key) ?? { attention: a, outputMs: g.outputMs, pixelExponent: g.pixelExponent, speed: 0, fastest: 0 };
    k.speed += g.speed;
    k.fastest = Math.max(k.fastest, g.speed);
    kinds.set(key, k);
  }
  const ks = [...kinds.values()];
  const work = (j: Job, k: VirtualGpu) => serviceMs({ ...k, speed: 1 }, j.body);
  const largest = Math.max(...jobs.map((j) => Math.min(...ks.map((k) => work(j, k) / k.fastest))));
  if (ks.length === 1) return Math.max(jobs.reduce((t, j) => t + work(j, ks[0]!), 0) / ks[0]!.speed, largest);
  if (ks.length > 2) {
    const total = gpus.reduce((t, g) => t + g.speed, 0);
    return Math.max(jobs.reduce((t, j) => t + Math.min(...ks.map((k) => work(j, k))), 0) / total, largest);
  }
  const [A, B] = ks as [(typeof ks)[0], (typeof ks)[0]];
  const sorted = [...jobs].sort((x, y) => work(x, B) / work(x, A) - work(y, B) / work(y, A));
  let onA = sorted.reduce((t, j) => t + work(j, A), 0);
  let onB = 0;
  for (const j of sorted) {
    const a = work(j, A);
    const b = work(j, B);
    // Moving this job (or the part of it that balances the two) to B.
    if ((onB + b) / B.speed >= (onA - a) / A.speed) {
      // f of the job on B: (onB + f·b)/SB = (onA − f·a)/SA
      const f = (onA / A.speed - onB / B.speed) / (b / B.speed + a / A.speed);
      return Math.max((onB + f * b) / B.speed, largest);
    }
    onA -= a;
    onB += b;
  }
  return Math.max(onB / B.speed, largest);
}

export class VirtualFleet {
  nowMs = 0;
  readonly registry = new Registry();
  readonly admission: Admission;
  readonly gpus = new Map<Worker, VirtualGpu & { slotFreeMs: number[] }>();
  /** Most generations each worker was sent and had not answered, at once. */
  readonly peakConcurrency = new Map<Worker, number>();
  /** Pending completions, in no order. */
  private readonly running: { at: number; worker: Worker; ticket: Ticket; done: () => void }[] = [];

  constructor(gpus: readonly VirtualGpu[], mode: SchedulingMode = "earliest-finish", options: { maxConcurrencyPerWorker?: number } = {}) {
    gpus.forEach((g, i) => {
      const model = g.model ?? "Qwen/Qwen-Image";
      const slots = g.slots ?? 1;
      const { worker } = this.registry.add(`http://10.0.0.${i + 1}:8000`, { capabilities: { taskType: g.taskType ?? "T2I", videoSupport: false, models: [model], ...(slots > 1 ? { parallelSlots: slots } : {}) } });
      this.gpus.set(worker, { ...g, slotFreeMs: new Array<number>(slots).fill(0) });
    });
    this.admission = createAdmission({
      registry: this.registry,
      policy: createLeastRequestPolicy(),
      mode,
      maxConcurrencyPerWorker: options.maxConcurrencyPerWorker ?? 0,
      queueSize: 100_000,
      queueTimeoutMs: 2 ** 31 - 1,
      clock: () => this.nowMs,
    });
  }

  /** Sends a burst at the current time; resolves with the makespan (ms from now until the last answer). */
  async burst(jobs: readonly Job[]): Promise<{ makespanMs: number; served: Map<Worker, number> }> {
    const start = this.nowMs;
    const served = new Map<Worker, number>();
    let left = jobs.length;
    let lastEnd = start;
    for (const job of jobs) {
      const kind = job.kind ?? "image";
      const facts = readRequestFacts(kind, job.body, null);
      const ticket: Ticket = { demand: { kind, model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
      const onWorker = (w: Worker) => {
        served.set(w, (served.get(w) ?? 0) + 1);
        const gpu = this.gpus.get(w)!;
        // Each slot runs its requests one at a time in arrival order; a request takes the slot free first.
        const lanes = gpu.slotFreeMs;
        const lane = lanes.indexOf(Math.min(...lanes));
        const begin = Math.max(this.nowMs, lanes[lane]!);
        lanes[lane] = begin + serviceMs(gpu, job.body);
        const inFlight = this.running.filter((r) => r.worker === w).length + 1;
        this.peakConcurrency.set(w, Math.max(this.peakConcurrency.get(w) ?? 0, inFlight));
        this.running.push({
          at: lanes[lane]!,
          worker: w,
          ticket,
          done: () => {
            left--;
            lastEnd = this.nowMs;
          },
        });
      };
      const w = this.admission.tryAcquire(ticket);
      if (w !== null) onWorker(w);
      else void this.admission.wait(ticket, null).then(onWorker);
    }
    await flush();
    while (left > 0) {
      if (this.running.length === 0) throw new Error(`${left} jobs never dispatched`);
      this.running.sort((a, b) => a.at - b.at);
      const next = this.running.shift()!;
      this.nowMs = Math.max(this.nowMs, next.at);
      // The router learns of the end a little after it (network): 1 ms.
      this.nowMs += 1;
      this.admission.release(next.worker, next.ticket, { ok: true, doneMs: next.at });
      next.done();
      await flush();
    }
    return { makespanMs: lastEnd - start, served };
  }
}

/** Lets admission's deferred plan (setImmediate) and the promises it resolves run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A seeded PRNG (the sim's mulberry32), so every algorithm sees the same bursts. */
export const rng = prng;

/** `count` image requests of mixed sizes, steps and outputs. */
export function mixedBurst(random: () => number, count: number, options: { maxN?: number; sizes?: string[] } = {}): Job[] {
  const sizes = options.sizes ?? ["256x256", "512x512", "768x768", "1024x1024"];
  const steps = [10, 20, 30, 50];
  const jobs: Job[] = [];
  for (let i = 0; i < count; i++) {
    const size = sizes[Math.floor(random() * sizes.length)]!;
    const body: Record<string, unknown> = { prompt: `p${i}`, size, num_inference_steps: steps[Math.floor(random() * steps.length)]! };
    if (options.maxN) body.n = 1 + Math.floor(random() * options.maxN);
    jobs.push({ body });
  }
  return jobs;
}

/** The largest-first oracle: knows every job's time on every GPU, sorts by it and gives each job to the GPU that finishes it earliest. */
export function oracleMakespanMs(gpus: readonly VirtualGpu[], jobs: readonly Job[]): number {
  const free = gpus.map(() => 0);
  const sorted = [...jobs].sort((a, b) => Math.min(...gpus.map((g) => serviceMs(g, b.body))) - Math.min(...gpus.map((g) => serviceMs(g, a.body))));
  for (const j of sorted) {
    let best = 0;
    for (let i = 1; i < gpus.length; i++) if (free[i]! + serviceMs(gpus[i]!, j.body) < free[best]! + serviceMs(gpus[best]!, j.body)) best = i;
    free[best]! += serviceMs(gpus[best]!, j.body);
  }
  return Math.max(...free);
}
