import { performance } from "node:perf_hooks";
import type { Policy } from "../balancer/index.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { CostModel } from "../scheduler/cost-model.js";
import { EligibilityCache, keyOf, type Demand } from "../scheduler/eligibility.js";
import { planDispatch, priorityKey, type PlanItem, type PlanWorker } from "../scheduler/plan.js";
import type { RequestFacts } from "../scheduler/request-facts.js";
import { HashRing } from "../scheduler/routing-key.js";

/** How requests wait and are matched to workers: the balancer's policies, or the earliest-finish planner. */
export type SchedulingMode = "policy" | "earliest-finish";

/** Options of {@link createAdmission}. */
export interface AdmissionOptions {
  registry: Registry;
  /** The pick among free workers in `policy` mode. */
  policy: Policy;
  /** Default "policy". */
  mode?: SchedulingMode;
  /** Most generation requests in flight on one worker; 0 = unlimited in `policy` mode, 1 (one at a time) in `earliest-finish` mode. */
  maxConcurrencyPerWorker: number;
  /** Compatible requests sent together to one worker in `earliest-finish` mode (the workers' `--batching-max-size`). Default 1. */
  workerBatchSize?: number;
  /** Most requests waiting in the router; beyond it, 503 queue_full. Default 10000. */
  queueSize: number;
  /** Longest wait in the queue; then 503 queue_timeout. Default 300 s. */
  queueTimeoutMs: number;
  /** Priority a queued request gains per ms waited, in ms of GPU work (see priorityKey). Default 1. */
  ageing?: number;
  /** Milliseconds clock; default performance.now (tests drive a virtual fleet with their own). */
  clock?: () => number;
}

/**
 * One generation request as admission sees it: what it needs and costs.
 * Made once per request by the data plane; retries reuse it.
 */
export interface Ticket {
  readonly demand: Demand;
  readonly facts: RequestFacts;
  /** Workers already tried (retries go elsewhere). */
  exclude: Set<string> | null;
  /** Set by admission while the request runs. */
  run: Run | null;
  /** Only workers holding this weight version may serve it (a rollout job pinned to a version); null = any. */
  weightVersion: string | null;
  /**
   * Set for the items of a rollout job: they wait as long as their job lets
   * them (its deadline, or until cancelled), not `--queue-timeout`, and do
   * not count against `--queue-size` (a job's size is bounded on its own).
   */
  fromJob?: boolean;
}

/** A dispatched request: when it started, what it was predicted to take, and its batch. */
interface Run {
  readonly worker: Worker;
  readonly startedMs: number;
  readonly predictedMs: number;
  readonly model: string;
  readonly batch: Batch | null;
}

/** Requests sent together to a batching worker: observed as one when the last member ends. */
interface Batch {
  left: number;
  readonly size: number;
  readonly startedMs: number;
  readonly items: { facts: RequestFacts; ok: boolean }[];
}

interface Waiter {
  readonly ticket: Ticket;
  readonly key: number;
  readonly resolve: (w: Worker) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | null;
  readonly onAbort: (() => void) | null;
  settled: boolean;
}

/** Per-worker bookkeeping of the planner. */
interface WorkerLoad {
  /** Dispatched requests and asynchronous jobs (videos) not finished. */
  readonly runs: Set<Run>;
  /** End of the last observed answer: a FIFO worker starts the next request no earlier. */
  lastDoneMs: number;
  /** Requests of the worker's queue (routing-key pinned) waiting in the router. */
  pinnedQueued: number;
}

/** What /workers, the RPC and /metrics show of a worker's scheduling. */
export interface WorkerScheduling {
  /** Learned speed relative to the fleet average for its model (1 = average). */
  speed: number;
  /** Observed service times the speed rests on. */
  observations: number;
  /** Relative scatter of its service times around the predictions (see CostModelSnapshot.noise). */
  noise: number;
  /** Predicted ms of work dispatched to it and not finished. */
  inFlightWorkMs: number;
  /** Predicted ms of the queued requests that only it can serve, or that the last plan placed on it. */
  queuedWorkMs: number;
}

/** A job's creation and completion in the worker's clock (ms). */
export interface JobTimes {
  createdMs: number;
  completedMs: number;
}

/** The end of a request, for the cost model: whether it succeeded and when its answer's head arrived. */
export interface RunEnd {
  ok: boolean;
  /** performance.now() at the answer's head; default: now. */
  doneMs?: number;
}

