import { performance } from "node:perf_hooks";
import { RouterError } from "../errors.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { EligibilityCache, type Demand } from "../scheduler/eligibility.js";
import { workerKind } from "../registry/task-types.js";
import { holdsNoPlanSlot } from "../scheduler/request-facts.js";
import type { Policy } from "../balancer/index.js";
import { Candidates } from "./candidates.js";
import type { DispatchContext, DispatchStrategy } from "./dispatch.js";
import { Gate, type GiveUp } from "./gate.js";
import { GiveUpSweep } from "./give-up.js";
import { Hedger, type CopyEnd, type HedgeCounts, type HedgeOffer } from "./hedge.js";
import { RoutingKeys } from "./keys.js";
import { LoadBook } from "./loads.js";
import { PlanDispatch } from "./plan-dispatch.js";
import { PolicyDispatch } from "./policy-dispatch.js";
import { WaitQueue } from "./queue.js";
import { schedulingView, type WorkerScheduling } from "./scheduling-view.js";
import type { Batch, RunEnd, Ticket } from "./ticket.js";
import { VideoJobs, type JobTimes } from "./video-jobs.js";

export type { JobTimes } from "./video-jobs.js";
export type { WorkerScheduling } from "./scheduling-view.js";
export type { RunEnd, Ticket } from "./ticket.js";
export type { CopyEnd, HedgeCounts, HedgeOffer } from "./hedge.js";

/** How requests wait and are matched to workers: the balancer's policies, or the earliest-finish planner. */
export type SchedulingMode = "policy" | "earliest-finish";

/** Options of {@link createAdmission}. */
export interface AdmissionOptions {
  registry: Registry;
  /** The pick among free workers in `policy` mode. */
  policy: Policy;
  /** Default "policy". */
  mode?: SchedulingMode;
  /** Most generation requests in flight on one worker; 0 = unlimited in `policy` mode, 1 (one at a time) per parallel slot (dp_size) in `earliest-finish` mode. */
  maxConcurrencyPerWorker: number;
  /** Compatible requests sent together to one worker in `earliest-finish` mode (the workers' `--batching-max-size`). Default 1. */
  workerBatchSize?: number;
  /** Most requests waiting in the router; beyond it, 503 queue_full. Default 10000. */
  queueSize: number;
  /** Longest wait in the queue; then 503 queue_timeout. Default 300 s. */
  queueTimeoutMs: number;
  /** Priority a queued request gains per ms waited, in ms of GPU work (see priorityKey). Default 1. */
  ageing?: number;
  /** Hedged tails (hedge.ts): copies of running requests on idle workers, in `earliest-finish` mode only. Default false. */
  hedge?: boolean;
  /** Milliseconds clock; default performance.now (tests drive a virtual fleet with their own). */
  clock?: () => number;
}

/**
 * Decides when a generation request may be dispatched and to which worker,
 * and counts it until {@link Admission.release}. The only place that holds
 * requests: during a refit or a sleep (hold), while every worker is busy, or
 * while the workers that could serve are asleep or being synced.
 *
 * In `policy` mode waiters are served first-in first-out and the balancer's
 * policy picks among workers under the concurrency cap (the original's
 * behaviour; policy-dispatch.ts). In `earliest-finish` mode requests wait in
 * the router and every arrival and completion re-plans the queue
 * largest-first onto the worker that finishes each request earliest
 * (plan-dispatch.ts, src/scheduler/plan.ts).
 */
