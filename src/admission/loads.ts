import type { RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { CostModel, type CostModelSnapshot } from "../scheduler/cost-model.js";
import type { WorkFeatures } from "../scheduler/request-facts.js";
import { BatchGains, REANCHOR_RATIO } from "./batch-gains.js";
import { SendAges } from "./explore.js";
import { MISS_AGAIN, MISS_GAP_MIN_MS, MISS_GAP_OBSERVATIONS, MISS_MIN_OBSERVATIONS, missAfter } from "./misses.js";
import { queueEndMs, runBeganMs, runningSlowdown, slotEndsMs, slowdownChangeMs, workLeftMs } from "./run-timeline.js";
import { modelOf, type Batch, type Run, type RunEnd, type Ticket } from "./ticket.js";

/** Generations a worker runs at once (its dp_size; see WorkerCapabilities.parallelSlots). */
export function parallelSlotsOf(w: Worker): number {
  return w.capabilities.parallelSlots ?? 1;
}

/**
 * A worker that answered nothing for this long (ms) before a burst began is probed with a small
 * request first (plan-dispatch.ts): its speed may have changed meanwhile (another tenant, a
 * throttled GPU), and the burst's largest requests go out in its first plan.
 */
export const STALE_MS = 1000;

/** Per-worker bookkeeping of what it runs. */
interface WorkerLoad {
  /** Dispatched requests and asynchronous jobs (videos) not finished, in start order. */
  readonly runs: Set<Run>;
  /** End of the last observed answer: a FIFO worker starts the next request no earlier. */
  lastDoneMs: number;
  /** Its last answer's time over the cost model's prediction after learning from it, when MISS_ALONE or more, else 1 (see {@link LoadBook.slowdown}). */
  lastMiss: number;
  /** Sent a request as a stale worker (see {@link LoadBook.staleIdle}) and not answered since: its speed since the gap is not confirmed. */
  unconfirmed: boolean;
}

/**
 * What each worker runs (requests, batches, video jobs) and what its answers
 * teach the cost model: predictions of a request on a worker, when a worker
 * is predicted to be free, and how much slower than predicted it runs now.
 */
export class LoadBook {
  /** A large fleet's refit runs a slice per turn (cost-refit.ts): no turn of the router carries a whole one. */
  readonly costs = new CostModel({ defer: (slice) => setImmediate(slice) });
  /** What one more member of a batch costs, learned per model and size (batch-gains.ts). */
  readonly gains = new BatchGains<Worker>();
  /** Batches of 2 or more sent and not ended, by their gain class (a class is explored by one batch at a time: batchUntried). */
  readonly #batchesRunning = new Map<string, number>();
  readonly #batchClass = new Map<Batch, string>();
  /** How long each worker was sent nothing, for exploration (explore.ts). */
  readonly ages = new SendAges();
  readonly #loads = new Map<Worker, WorkerLoad>();
  /** The process epoch the cost model's knowledge of each worker is from. */
  readonly #epochs = new WeakMap<Worker, number>();
  /** Workers whose runs or learned costs changed since the planner last asked (see {@link takeChanged}). */
  #changed = new Set<Worker>();
  #spare = new Set<Worker>();
  /** Runs counted on all workers: 0 = the fleet is idle, and the next run begins a burst. */
  #active = 0;
  /** Workers that were idle and had answered nothing for STALE_MS when the current burst began, not sent anything since. */
  #stale = new Set<Worker>();

  constructor(private readonly clock: () => number) {}

  /** A worker that left, or another process behind its URL, is learned anew. */
  onRegistryChange(e: RegistryEvent): void {
    this.#changed.add(e.worker);
    if (e.type === "removed") {
      this.#active -= this.#loads.get(e.worker)?.runs.size ?? 0;
      this.#stale.delete(e.worker);
      this.#loads.delete(e.worker);
      this.costs.forget(e.worker.url);
      this.ages.forget(e.worker);
    }
    // Another process behind the URL (Worker.processEpoch) is a new worker,
    // maybe on another GPU: what the old one taught the cost model no longer
    // holds, and its first request is a cold start again.
    if (e.type === "updated" && e.worker.processEpoch !== (this.#epochs.get(e.worker) ?? 0)) {
      this.#epochs.set(e.worker, e.worker.processEpoch);
      this.costs.forget(e.worker.url);
      this.ages.forget(e.worker);
    }
  }

  predictMs(work: WorkFeatures | null, w: Worker): number {
    return this.costs.predictMs(w.url, modelOf(w), work);
  }

  snapshot(w: Worker): CostModelSnapshot {
    return this.costs.snapshot(w.url, modelOf(w));
  }

  /** Counts a run of `ticket` on `worker` from now (predicted to take `predictedMs`, default the cost model's). */
  start(worker: Worker, ticket: Ticket, batch: Batch | null, predictedMs?: number): Run {
    const run: Run = { worker, startedMs: this.clock(), predictedMs: predictedMs ?? this.predictMs(ticket.facts.work, worker), model: modelOf(worker), batch };
    const l = this.#loadOf(worker);
    l.runs.add(run);
    this.#active++;
    if (this.#stale.delete(worker)) l.unconfirmed = true;
    this.#changed.add(worker);
    this.ages.sent(worker, run.model);
    if (batch !== null && batch.size >= 2 && !this.#batchClass.has(batch)) {
      const cls = BatchGains.classOf(run.model, ticket.facts.work);
      this.#batchClass.set(batch, cls);
      this.#batchesRunning.set(cls, (this.#batchesRunning.get(cls) ?? 0) + 1);
    }
    return run;
  }

  /** Stops counting a run (a request that ended, a video job seen done or expired). */
  drop(run: Run): boolean {
    this.#changed.add(run.worker);
    return this.#delete(run);
  }

  #delete(run: Run): boolean {
    const deleted = this.#loads.get(run.worker)?.runs.delete(run) ?? false;
    if (deleted) this.#active--;
    return deleted;
  }

  /**
   * The idle workers whose knowledge is stale: they had answered nothing for
   * {@link STALE_MS} when the current burst began (the first run after the
   * fleet had none; when it has none, now), and have been sent nothing since.
   * Computed once per burst: a set the planner reads at every round.
   */
  staleIdle(nowMs: number): ReadonlySet<Worker> {
    if (this.#active > 0) return this.#stale;
    this.#stale.clear();
    for (const [w, l] of this.#loads) if (l.runs.size === 0 && l.lastDoneMs > 0 && nowMs - l.lastDoneMs >= STALE_MS) this.#stale.add(w);
    return this.#stale;
  }

  /**
   * A request the router cut (the loser of a hedged race): SGLang has no
   * abort, so its worker's GPU goes on with it. It teaches the cost model
   * nothing; in its place the worker keeps a run of what is left of its
   * prediction (stretched by the worker's slowdown), which the caller drops
   * at its end ({@link drop}). Null when nothing is left of it.
   */
  cut(run: Run, nowMs: number): Run | null {
    const l = this.#loads.get(run.worker);
    const left = run.startedMs + run.predictedMs * this.slowdown(run.worker, nowMs) - nowMs;
    this.#changed.add(run.worker);
    if (!this.#delete(run) || l === undefined || !(left > 0)) return null;
    const rest: Run = { worker: run.worker, startedMs: nowMs, predictedMs: left, model: run.model, batch: null };
    l.runs.add(rest);
    this.#active++;
    return rest;
  }

  /**
   * The workers whose runs or learned costs changed since the last call
   * (and forgets them): the planner keeps each worker's state between
   * rounds and re-reads only these (admission/plan-board.ts).
   */
  takeChanged(): Set<Worker> {
    // Two sets in turn (one per planner round, on every completion): the one returned is valid until the next call.
    const out = this.#changed;
    this.#spare.clear();
    this.#changed = this.#spare;
    this.#spare = out;
    return out;
  }

  /** Runs (requests, video jobs, cut requests still on their GPU) counted on all workers. */
  get active(): number {
    return this.#active;
  }

  /** Runs (requests and video jobs) counted on a worker. */
  runsOn(w: Worker): number {
    return this.#loads.get(w)?.runs.size ?? 0;
  }

  /**
   * The batch a one-slot worker has queued behind the one it runs (the
   * router sends a batching worker its next batch early: admission.ts
   * capOf), or null: its last run's batch when a run of another batch (or
   * none) is ahead of it. The worker has not started it yet (as far as the
   * router knows: its predecessor has not answered), so a compatible request
   * sent now still joins it in the worker's queue (the head scans the whole
   * queue for partners).
   */
  queuedBatch(w: Worker): Batch | null {
    const l = this.#loads.get(w);
    if (!l || l.runs.size < 2 || parallelSlotsOf(w) !== 1) return null;
    let first: Run | null = null;
    let last: Run | null = null;
    for (const r of l.runs) {
      // A batch one of whose members answered is done on the GPU (a batch's answers come out
      // together; the router reads them one by one): the worker has started the next one.
      if (first === null && r.batch !== null && r.batch.items.length > 0) continue;
      first ??= r;
      last = r;
    }
    return last !== null && last.batch !== null && last.batch !== first!.batch ? last.batch : null;
  }

  /**
   * What `ticket` adds to a batch of `size` members of its kind on `w` if it
   * joins it (ms, before the worker's slowdown): the learned marginal cost
   * of one more member (batch-gains.ts), not a whole request's time.
   */
  marginalMs(w: Worker, ticket: Ticket, size: number): number {
    const work = ticket.facts.work;
    return this.predictMs(work, w) * this.gains.marginal(BatchGains.classOf(modelOf(w), work), size);
  }

  /**
   * Whether no batch of 2 of `work`'s class on `w`'s model was ever observed
   * and none runs now: its gain is unknown, and the unit plan, which batches
   * only where a gain is known, would never teach it (plan-units.ts explores it).
   */
  batchUntried(w: Worker, work: WorkFeatures | null): boolean {
    const cls = BatchGains.classOf(modelOf(w), work);
    return (!this.gains.known(cls, 2) || this.#gainAdrift(cls)) && !this.#batchesRunning.has(cls);
  }

  /** Whether the prediction a class's gain was measured against has since moved past REANCHOR_RATIO (batch-gains.ts). */
  #gainAdrift(cls: string): boolean {
    const a = this.gains.anchor(cls);
    if (a === undefined || !this.#loads.has(a.worker)) return false;
    const r = this.predictMs(a.work, a.worker) / a.ms;
    return r > REANCHOR_RATIO || r < 1 / REANCHOR_RATIO;
  }

  #batchEnded(b: Batch): void {
    const cls = this.#batchClass.get(b);
    if (cls === undefined) return;
    this.#batchClass.delete(b);
    const n = this.#batchesRunning.get(cls)! - 1;
    if (n > 0) this.#batchesRunning.set(cls, n);
    else this.#batchesRunning.delete(cls);
  }

  /** F(size) of `work` on `w`'s model: a batch's time in units of one member alone (batch-gains.ts; `size` when nothing is learned). */
  batchFactor(w: Worker, work: WorkFeatures | null, size: number): number {
    return this.gains.time(BatchGains.classOf(modelOf(w), work), size);
  }

  /** Whether the worker has answered anything (a batch too: a batch of a size whose gain is unknown teaches the cost model nothing). */
  answered(w: Worker): boolean {
    return (this.#loads.get(w)?.lastDoneMs ?? 0) > 0;
  }

  /** Ends a request's run and feeds its service time to the cost model: from the later of its start and the worker's previous answer. */
  end(run: Run, ticket: Ticket, end: RunEnd): void {
    const l = this.#loads.get(run.worker);
    this.#delete(run);
    this.#changed.add(run.worker);
    // A video create answers at once: it says nothing of the job's time (learned from polls, see VideoJobs).
    if (ticket.demand.kind === "video") return;
    const doneMs = end.doneMs ?? this.clock();
    // One slot runs its queue in order: a request starts no earlier than the previous answer.
    // With parallel slots the previous answer may be another slot's: a run is timed from its start.
    const after = parallelSlotsOf(run.worker) === 1 ? (l?.lastDoneMs ?? 0) : 0;
    const from = (startedMs: number) => doneMs - Math.max(startedMs, after);
    if (run.batch !== null) {
      const b = run.batch;
      b.items.push({ facts: ticket.facts, ok: end.ok });
      if (--b.left > 0) return;
      this.#batchEnded(b);
      // A batch is observed once, when its last member ends. A batch of one
      // is a request alone; a larger one teaches its gain (batch-gains.ts)
      // and each member's time alone: its time over F(size) as learned so far.
      const took = from(b.startedMs);
      if (b.items.every((i) => i.ok)) {
        const work = b.items[0]!.facts.work;
        const cls = BatchGains.classOf(run.model, work);
        // Measured against a prediction that has moved since: F is measured anew from this batch.
        if (b.size > 1 && this.#gainAdrift(cls)) this.gains.forget(cls);
        // A batch of a size never seen in its class teaches the gain only: its members' time alone
        // would be its time / a guessed F (b when nothing is known: the share), and a first batch
        // of four 512² taught a worker it was 2-3x faster than it is (the plan then sent it the
        // burst's large requests as to a fast worker).
        const known = this.gains.known(cls, b.size);
        const alone = b.size > 1 ? took / this.gains.time(cls, b.size) : took;
        if (b.size > 1 && this.snapshot(run.worker).observations > 0) {
          const p = this.predictMs(work, run.worker);
          this.gains.observe(cls, b.size, took / p, work === null ? undefined : { worker: run.worker, work, ms: p });
        }
        if (known) for (const i of b.items) this.costs.observe(run.worker.url, run.model, i.facts.work, alone, doneMs);
      }
    } else if (end.ok) {
      const took = from(run.startedMs);
      this.costs.observe(run.worker.url, run.model, ticket.facts.work, took, doneMs);
      // Against what the cost model predicts now: a miss it has learned (a second slow answer) is not counted twice.
      const obs = ticket.facts.work === null ? 0 : this.snapshot(run.worker).observations;
      const now = obs < MISS_MIN_OBSERVATIONS ? 0 : this.predictMs(ticket.facts.work, run.worker);
      // The first answer after a gap (unconfirmed) counts a miss from MISS_AGAIN, as a miss after a
      // miss does, and from MISS_GAP_OBSERVATIONS: the model learns part of a slowdown from it (the
      // drift fleet's 3x-slow probe was 1.9x off, under MISS_ALONE), and a worker whose history the
      // change detection had cut to 3 answers was planned at 1.6x its speed (issue 20, drift7).
      const gap = l?.unconfirmed === true;
      // ...and against the lesser of that and its send-time prediction: a 4x probe's slowness is absorbed at its size (1.3x off after learning) while larger sizes stay fast (issue 20, straggler9).
      const missNow = gap && obs >= MISS_GAP_OBSERVATIONS ? Math.min(run.predictedMs, now > 0 ? now : this.predictMs(ticket.facts.work, run.worker)) : now;
      if (l) l.lastMiss = gap ? missAfter(took, missNow, Math.max(l.lastMiss, MISS_AGAIN), MISS_GAP_MIN_MS) : missAfter(took, missNow, l.lastMiss);
      // Faster than it was predicted at the send: it may have recovered (explore.ts).
      if (now > 0 && took > 0) this.ages.answered(run.worker, run.predictedMs / took);
    }
    if (l && end.ok) l.unconfirmed = false;
    if (l && doneMs > l.lastDoneMs) l.lastDoneMs = doneMs;
  }

  /** How much slower than predicted a worker runs right now (see {@link runningSlowdown}). */
  slowdown(w: Worker, nowMs: number): number {
    const l = this.#loads.get(w);
    return l ? runningSlowdown(l.runs, l.lastDoneMs, parallelSlotsOf(w) === 1, l.lastMiss, nowMs) : 1;
  }

  /** When a run began on its worker's GPU: hedging judges a run overdue from this (see {@link runBeganMs}). */
  beganMs(run: Run): number {
    const l = this.#loads.get(run.worker);
    return l && parallelSlotsOf(run.worker) === 1 ? runBeganMs(l.runs, l.lastDoneMs, run) : run.startedMs;
  }

  /** The earliest time {@link slowdown} may change without a run starting or ending (see {@link slowdownChangeMs}). */
  slowdownChangesAt(w: Worker): number {
    const l = this.#loads.get(w);
    return l ? slowdownChangeMs(l.runs, l.lastDoneMs, parallelSlotsOf(w) === 1) : Infinity;
  }

  /** When a one-slot worker is predicted to finish what it has (see {@link queueEndMs}). */
  busyUntil(w: Worker, nowMs: number, slow: number): number {
    const l = this.#loads.get(w);
    return l ? queueEndMs(l.runs, l.lastDoneMs, nowMs, slow) : nowMs;
  }

  /** When each of a worker's parallel slots is predicted free, earliest first (one slot: [{@link busyUntil}]). */
  slotsFreeAt(w: Worker, nowMs: number, slow: number): number[] {
    const k = parallelSlotsOf(w);
    if (k === 1) return [this.busyUntil(w, nowMs, slow)];
    return slotEndsMs(this.#loads.get(w)?.runs ?? [], k, nowMs, slow);
  }

  /** Predicted ms of work dispatched to a worker and not finished. */
  inFlightWorkMs(w: Worker, nowMs: number): number {
    const l = this.#loads.get(w);
    return l ? workLeftMs(l.runs, nowMs) : 0;
  }

  #loadOf(w: Worker): WorkerLoad {
    let l = this.#loads.get(w);
    if (!l) {
      l = { runs: new Set(), lastDoneMs: 0, lastMiss: 1, unconfirmed: false };
      this.#loads.set(w, l);
    }
    return l;
  }
}
