/**
 * A fleet of simulated GPUs in virtual time, driven through the router's
 * real admission (scheduler, cost model, planner) with a fake clock: each
 * worker runs what it is sent one request at a time in arrival order (as
 * SGLang's one scheduler does), for a service time from the worker's own
 * cost formula. The router's own work is charged in virtual time as the CPU
 * it measurably spent (process.cpuUsage around admission's handling of each
 * event, serially: see VirtualFleetOptions.routerCpu), so quality at a
 * thousand workers counts the planner's cost; everything else is
 * deterministic. The process benchmark (bench/schedule.mjs) measures the
 * same thing through real sockets.
 */
import { createAdmission, type Admission, type SchedulingMode, type Ticket } from "../../src/admission/admission.js";
import { createLeastRequestPolicy } from "../../src/balancer/index.js";
import { Registry } from "../../src/registry/registry.js";
import type { Worker } from "../../src/registry/worker.js";
import { readRequestFacts, type RouteKind } from "../../src/scheduler/request-facts.js";
import { generationMs } from "../../src/sim/latency.js";
import { prng } from "../../src/sim/picture.js";
import { BatchingQueue, simBatchKey, workOfBody, type QueuedTask } from "./virtual-batching.js";

export interface VirtualGpu {
  /** Latency divider (2 = twice as fast). */
  speed: number;
  /** Superlinear pixel cost: ms × (1 + attention × megapixels). */
  attention?: number;
  model?: string;
  taskType?: string;
  slots?: number; // data-parallel replicas (dp_size): generations it runs at once, each at `speed` (default 1)
  /** The sim's cost shape (src/sim/latency.ts CostShape): a fixed ms per output, the pixel exponent. */
  outputMs?: number;
  pixelExponent?: number;
  /** The worker's --batching-max-size (> 1: it batches like the sim, virtual-batching.ts; default 1) and --batching-delay-ms (default 0). */
  batching?: number;
  batchingDelayMs?: number;
}

export interface Job {
  body: Record<string, unknown>;
  kind?: RouteKind;
}

/** One request as it ran (VirtualFleet.trace): where, what the router predicted and what it took. */
export interface TraceEntry {
  worker: number; // its index in the fleet's GPU list
  body: Record<string, unknown>;
  /** Sent (virtual ms), started on its GPU, ended. */
  sentMs: number;
  startMs: number;
  endMs: number;
  /** The router's prediction when it sent it (admission's run), and the GPU's time. */
  predictedMs: number;
  actualMs: number;
  batch?: number; // its batch's size on a batching GPU (actualMs is then its share)
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

export interface VirtualFleetOptions {
  maxConcurrencyPerWorker?: number;
  /**
   * What the router's own work on an event costs in virtual time: "measured"
   * charges the process CPU time (process.cpuUsage) that admission and the
   * planner spent on it, serially (one router thread: a completion the
   * router learns of while it still plans the previous one waits), which is
   * what bench:scale uses; a number charges that many ms per event instead
   * (default 1: deterministic, so that tests do not depend on the load of
   * the machine they run on).
   */
  routerCpu?: "measured" | number;
  /** Arrivals handled per event-loop turn (a burst's requests come over many sockets); default: all in one. */
  arrivalsPerTurn?: number;
  /** A factor per request on its GPU time (a loaded host's scatter, stalls); default: none. */
  jitter?: () => number;
  workerBatchSize?: number; // the router's --worker-batch-size (default 1)
}

/** A request in a batching GPU's queue. */
interface Pending {
  ticket: Ticket;
  job: Job;
  done: () => void;
  sentMs: number;
}

/** Time (ms) between a worker's answer and the router seeing it (network, not the router's CPU: events overlap in it). */
const NOTIFY_MS = 0.5;

/** A pending completion. */
interface Completion {
  at: number;
  worker: Worker;
  ticket: Ticket;
  done: () => void;
}

export class VirtualFleet {
  nowMs = 0;
  readonly registry = new Registry();
  readonly admission: Admission;
  readonly gpus = new Map<Worker, VirtualGpu & { slotFreeMs: number[] }>();
  /** Most generations each worker was sent and had not answered, at once. */
  readonly peakConcurrency = new Map<Worker, number>();
  /** Router CPU (µs) per completion (its turn's CPU shared among the answers it handled: releases and the plan they ran), in order. */
  readonly completionCpuUs: number[] = [];
  /** Router CPU (µs) spent on arrivals (queueing, the burst's first plans). */
  arrivalCpuUs = 0;
  /** Per completion, in order: ms from its GPU's end to the router handling it (notification + waiting for the router's thread). */
  readonly seenLateMs: number[] = [];
  /** Router CPU (µs) of each event-loop turn, in order: the router's synchronous turns (arrivals, answers, the plan they run). */
  readonly turnCpuUs: number[] = [];
  /** Per turn, in the same order: the answers it handled, and whether it took arrivals. */
  readonly turnEvents: Array<{ answers: number; arrivals: boolean }> = [];
  readonly trace: TraceEntry[] = []; // every request sent, in send order (for diagnosing a burst: predicted vs actual)
  readonly #index = new Map<Worker, number>();
  private readonly running: Completion[] = []; // pending completions: a binary min-heap on `at`
  private readonly inFlight = new Map<Worker, number>();
  private readonly routerCpu: "measured" | number;
  private readonly arrivalsPerTurn: number;
  private readonly jitter: (() => number) | null;
  readonly #batching = new Map<Worker, BatchingQueue<Pending>>(); // the queues of batching GPUs
  readonly #batchingDelay: boolean;