/**
 * Decides when a generation request may be dispatched and to which worker,
 * and counts it until {@link Admission.release}. The only place that holds
 * requests: during a refit or a sleep (hold), while every worker is busy, or
 * while the workers that could serve are asleep or being synced.
 *
 * In `policy` mode waiters are served first-in first-out and the balancer's
 * policy picks among workers under the concurrency cap (the original's
 * behaviour). In `earliest-finish` mode requests wait in the router, not in
 * the workers' queues (which the router cannot take back), and every arrival
 * and completion re-plans the queue largest-first onto the worker that
 * finishes each request earliest (src/scheduler/plan.ts), with speeds learned
 * from observed service times (src/scheduler/cost-model.ts).
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
  /** An asynchronous job (a video) the worker runs after its request answered: counted as work until {@link jobEnded}. */
  jobStarted(worker: Worker, jobId: string, ticket: Ticket): void;
  /** The job's end, seen in a poll answer, with the worker's own timestamps of the job when it gave them. */
  jobEnded(jobId: string, ok: boolean, times?: JobTimes): void;
  /** Whether some worker that may serve the ticket is routable now, other than `except`. */
  hasOtherWorker(ticket: Ticket, except: string): boolean;
  /** Holds new generation requests until the returned function is called. */
  hold(reason: string): () => void;
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

/** The model name a worker's observations are filed under: its first served model, or its URL when unknown. */
function modelOf(worker: Worker): string {
  return worker.capabilities.models[0] ?? "";
}

/** The longest Node timer (about 24.8 days): a rollout item waits until its job ends it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Observations of a worker (per model) before the planner packs whole queues on its estimates (see plan.ts). */
const LEARNED_OBSERVATIONS = 3;

/** Jobs whose end is never seen (nobody polls) stop counting after this multiple of their prediction. */
const JOB_EXPIRY_FACTOR = 3;
const JOB_EXPIRY_MIN_MS = 60_000;