export interface Admission {
  /** A worker right now, or null when the request must wait ({@link wait}). Throws when nothing could ever serve it. */
  tryAcquire(ticket: Ticket): Worker | null;
  /** Queues until a worker is free; rejects with queue_full / queue_timeout, or the abort reason. */
  wait(ticket: Ticket, signal: AbortSignal | null): Promise<Worker>;
  /** Counts a request that must reach a given worker (id affinity); never held. */
  acquireSpecific(worker: Worker): Worker;
  /** Ends a request counted by tryAcquire/wait (with its ticket) or acquireSpecific (null). */
  release(worker: Worker, ticket: Ticket | null, end?: RunEnd): void;
  /** Ends a request the router cut (a hedged race's loser): nothing learned, its worker counted busy for what is left of it (SGLang has no abort). */
  cut(worker: Worker, ticket: Ticket): void;
  /** Whether requests may be copied onto idle workers (--hedge on, earliest-finish). */
  readonly hedging: boolean;
  /** Offers a running request for a copy (see hedge.ts); the returned function withdraws it. */
  offerCopy(offer: HedgeOffer): () => void;
  /** How a copy started for `offer` ended. */
  copyEnded(offer: HedgeOffer, end: CopyEnd): void;
  /** Copies started and how they ended. */
  hedgeCounts(): HedgeCounts;
  /** An asynchronous job (a video) the worker runs after its request answered: counted as work until {@link jobEnded}. */
  jobStarted(worker: Worker, jobId: string, ticket: Ticket): void;
  /** The job's end, seen in a poll answer, with the worker's own timestamps of the job when it gave them. */
  jobEnded(jobId: string, ok: boolean, times?: JobTimes): void;
  /** Jobs started and not seen ended, with their worker's URL. */
  openJobs(): { jobId: string; workerUrl: string }[];
  /** Whether some worker that may serve the ticket is routable now, other than `except`. */
  hasOtherWorker(ticket: Ticket, except: string): boolean;
  /** Holds new generation requests until the returned function is called; `giveUp`: each held request ends with its error after a while. */
  hold(reason: string, giveUp?: GiveUp): () => void;
  readonly held: boolean;
  /** Generation requests dispatched and not finished. */
  readonly inFlight: number;
  readonly queued: number;
  readonly mode: SchedulingMode;
  /** Scheduling facts of every registered worker (one pass over the queue). */
  scheduling(): Map<Worker, WorkerScheduling>;
  /** Resolves true once no generation request is in flight, false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean>;
  /** Answers every waiter with `err`, and every later one (shutdown). */
  rejectAll(err: Error): void;
}

/**
 * Composes admission from its parts, one job each: the gate (holds, in
 * flight), the wait queue, the dispatch strategy of the mode (policy-
 * dispatch.ts, plan-dispatch.ts), the routing keys, the load book (runs,
 * the cost model) and the video jobs.
 *
 * Ordering rule: admission hands workers to waiters from the registry's
 * `settled` phase, never from its `change` phase. By then every `change`
 * listener has judged the change (the refit coordinator has marked a worker
 * that came back on other weights `syncing`), so a waiter is never handed a
 * worker on old weights, whatever order the listeners were registered in.
 */
export function createAdmission(options: AdmissionOptions): Admission {
  const { registry } = options;
  const mode = options.mode ?? "policy";
  const clock = options.clock ?? (() => performance.now());
  const keys = new RoutingKeys();
  const candidates = new Candidates(new EligibilityCache(registry), keys, (url) => registry.get(url));
  const loads = new LoadBook(clock);
  const gate = new Gate(() => pump());
  const queue = new WaitQueue({
    queueSize: options.queueSize,
    queueTimeoutMs: options.queueTimeoutMs,
    ordered: mode === "earliest-finish",
    whyWaiting: () => (gate.held ? `held by ${gate.reasons()}` : "no worker became free"),
    heldError: () => gate.failing()?.error() ?? null,
  });
  const batchSize = Math.max(1, options.workerBatchSize ?? 1);
  const take = (worker: Worker, ticket: Ticket, batch: Batch | null, predictedMs?: number): Worker => {
    registry.requestStarted(worker);
    gate.started();
    // A forwarded route the router does not know (LoRA...) or a mesh create is counted, but it holds no GPU slot of the planner.
    if (!holdsNoPlanSlot(ticket.demand.kind)) {
      ticket.run = loads.start(worker, ticket, batch, predictedMs);
      keys.stick(ticket.facts.routingKey, worker);
    }
    // The group's first item placed (or a retry moved it): the rest of the group follows.
    if (ticket.group !== undefined) ticket.group.worker = worker;
    registry.notifyLoad(worker);
    return worker;
  };
  function pump(): void {
    queue.live(); // compacts the queue under a long hold
    if (!gate.held && queue.queued > 0) strategy.dispatch();
  }
  const ctx: DispatchContext = { registry, policy: options.policy, candidates, loads, queue, gate, clock, cap: capOf(options, mode, batchSize), capPerSlot: options.maxConcurrencyPerWorker <= 0, batchSize, ageing: options.ageing ?? 1, take, pump };
  const strategy: DispatchStrategy = mode === "earliest-finish" ? new PlanDispatch(ctx) : new PolicyDispatch(ctx);
  const jobs = new VideoJobs(loads, () => {
    if (queue.queued > 0) pump();
  });
  registry.on("change", (e: RegistryEvent) => {
    if (e.type === "updated" && e.reason === "load") return;
    keys.forgetRings();
    loads.onRegistryChange(e);
  });
  // Any change of worker state can free capacity (a worker woke, was added, recovered); see the ordering rule above.
  registry.on("settled", () => {
    if (queue.queued > 0) pump();
  });
  const giveUp = new GiveUpSweep(gate, queue);
  const hedger = mode === "earliest-finish" && options.hedge === true ? new Hedger({ registry, candidates, loads, queue, gate, clock, take }) : null;
  // A worker that joined or recovered may be the idle one a copy needs.
  if (hedger !== null) registry.on("settled", () => hedger.check());
  return new ComposedAdmission(mode, { registry, candidates, loads, gate, queue, keys, jobs, strategy, giveUp, hedger, take, pump, clock });
}