  constructor(gpus: readonly VirtualGpu[], mode: SchedulingMode = "earliest-finish", options: VirtualFleetOptions = {}) {
    gpus.forEach((g, i) => {
      const model = g.model ?? "Qwen/Qwen-Image";
      const slots = g.slots ?? 1;
      const { worker } = this.registry.add(`http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}:8000`, { capabilities: { taskType: g.taskType ?? "T2I", videoSupport: false, models: [model], ...(slots > 1 ? { parallelSlots: slots } : {}) } });
      this.gpus.set(worker, { ...g, slotFreeMs: new Array<number>(slots).fill(0) });
      this.#index.set(worker, i);
    });
    this.routerCpu = options.routerCpu ?? 1;
    this.arrivalsPerTurn = options.arrivalsPerTurn ?? Infinity;
    this.jitter = options.jitter ?? null;
    this.#batchingDelay = gpus.some((g) => (g.batchingDelayMs ?? 0) > 0);
    for (const [w, g] of this.gpus) if ((g.batching ?? 1) > 1) this.#batching.set(w, new BatchingQueue<Pending>(g, () => this.jitter?.() ?? 1));
    this.admission = createAdmission({
      registry: this.registry,
      policy: createLeastRequestPolicy(),
      mode,
      maxConcurrencyPerWorker: options.maxConcurrencyPerWorker ?? 0,
      workerBatchSize: options.workerBatchSize ?? 1,
      queueSize: 1_000_000,
      queueTimeoutMs: 2 ** 31 - 1,
      clock: () => this.nowMs,
    });
  }