export function createAdmission(options: AdmissionOptions): Admission {
  const { registry, policy } = options;
  const mode = options.mode ?? "policy";
  const planned = mode === "earliest-finish";
  const batchSize = Math.max(1, options.workerBatchSize ?? 1);
  // A batching worker gets its next batch while one runs: the batch waits in
  // its queue and starts the moment the GPU is free (a one-at-a-time worker
  // gains nothing from that, and would only hold work the router could move).
  const cap = options.maxConcurrencyPerWorker > 0 ? options.maxConcurrencyPerWorker : planned ? (batchSize > 1 ? 2 * batchSize : 1) : 0;
  const ageing = options.ageing ?? 1;
  const clock = options.clock ?? (() => performance.now());
  const eligibility = new EligibilityCache(registry);
  const costs = new CostModel();
  const loads = new Map<Worker, WorkerLoad>();
  const holds = new Map<number, string>();
  let nextHold = 0;
  /** Waiters; in earliest-finish mode sorted by key, largest first. */
  let queue: Waiter[] = [];
  let queued = 0;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  /** Set by rejectAll (shutdown): every later wait() fails with it. */
  let closed: Error | null = null;
  /** Routing keys with requests queued or running: key -> worker and count. */
  const stickyKeys = new Map<string, { worker: Worker; count: number }>();
  const jobs = new Map<string, { run: Run; ticket: Ticket; expires: NodeJS.Timeout }>();
  /** Latest job completion per worker, in the worker's clock. */
  const jobDoneMs = new WeakMap<Worker, number>();
  /** Hash rings per demand (kind, model), rebuilt after a registry change. */
  const rings = new Map<string, HashRing<Worker>>();
  /** Where the plan starts looking among equally good workers; moves every round. */
  let rotation = 0;

  function loadOf(w: Worker): WorkerLoad {
    let l = loads.get(w);
    if (!l) {
      l = { runs: new Set(), lastDoneMs: 0, pinnedQueued: 0 };
      loads.set(w, l);
    }
    return l;
  }

  /** The process epoch the cost model's knowledge of each worker is from. */
  const epochs = new WeakMap<Worker, number>();
  registry.on("change", (e) => {
    if (e.type === "updated" && e.reason === "load") return;
    rings.clear();
    if (e.type === "removed") {
      loads.delete(e.worker);
      costs.forget(e.worker.url);
    }
    // Another process behind the URL (Worker.processEpoch) is a new worker,
    // maybe on another GPU: what the old one taught the cost model no longer
    // holds, and its first request is a cold start again.
    if (e.type === "updated" && e.worker.processEpoch !== (epochs.get(e.worker) ?? 0)) {
      epochs.set(e.worker, e.worker.processEpoch);
      costs.forget(e.worker.url);
    }
  });

  function candidates(ticket: Ticket): readonly Worker[] {
    let all = eligibility.routable(ticket.demand);
    const version = ticket.weightVersion;
    if (version !== null) all = all.filter((w) => w.weightVersion === version);
    const ex = ticket.exclude;
    const pinned = pinnedWorker(ticket, all);
    // A key's worker that already failed this request is not waited for: the retry goes elsewhere.
    if (pinned !== null && !ex?.has(pinned.url)) return [pinned];
    return ex === null ? all : all.filter((w) => !ex.has(w.url));
  }

  /** The worker a routing key sends the ticket to, or null without a key (or when its worker is not a candidate). */
  function pinnedWorker(ticket: Ticket, all: readonly Worker[]): Worker | null {
    const key = ticket.facts.routingKey;
    if (key === null || all.length === 0) return null;
    const sticky = stickyKeys.get(key);
    if (sticky && all.includes(sticky.worker)) return sticky.worker;
    const demandKey = keyOf(ticket.demand);
    let ring = rings.get(demandKey);
    if (ring === undefined) {
      ring = new HashRing(all);
      if (rings.size > 1000) rings.clear();
      rings.set(demandKey, ring);
    }
    const keysOn = new Map<Worker, number>();
    for (const s of stickyKeys.values()) keysOn.set(s.worker, (keysOn.get(s.worker) ?? 0) + 1);
    const picked = ring.pick(key, (w) => keysOn.get(w) ?? 0);
    return picked !== null && all.includes(picked) ? picked : all[0]!;
  }

  function stick(ticket: Ticket, worker: Worker): void {
    const key = ticket.facts.routingKey;
    if (key === null) return;
    const s = stickyKeys.get(key);
    if (s && s.worker === worker) s.count++;
    else stickyKeys.set(key, { worker, count: 1 });
  }

  /** Ends one request of a key on `worker`; requests of a key that moved to another worker no longer count. */
  function unstick(ticket: Ticket, worker: Worker): void {
    const key = ticket.facts.routingKey;
    if (key === null) return;
    const s = stickyKeys.get(key);
    if (s && s.worker === worker && --s.count <= 0) stickyKeys.delete(key);
  }

  function predictMs(ticket: Ticket, w: Worker): number {
    return costs.predictMs(w.url, modelOf(w), ticket.facts.work);
  }

  /** The request's cost on the fleet's average worker, filed under a model a worker serves (never the client's string: it may name nothing). */
  function referenceMs(ticket: Ticket): number {
    const model = eligibility.registered(ticket.demand)[0]?.capabilities.models[0] ?? "";
    return costs.referenceMs(model, ticket.facts.work);
  }

  /**
   * How much slower than predicted a worker is running right now: a request
   * past its prediction says so before it ends (1.5 × its elapsed/predicted,
   * as it is not done yet). A slow GPU's first request thus shows it slow
   * while it still runs, and no more work is planned onto it as if fast.
   */
  function slowdown(w: Worker, nowMs: number): number {
    const l = loads.get(w);
    if (!l) return 1;
    let s = 1;
    let prevEnd = 0;
    for (const r of l.runs) {
      const began = Math.max(r.startedMs, prevEnd, l.lastDoneMs);
      const elapsed = nowMs - began;
      if (elapsed > r.predictedMs && r.predictedMs > 0) s = Math.max(s, (1.5 * elapsed) / r.predictedMs);
      prevEnd = began + r.predictedMs;
    }
    return s;
  }

  /**
   * When a worker is predicted to finish what it has: its runs one after
   * another in start order (a worker's scheduler queue is FIFO), each from
   * the later of its start and the previous one's end, stretched by the
   * worker's current slowdown.
   */
  function busyUntil(w: Worker, nowMs: number, slow: number): number {
    const l = loads.get(w);
    if (!l || l.runs.size === 0) return nowMs;
    let t = 0;
    for (const r of l.runs) t = Math.max(t, r.startedMs, l.lastDoneMs) + r.predictedMs * slow;
    return Math.max(t, nowMs);
  }

  /**
   * Requests the planner may still send a worker now: its slots minus the
   * generations (and video jobs) it runs. Affinity requests (an image's or
   * a video's content) do not count: they use no GPU.
   */
  function freeSlots(w: Worker): number {
    if (cap === 0) return Number.MAX_SAFE_INTEGER;
    return Math.max(0, cap - (loads.get(w)?.runs.size ?? 0));
  }

  /**
   * earliest-finish queues every arrival for one event-loop turn before the
   * plan sends it (so a burst is sorted first): requests that free workers
   * will take in that plan are not waiting, and must not count against
   * --queue-size (how many a burst lost to queue_full depended on how its
   * arrivals fell into turns). Only asked when the queue looks full.
   */
  function slotsAboutToFree(): number {
    if (!planned || holds.size > 0) return 0;
    let free = 0;
    for (const w of registry.routable()) free += freeSlots(w);
    return free;
  }

  function take(worker: Worker, ticket: Ticket, batch: Batch | null): Worker {
    registry.requestStarted(worker);
    inFlight++;
    if (ticket.demand.kind === "other") {
      // A forwarded route the router does not know (LoRA, meshes...): counted, but it holds no GPU slot of the planner.
      registry.notifyLoad(worker);
      return worker;
    }
    const run: Run = { worker, startedMs: clock(), predictedMs: predictMs(ticket, worker), model: modelOf(worker), batch };
    ticket.run = run;
    loadOf(worker).runs.add(run);
    stick(ticket, worker);
    registry.notifyLoad(worker);
    return worker;
  }

  /** Policy mode: the policy's pick among workers under the cap; null if none. */
  function pickByPolicy(ticket: Ticket): Worker | null {
    const all = candidates(ticket);
    if (all.length === 0) return null;
    if (cap === 0 || planned) return policy.pick(all);
    const free = all.filter((w) => w.activeRequests < cap);
    return free.length === 0 ? null : policy.pick(free);
  }

  /**
   * Whether waiting can help: some worker that may serve the request exists
   * and is only temporarily unable to (busy, asleep, syncing, draining,
   * ejected, or held). An empty pool, or one where every such worker is dead,
   * fails at once so that clients' own retries take over.
   */
  function mayWait(ticket: Ticket): boolean {
    const ex = ticket.exclude;
    for (const w of eligibility.registered(ticket.demand)) {
      if (ex !== null && ex.has(w.url)) continue; // already failed this request
      // An ejection ends with a probe within a minute: waiting for it beats failing.
      if (!w.dead || holds.size > 0 || w.deadReason === "ejected") return true;
    }
    return false;
  }

  function pump(): void {
    // Waiters that timed out or left are dropped lazily; under a long hold
    // nothing is served, so compact here to keep the array bounded.
    if (queue.length > 2 * queued + 64) queue = queue.filter((w) => !w.settled);
    if (holds.size > 0 || queued === 0) return;
    if (planned) pumpPlanned();
    else pumpFifo();
  }

  function pumpFifo(): void {
    // First-in first-out per demand: once a waiter finds no worker, later
    // waiters of the same demand wait behind it (those with exclusions or a
    // routing key may still go: they look at other workers).
    const exhausted = new Set<string>();
    let live = 0;
    for (const waiter of queue) {
      if (waiter.settled) continue;
      const t = waiter.ticket;
      const plain = t.exclude === null && t.facts.routingKey === null;
      const demandKey = plain ? keyOf(t.demand) : "";
      const w = plain && exhausted.has(demandKey) ? null : pickByPolicy(t);
      if (w === null) {
        if (plain) exhausted.add(demandKey);
        queue[live++] = waiter;
        continue;
      }
      settle(waiter);
      waiter.resolve(take(w, t, null));
    }
    queue.length = live;
  }

  function pumpPlanned(): void {
    const nowMs = clock();
    // Forwarded routes that were held (a refit) go at once: they use no GPU slot.
    for (const waiter of queue) {
      if (waiter.settled || waiter.ticket.demand.kind !== "other") continue;
      const w = pickByPolicy(waiter.ticket);
      if (w === null) continue;
      settle(waiter);
      waiter.resolve(take(w, waiter.ticket, null));
    }
    const live = queue.filter((w) => !w.settled);
    const state = new Map<Worker, PlanWorker>();
    const slow = new Map<Worker, number>();
    const items: PlanItem<Worker>[] = [];
    for (const waiter of live) {
      const cands = candidates(waiter.ticket);
      const video = waiter.ticket.demand.kind === "video";
      for (const w of cands) {
        if (state.has(w)) continue;
        const s = slowdown(w, nowMs);
        slow.set(w, s);
        const snap = costs.snapshot(w.url, modelOf(w));
        state.set(w, { busyUntilMs: busyUntil(w, nowMs, s), freeSlots: freeSlots(w), learned: snap.observations >= LEARNED_OBSERVATIONS, noise: snap.noise });
      }
      items.push({
        candidates: cands,
        predictMs: (w) => predictMs(waiter.ticket, w) * slow.get(w)!,
      });
      // A held video create is sent as soon as any candidate can take it (see pickAlone).
      if (video) for (const w of cands) state.get(w)!.freeSlots = Math.max(1, state.get(w)!.freeSlots);
    }
    // A worker the cost model knows nothing of yet (just registered, or a new
    // model) first gets the smallest request it may serve: its speed is
    // learned from a cheap request, instead of a large one landing on a GPU
    // that may turn out several times slower.
    const plan: [number, Worker][] = [];
    const probed = new Set<number>();
    for (const [w, st] of state) {
      if (st.freeSlots === 0 || (loads.get(w)?.runs.size ?? 0) > 0 || costs.snapshot(w.url, modelOf(w)).observations > 0) continue;
      for (let i = live.length - 1; i >= 0; i--) {
        if (probed.has(i) || !items[i]!.candidates.includes(w)) continue;
        probed.add(i);
        plan.push([i, w]);
        st.freeSlots--;
        st.busyUntilMs = Math.max(st.busyUntilMs, nowMs) + items[i]!.predictMs(w);
        break;
      }
    }
    const rest = probed.size === 0 ? items : items.map((it, i) => (probed.has(i) ? { candidates: [], predictMs: it.predictMs } : it));
    plan.push(...planDispatch(rest, state, nowMs, Infinity, rotation++));
    if (rotation > 1e9) rotation = 0;
    if (plan.length === 0) {
      queue = live;
      return;
    }
    const sent = new Set<number>();
    for (const [i, worker] of plan) {
      if (sent.has(i)) continue; // taken by a batch
      const first = live[i]!;
      // The worker filled up with a batch meanwhile (video creates never wait for a slot).
      if (first.ticket.demand.kind !== "video" && freeSlots(worker) === 0) continue;
      const members = [first];
      sent.add(i);
      // A batching worker gets compatible requests with the first one (the
      // planner's slot count already allows them), largest first.
      const room = Math.min(freeSlots(worker), batchSize) - 1;
      if (room > 0 && first.ticket.facts.batchKey !== null) {
        for (let j = 0; j < live.length && members.length <= room; j++) {
          const other = live[j]!;
          if (sent.has(j) || other.ticket.facts.batchKey !== first.ticket.facts.batchKey) continue;
          if (!candidates(other.ticket).includes(worker)) continue;
          members.push(other);
          sent.add(j);
        }
      }
      const batch: Batch | null = members.length > 1 ? { left: members.length, size: members.length, startedMs: nowMs, items: [] } : null;
      for (const m of members) {
        settle(m);
        m.resolve(take(worker, m.ticket, batch));
      }
    }
    queue = live.filter((_, i) => !sent.has(i));
  }

  function settle(waiter: Waiter): void {
    waiter.settled = true;
    queued--;
    clearTimeout(waiter.timer);
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener("abort", waiter.onAbort);
  }

  /** Inserts a waiter keeping the queue in priority order (largest key first; ties in arrival order). */
  function enqueue(waiter: Waiter): void {
    if (!planned) {
      queue.push(waiter);
      return;
    }
    let lo = 0;
    let hi = queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (queue[mid]!.key >= waiter.key) lo = mid + 1;
      else hi = mid;
    }
    queue.splice(lo, 0, waiter);
  }

  /** One plan after the current I/O turn for everything that arrived in it. */
  let pumpScheduled = false;
  function schedulePump(): void {
    if (pumpScheduled) return;
    pumpScheduled = true;
    setImmediate(() => {
      pumpScheduled = false;
      pump();
    });
  }

  // Any change of worker state can free capacity (a worker woke, was added,
  // recovered). Deferred to a microtask: other listeners of the same change
  // (the refit coordinator marking a returning worker `syncing`) must run
  // first, or a waiter could be handed a worker on old weights.
  let pumpQueued = false;
  registry.on("change", (e) => {
    if (queued === 0 || pumpQueued || (e.type === "updated" && e.reason === "load")) return;
    pumpQueued = true;
    queueMicrotask(() => {
      pumpQueued = false;
      pump();
    });
  });

  /** Feeds an ended run to the cost model: its service time is from the later of its start and the worker's previous answer. */
  function observe(run: Run, ticket: Ticket, end: RunEnd): void {
    // A video create answers at once: it says nothing of the job's time (learned from polls, see jobEnded).
    if (ticket.demand.kind === "video") return;
    const l = loads.get(run.worker);
    const doneMs = end.doneMs ?? clock();
    if (run.batch !== null) {
      const b = run.batch;
      b.items.push({ facts: ticket.facts, ok: end.ok });
      if (--b.left > 0) return;
      // A batch is observed once, when its last member ends: each member is
      // charged its share, which is what the worker's throughput was.
      const share = (doneMs - Math.max(b.startedMs, l?.lastDoneMs ?? 0)) / b.size;
      if (b.items.every((i) => i.ok)) for (const i of b.items) costs.observe(run.worker.url, run.model, i.facts.work, share, doneMs);
    } else if (end.ok) {
      costs.observe(run.worker.url, run.model, ticket.facts.work, doneMs - Math.max(run.startedMs, l?.lastDoneMs ?? 0), doneMs);
    }
    if (l && doneMs > l.lastDoneMs) l.lastDoneMs = doneMs;
  }

  const admission: Admission = {
    mode,

    tryAcquire(ticket) {
      // earliest-finish never answers at once: the request joins the queue
      // and the plan runs after the current I/O turn, so the requests of a
      // burst that arrived together are sorted largest-first before the
      // first is sent (a lone request waits one event-loop turn).
      if (holds.size === 0 && (!planned || ticket.demand.kind === "other")) {
        const w = pickByPolicy(ticket);
        if (w !== null) return take(w, ticket, null);
      }
      if (!mayWait(ticket)) throw noWorkerError(registry, ticket.demand);
      return null;
    },

    wait(ticket, signal) {
      if (closed !== null) return Promise.reject(closed);
      if (queued >= options.queueSize && ticket.fromJob !== true && queued - slotsAboutToFree() >= options.queueSize) {
        return Promise.reject(new RouterError("queue_full", `router queue is full (${options.queueSize} requests waiting)`, { details: { retryAfterS: 1 } }));
      }
      return new Promise<Worker>((resolve, reject) => {
        const waiter: Waiter = {
          ticket,
          key: planned ? priorityKey(referenceMs(ticket), clock(), ageing) : 0,
          resolve,
          reject,
          signal,
          settled: false,
          timer: setTimeout(() => {
            if (waiter.settled) return;
            settle(waiter);
            const why = holds.size > 0 ? `held by ${[...new Set(holds.values())].join(", ")}` : "no worker became free";
            reject(new RouterError("queue_timeout", `request waited ${Math.round(options.queueTimeoutMs / 1000)} s in the router queue (${why})`, { details: { retryAfterS: 5 } }));
          }, ticket.fromJob === true ? MAX_TIMER_MS : options.queueTimeoutMs),
          onAbort: signal
            ? () => {
                if (waiter.settled) return;
                settle(waiter);
                reject(signal.reason instanceof Error ? signal.reason : new Error("client went away while queued"));
              }
            : null,
        };
        waiter.timer.unref();
        if (signal) {
          if (signal.aborted) {
            clearTimeout(waiter.timer);
            reject(signal.reason instanceof Error ? signal.reason : new Error("client went away"));
            return;
          }
          signal.addEventListener("abort", waiter.onAbort!, { once: true });
        }
        enqueue(waiter);
        queued++;
        if (planned) schedulePump();
        else pump();
      });
    },

    acquireSpecific(worker) {
      registry.requestStarted(worker);
      registry.notifyLoad(worker);
      return worker;
    },

    release(worker, ticket, end = { ok: false }) {
      registry.requestEnded(worker);
      if (ticket !== null) {
        inFlight--;
        const run = ticket.run;
        if (run !== null) {
          ticket.run = null;
          loads.get(run.worker)?.runs.delete(run);
          observe(run, ticket, end);
        }
        unstick(ticket, worker);
        if (inFlight === 0 && idleWaiters.length) {
          const ws = idleWaiters;
          idleWaiters = [];
          for (const w of ws) w();
        }
      }
      registry.notifyLoad(worker);
      // An affinity request (ticket null) frees no planner slot: nothing to re-plan.
      if (queued > 0 && (ticket !== null || !planned)) pump();
    },

    jobStarted(worker, jobId, ticket) {
      const predicted = predictMs(ticket, worker);
      const run: Run = { worker, startedMs: clock(), predictedMs: predicted, model: modelOf(worker), batch: null };
      loadOf(worker).runs.add(run);
      const expires = setTimeout(() => admission.jobEnded(jobId, false), Math.max(JOB_EXPIRY_MIN_MS, JOB_EXPIRY_FACTOR * predicted));
      expires.unref();
      const old = jobs.get(jobId);
      if (old) {
        clearTimeout(old.expires);
        loads.get(old.run.worker)?.runs.delete(old.run);
      }
      jobs.set(jobId, { run, ticket, expires });
    },

    jobEnded(jobId, ok, times) {
      const job = jobs.get(jobId);
      if (!job) return;
      jobs.delete(jobId);
      clearTimeout(job.expires);
      const l = loads.get(job.run.worker);
      l?.runs.delete(job.run);
      if (ok && times !== undefined && l !== undefined) {
        // Jobs run one after another on the worker: this one started at the
        // later of its creation and the previous job's completion.
        const last = jobDoneMs.get(job.run.worker) ?? 0;
        costs.observe(job.run.worker.url, job.run.model, job.ticket.facts.work, times.completedMs - Math.max(times.createdMs, last), times.completedMs);
        if (times.completedMs > last) jobDoneMs.set(job.run.worker, times.completedMs);
      }
      if (queued > 0) pump();
    },

    hasOtherWorker(ticket, except) {
      for (const w of candidates(ticket)) if (w.url !== except) return true;
      return false;
    },

    scheduling() {
      const nowMs = clock();
      const out = new Map<Worker, WorkerScheduling>();
      for (const w of registry.all()) {
        const snap = costs.snapshot(w.url, modelOf(w));
        const l = loads.get(w);
        let inFlightWorkMs = 0;
        if (l) {
          let t = 0;
          for (const r of l.runs) {
            t = Math.max(t, r.startedMs) + r.predictedMs;
            inFlightWorkMs = Math.max(0, t - nowMs);
          }
        }
        out.set(w, { speed: snap.speed, observations: snap.observations, noise: snap.noise, inFlightWorkMs: Math.round(inFlightWorkMs), queuedWorkMs: 0 });
      }
      // A queued request counts on the worker it can only go to, or in equal
      // shares on the workers it may go to.
      for (const waiter of queue) {
        if (waiter.settled) continue;
        const cands = candidates(waiter.ticket);
        for (const w of cands) {
          const s = out.get(w);
          if (s) s.queuedWorkMs += predictMs(waiter.ticket, w) / cands.length;
        }
      }
      for (const s of out.values()) s.queuedWorkMs = Math.round(s.queuedWorkMs);
      return out;
    },

    hold(reason) {
      const id = nextHold++;
      holds.set(id, reason);
      return () => {
        if (holds.delete(id)) pump();
      };
    },

    get held() {
      return holds.size > 0;
    },
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return queued;
    },

    whenIdle(timeoutMs) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = () => {
          clearTimeout(t);
          resolve(true);
        };
        const t = setTimeout(() => {
          idleWaiters = idleWaiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs);
        idleWaiters.push(done);
      });
    },

    rejectAll(err) {
      // Requests still reading their body or retrying must not queue after this.
      closed = err;
      for (const waiter of queue) {
        if (waiter.settled) continue;
        settle(waiter);
        waiter.reject(err);
      }
      queue = [];
    },
  };
  return admission;
}

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
  if (registry.size === 0) return new RouterError("no_healthy_workers", "No workers registered in the pool", { details: { retryAfterS: 1 } });
  return new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
}