/**
 * The per-worker cap: `--max-concurrency-per-worker`, else unlimited in
 * policy mode; in earliest-finish mode one at a time, or two batches for a
 * batching worker (its next batch waits in its queue and starts the moment
 * the GPU is free; a one-at-a-time worker gains nothing from that, and would
 * only hold work the router could move); the default is per parallel slot
 * of a worker (its dp_size; see PlanDispatch.freeSlots).
 */
function capOf(options: AdmissionOptions, mode: SchedulingMode, batchSize: number): number {
  if (options.maxConcurrencyPerWorker > 0) return options.maxConcurrencyPerWorker;
  if (mode === "policy") return 0;
  return batchSize > 1 ? 2 * batchSize : 1;
}

interface Parts {
  readonly registry: Registry;
  readonly candidates: Candidates;
  readonly loads: LoadBook;
  readonly gate: Gate;
  readonly queue: WaitQueue;
  readonly keys: RoutingKeys;
  readonly jobs: VideoJobs;
  readonly strategy: DispatchStrategy;
  readonly giveUp: GiveUpSweep;
  readonly hedger: Hedger | null;
  readonly clock: () => number;
  take(worker: Worker, ticket: Ticket, batch: Batch | null): Worker;
  pump(): void;
}

/** {@link Admission} over its parts. */
class ComposedAdmission implements Admission {
  constructor(
    readonly mode: SchedulingMode,
    private readonly p: Parts,
  ) {}

  tryAcquire(ticket: Ticket): Worker | null {
    const { gate, strategy, candidates } = this.p;
    if (!gate.held && strategy.answersAtOnce(ticket)) {
      const w = strategy.pick(ticket);
      if (w !== null) return this.p.take(w, ticket, null);
    }
    if (!candidates.mayWait(ticket, gate.held)) throw noWorkerError(this.p.registry, ticket.demand);
    return null;
  }

  wait(ticket: Ticket, signal: AbortSignal | null): Promise<Worker> {
    const { queue, strategy } = this.p;
    const before = queue.queued;
    const waiting = queue.add(ticket, strategy.priority(ticket), signal, () => strategy.aboutToLeave());
    if (queue.queued > before) strategy.arrived();
    return waiting;
  }

  acquireSpecific(worker: Worker): Worker {
    this.p.registry.requestStarted(worker);
    this.p.registry.notifyLoad(worker);
    return worker;
  }

  release(worker: Worker, ticket: Ticket | null, end: RunEnd = { ok: false }): void {
    const { registry, loads, keys, gate, queue, strategy } = this.p;
    registry.requestEnded(worker);
    if (ticket !== null) {
      const run = ticket.run;
      if (run !== null) {
        ticket.run = null;
        loads.end(run, ticket, end);
      }
      keys.unstick(ticket.facts.routingKey, worker);
      gate.ended();
    }
    registry.notifyLoad(worker);
    if (queue.queued > 0 && strategy.freesSlot(ticket)) strategy.freed();
    this.p.hedger?.check();
  }