  /**
   * Sends a burst at the current time; resolves with the makespan (ms from
   * now until the router has handled the last answer). The router's thread
   * works in event-loop turns, as Node's does: a turn takes the next
   * `arrivalsPerTurn` arrivals (while any are left) and every answer that
   * reached the router by its start (the poll phase hands over every
   * readable socket at once), runs the deferred plan (setImmediate), and is
   * charged to virtual time; answers that come meanwhile wait for the next
   * turn. Requests start on their GPUs at the time of the turn that sent them.
   */
  async burst(jobs: readonly Job[]): Promise<{ makespanMs: number; served: Map<Worker, number> }> {
    const start = this.nowMs;
    const served = new Map<Worker, number>();
    let left = jobs.length;
    let lastEnd = start;
    const done = () => {
      left--;
      lastEnd = this.nowMs;
    };
    let next = 0;
    while (left > 0) {
      if (next >= jobs.length) {
        if (this.running.length === 0) await flush().then(() => this.#startBatches(null, this.nowMs)); // a plan deferred by a burst gather (plan-dispatch.ts) runs first
        // Heads waiting out a batching delay start before the next answer (or at the delay's end). Only with a delay:
        // it changes the pop order of answers due at the same time (delay-0 figures moved by up to 0.1 per burst).
        for (let was = this.#batchingDelay ? -1 : this.running.length; was !== this.running.length; ) {
          was = this.running.length;
          this.#startBatches(null, this.running[0]?.at ?? Infinity);
        }
        const first = this.running[0];
        if (first === undefined) throw new Error(`${left} jobs never dispatched`);
        // Nothing to do until the next answer reaches the router.
        this.nowMs = Math.max(this.nowMs, first.at + NOTIFY_MS);
      }
      const cpu = this.#cpuStart();
      const arrivals = Math.min(jobs.length - next, this.arrivalsPerTurn);
      for (const job of jobs.slice(next, next + arrivals)) this.#arrive(job, served, done);
      next += arrivals;
      const dones = this.#answersDue();
      await flush();
      this.#startBatches(null, this.nowMs);
      const us = this.#charge(cpu, dones.length + (arrivals > 0 ? 1 : 0));
      this.turnCpuUs.push(us);
      this.turnEvents.push({ answers: dones.length, arrivals: arrivals > 0 });
      if (arrivals > 0) this.arrivalCpuUs += us;
      else for (let i = 0; i < dones.length; i++) this.completionCpuUs.push(us / dones.length);
      for (const d of dones) d();
    }
    return { makespanMs: lastEnd - start, served };
  }

  /** A request reaches admission: a worker at once (a forwarded route) or a place in the queue. */
  #arrive(job: Job, served: Map<Worker, number>, done: () => void): void {
    const kind = job.kind ?? "image";
    const facts = readRequestFacts(kind, job.body, null);
    const ticket: Ticket = { demand: { kind, model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
    const onWorker = (w: Worker) => {
      served.set(w, (served.get(w) ?? 0) + 1);
      this.#start(w, ticket, job, done);
    };
    const w = this.admission.tryAcquire(ticket);
    if (w !== null) onWorker(w);
    else void this.admission.wait(ticket, null).then(onWorker);
  }

  /** Releases every answer that reached the router by now (one turn's poll phase); returns their clients' callbacks. */
  #answersDue(): Array<() => void> {
    const dones: Array<() => void> = [];
    while (this.running.length > 0 && this.running[0]!.at + NOTIFY_MS <= this.nowMs) {
      const c = this.#popCompletion()!;
      // A batching GPU starts its next batch the moment it is free, with what was queued by then.
      this.#startBatches(c.worker, c.at);
      this.seenLateMs.push(this.nowMs - c.at);
      this.inFlight.set(c.worker, this.inFlight.get(c.worker)! - 1);
      this.admission.release(c.worker, c.ticket, { ok: true, doneMs: c.at });
      dones.push(c.done);
    }
    return dones;
  }

  /** Starts what batching GPUs (one, or all with null) begin up to `limitMs`, and schedules their completions. */
  #startBatches(only: Worker | null, limitMs: number): void {
    for (const [w, q] of this.#batching) {
      if (only !== null && w !== only) continue;
      for (const batch of q.startUpTo(limitMs)) {
        for (const t of batch.tasks) {
          const p = t.item;
          this.trace.push({ worker: this.#index.get(w)!, body: p.job.body, sentMs: p.sentMs, startMs: batch.beginMs, endMs: batch.endMs, predictedMs: p.ticket.run?.predictedMs ?? Number.NaN, actualMs: (batch.endMs - batch.beginMs) / batch.tasks.length, batch: batch.tasks.length });
          this.#pushCompletion({ at: batch.endMs, worker: w, ticket: p.ticket, done: p.done });
        }
      }
    }
  }

  /** A request starts on its worker: each slot runs its requests one at a time in arrival order; a request takes the slot free first. */
  #start(w: Worker, ticket: Ticket, job: Job, done: () => void): void {
    const gpu = this.gpus.get(w)!;
    const q = this.#batching.get(w);
    if (q !== undefined) {
      const task: QueuedTask<Pending> = { key: simBatchKey(job.body, gpu.batching!), work: workOfBody(job.body), arrivedMs: this.nowMs, item: { ticket, job, done, sentMs: this.nowMs } };
      q.push(task);
      this.#countSent(w);
      return;
    }
    const lanes = gpu.slotFreeMs;
    let lane = 0;
    for (let i = 1; i < lanes.length; i++) if (lanes[i]! < lanes[lane]!) lane = i;
    const begin = Math.max(this.nowMs, lanes[lane]!);
    const actualMs = serviceMs(gpu, job.body) * (this.jitter?.() ?? 1);
    lanes[lane] = begin + actualMs;
    this.trace.push({ worker: this.#index.get(w)!, body: job.body, sentMs: this.nowMs, startMs: begin, endMs: lanes[lane]!, predictedMs: ticket.run?.predictedMs ?? Number.NaN, actualMs });
    this.#countSent(w);
    this.#pushCompletion({ at: lanes[lane]!, worker: w, ticket, done });
  }

  #countSent(w: Worker): void {
    const inFlight = (this.inFlight.get(w) ?? 0) + 1;
    this.inFlight.set(w, inFlight);
    this.peakConcurrency.set(w, Math.max(this.peakConcurrency.get(w) ?? 0, inFlight));
  }

  #cpuStart = (): NodeJS.CpuUsage | null => (this.routerCpu === "measured" ? process.cpuUsage() : null);
  /** Charges the router's work since `from` (or the fixed cost of `events`) to virtual time (the router is busy for it); returns its CPU µs. */
  #charge(from: NodeJS.CpuUsage | null, events: number): number {
    let us: number;
    if (from === null) us = (this.routerCpu as number) * 1000 * events;
    else {
      const d = process.cpuUsage(from);
      us = d.user + d.system;
    }
    this.nowMs += us / 1000;
    return us;
  }

  #pushCompletion(c: Completion): void {
    const h = this.running;
    h.push(c);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #popCompletion(): Completion | undefined {
    const h = this.running;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.at < h[m]!.at) m = l;
      if (r < h.length && h[r]!.at < h[m]!.at) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
    return top;
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