  cut(worker: Worker, ticket: Ticket): void {
    const { registry, loads, keys, gate, clock } = this.p;
    registry.requestEnded(worker);
    const run = ticket.run;
    ticket.run = null;
    const rest = run === null ? null : loads.cut(run, clock());
    keys.unstick(ticket.facts.routingKey, worker);
    // Not in flight for a refit's drain: nobody waits for its answer, and the worker's FIFO queue puts a weight update after it.
    gate.ended();
    registry.notifyLoad(worker);
    if (rest === null) return this.#freed();
    setTimeout(() => {
      if (loads.drop(rest)) this.#freed();
    }, rest.predictedMs).unref();
  }

  /** A worker's GPU is predicted free: a waiter or a copy may take it. */
  #freed(): void {
    if (this.p.queue.queued > 0) this.p.strategy.freed();
    this.p.hedger?.check();
  }

  get hedging(): boolean {
    return this.p.hedger !== null;
  }

  offerCopy(offer: HedgeOffer): () => void {
    return this.p.hedger?.offer(offer) ?? noop;
  }

  copyEnded(offer: HedgeOffer, end: CopyEnd): void {
    this.p.hedger?.copyEnded(offer, end);
  }

  hedgeCounts(): HedgeCounts {
    return { ...(this.p.hedger?.counts ?? { started: 0, won: 0, cut: 0, failed: 0 }) };
  }

  jobStarted(worker: Worker, jobId: string, ticket: Ticket): void {
    this.p.jobs.started(worker, jobId, ticket);
  }

  jobEnded(jobId: string, ok: boolean, times?: JobTimes): void {
    this.p.jobs.ended(jobId, ok, times);
  }

  openJobs(): { jobId: string; workerUrl: string }[] {
    return this.p.jobs.open();
  }

  hasOtherWorker(ticket: Ticket, except: string): boolean {
    for (const w of this.p.candidates.of(ticket)) if (w.url !== except) return true;
    return false;
  }

  scheduling(): Map<Worker, WorkerScheduling> {
    const { registry, loads, queue, candidates, clock } = this.p;
    return schedulingView(registry, loads, queue, candidates, clock());
  }

  hold(reason: string, giveUp?: GiveUp): () => void {
    const release = this.p.gate.hold(reason, giveUp);
    if (giveUp) this.p.giveUp.start();
    // A copy never runs across a refit or a sleep: its worker may get other weights before it answers.
    this.p.hedger?.cancelAll();
    return release;
  }

  get held(): boolean {
    return this.p.gate.held;
  }

  get inFlight(): number {
    return this.p.gate.inFlight;
  }

  get queued(): number {
    return this.p.queue.queued;
  }

  whenIdle(timeoutMs: number): Promise<boolean> {
    return this.p.gate.whenIdle(timeoutMs);
  }

  rejectAll(err: Error): void {
    // Requests still reading their body or retrying must not queue after this.
    this.p.queue.rejectAll(err);
  }
}

const noop = (): void => undefined;

/** The precise reason nothing can take a request, for the client's error. */
export function noWorkerError(registry: Registry, demand: Demand): RouterError {
  // A video request that no registered worker could ever serve is the
  // client's mistake (400, as the original), even in an empty pool.
  if (demand.kind === "video") {
    const video = registry.all().filter((w) => w.capabilities.videoSupport === true);
    if (video.length === 0) {
      return new RouterError("no_video_workers", "No video-capable workers available in current worker pool (no worker's /v1/models task_type is T2V, I2V or TI2V).");
    }
    return new RouterError("no_healthy_workers", `No healthy video-capable workers available (${video.length} registered, none routable)`, { details: { retryAfterS: 1 } });
  }
  if (demand.kind === "mesh") {
    const mesh = registry.all().filter((w) => workerKind(w.capabilities.taskType) === "mesh");
    if (mesh.length === 0) return new RouterError("no_mesh_workers", "No mesh-capable workers available in current worker pool (no worker's /v1/models task_type is I2M).");
    return new RouterError("no_healthy_workers", `No healthy mesh-capable workers available (${mesh.length} registered, none routable)`, { details: { retryAfterS: 1 } });
  }
  if (registry.size === 0) return new RouterError("no_healthy_workers", "No workers registered in the pool", { details: { retryAfterS: 1 } });
  return new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
}
