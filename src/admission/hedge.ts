import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Candidates } from "./candidates.js";
import type { Gate } from "./gate.js";
import type { LoadBook } from "./loads.js";
import type { WaitQueue } from "./queue.js";
import type { Batch, Run, Ticket } from "./ticket.js";

/**
 * A copy starts only when it is predicted to finish at least this much
 * sooner than the original's predicted remaining time. Diffusion requests
 * take seconds to minutes of GPU; a busy host's own hiccups (GC pauses,
 * starved processes, HTTP) stretch a short request by tens to hundreds of
 * ms without its GPU being slow, predictions scatter a few %, and saving
 * less than this is not worth a GPU turn.
 */
export const HEDGE_MIN_GAIN_MS = 500;
/** Observations of the idle worker (its model) before its prediction is trusted for a copy. */
const MIN_COPY_OBSERVATIONS = 1;

/**
 * A running request that may be copied, offered by the dispatch core while
 * its answer has not begun. Admission decides when and where (the rules
 * below); the dispatch core runs the copy and the race.
 */
export interface HedgeOffer {
  /** The original's ticket: its run (start, prediction) and who may serve it. */
  readonly ticket: Ticket;
  /** The original's worker. */
  readonly worker: Worker;
  /** The original's worker's weight version when it was sent: a copy runs only on the same. */
  readonly weightVersion: string | null;
  /** Forwards the copy to `worker`, already counted by admission under `copyTicket`. */
  startCopy(worker: Worker, copyTicket: Ticket): void;
  /** Cuts the copy in flight (a refit or sleep hold began). */
  cancelCopy(): void;
}

/** How a copy ended: its answer was the client's, it was cut (the original won, a hold, the client left), or it failed. */
export type CopyEnd = "won" | "cut" | "failed";

/** Copies started, and how they ended, since the router started (/metrics). */
export interface HedgeCounts {
  started: number;
  won: number;
  cut: number;
  failed: number;
}

/** What the hedger reads of admission. */
export interface HedgeContext {
  readonly registry: Registry;
  readonly candidates: Candidates;
  readonly loads: LoadBook;
  readonly queue: WaitQueue;
  readonly gate: Gate;
  readonly clock: () => number;
  take(worker: Worker, ticket: Ticket, batch: Batch | null): Worker;
}

/**
 * Whether a request's answer is the same whichever worker runs it, so a
 * copy may serve it: a generation (image or native route, not video) whose
 * body names its seed, read by the router (a JSON body it holds), not part
 * of a prompt group (hard affinity to one worker).
 */
export function mayCopy(ticket: Ticket): boolean {
  const kind = ticket.facts.kind;
  return ticket.seeded === true && (kind === "image" || kind === "generation") && ticket.facts.work !== null && ticket.group === undefined;
}

/**
 * An original is overdue once it has run this many times its prediction on
 * its worker's GPU (LoadBook.beganMs)...
 */
export const OVERDUE_RATIO = 1.25;
/**
 * ...and at least this many ms beyond it ({@link HEDGE_MIN_GAIN_MS}): a busy
 * host's own hiccups (requests of a few ms taking 100+ ms on 2 busy cores)
 * must not look like a slow GPU; a GPU request of seconds is judged by the
 * ratio.
 */
export const OVERDUE_MIN_MS = 500;
/**
 * How much slower than predicted an overdue original's worker is presumed:
 * the slow GPUs the router meets are a few times slower (another tenant, a
 * throttled GPU; issue 20's stragglers 3x and 4x), and the elapsed-time
 * estimate alone (1.5 x elapsed, i.e. half the time run so far remains) only
 * lets an equal-speed copy pay off at 2 x (its time + 500 ms): a 4x straggler's
 * 722 ms request was copied 2.4 s into its 2.9 s, and the copy lost (the
 * straggler fleet's 3.4x burst, docs/benchmarks.md).
 */
export const OVERDUE_SLOWDOWN = 3;

/** When a run that began at `beganMs` with a prediction of `predictedMs` becomes overdue (see {@link OVERDUE_RATIO}). */
export function overdueAtMs(beganMs: number, predictedMs: number): number {
  return beganMs + Math.max(predictedMs * OVERDUE_RATIO, predictedMs + OVERDUE_MIN_MS);
}

/**
 * The original's predicted remaining time: its prediction stretched by the
 * worker's current slowdown (loads.ts: its last answer's miss, or 1.5 x
 * elapsed / predicted once past its prediction), from when it began on the
 * worker's GPU.
 */
export function remainingMs(run: Run, beganMs: number, nowMs: number, slowdown: number): number {
  return Math.max(0, beganMs + run.predictedMs * slowdown - nowMs);
}

/**
 * Whether a copy predicted to take `copyMs` is worth starting against an
 * overdue original: predicted to finish before the original would on a GPU
 * {@link OVERDUE_SLOWDOWN} x slower than predicted. No gain floor: being
 * overdue by {@link OVERDUE_MIN_MS} is the evidence, and the copy takes an
 * idle GPU (the queue is empty) while the first answer wins, so a copy that
 * loses delays no one's answer.
 */
export function overdueCopyWorth(run: Run, beganMs: number, nowMs: number, copyMs: number): boolean {
  return run.predictedMs > 0 && nowMs >= overdueAtMs(beganMs, run.predictedMs) && nowMs + copyMs < beganMs + run.predictedMs * OVERDUE_SLOWDOWN;
}

/** Whether a copy predicted to take `copyMs` is worth starting against an original with `remainingMs` left. */
export function copyWorth(copyMs: number, remainingMs: number): boolean {
  return copyMs + HEDGE_MIN_GAIN_MS < remainingMs;
}

/**
 * When a copy predicted to take `copyMs` becomes worth starting, after
 * `nowMs`: before its prediction the original's remaining time only shrinks;
 * past it the slowdown rule makes it half the elapsed time, which grows; and
 * once overdue it is presumed {@link OVERDUE_SLOWDOWN}x slow while a copy
 * started then would still finish first. Infinity when never (a run without
 * a prediction).
 */
export function copyWorthAtMs(run: Run, beganMs: number, copyMs: number, nowMs: number): number {
  if (!(run.predictedMs > 0)) return Infinity;
  const byElapsed = beganMs + Math.max(run.predictedMs, 2 * (copyMs + HEDGE_MIN_GAIN_MS)) + 1;
  const overdue = Math.max(overdueAtMs(beganMs, run.predictedMs) + 1, nowMs + 1);
  return overdue + copyMs < beganMs + run.predictedMs * OVERDUE_SLOWDOWN ? Math.min(overdue, byElapsed) : byElapsed;
}

/**
 * Hedged tails: while the queue is empty and a worker is idle, a running
 * request may get one copy on that worker when the copy is predicted to
 * finish sooner than the original (by {@link HEDGE_MIN_GAIN_MS}), or, once
 * the original is overdue, sooner than it would on a GPU
 * {@link OVERDUE_SLOWDOWN}x slow. Never while a
 * request waits (a loaded fleet pays nothing), never during a hold, only on
 * a worker at the original's weight version, at most one copy per request.
 * A copy in flight is cut when a hold begins ({@link cancelAll}).
 */
export class Hedger {
  readonly counts: HedgeCounts = { started: 0, won: 0, cut: 0, failed: 0 };
  /** Originals running without a copy, whose answer has not begun. */
  readonly #open = new Set<HedgeOffer>();
  /** Offers whose copy is in flight. */
  readonly #copying = new Set<HedgeOffer>();
  #scheduled = false;
  #timer: NodeJS.Timeout | null = null;
  #timerAtMs = Infinity;

  constructor(private readonly ctx: HedgeContext) {}

  /** Offers a running request for a copy; the returned function withdraws it (its answer began, or it ended). */
  offer(o: HedgeOffer): () => void {
    this.#open.add(o);
    this.check();
    return () => {
      this.#open.delete(o);
    };
  }

  /** The dispatch core reports how a copy ended. */
  copyEnded(o: HedgeOffer, end: CopyEnd): void {
    if (!this.#copying.delete(o)) return;
    this.counts[end]++;
  }

  /** A hold began: every copy in flight is cut (a copy never runs across a refit). */
  cancelAll(): void {
    for (const o of [...this.#copying]) o.cancelCopy();
  }

  /** Looks for copies to start after the current I/O turn (arrivals of a burst reach the queue first). */
  check(): void {
    if (this.#scheduled || this.#open.size === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#look();
    });
  }

  #look(): void {
    const { gate, queue, registry, loads, clock } = this.ctx;
    if (gate.held || queue.queued > 0 || this.#open.size === 0) return;
    const idle = new Set<Worker>();
    for (const w of registry.routable()) if (loads.runsOn(w) === 0) idle.add(w);
    if (idle.size === 0) return;
    const nowMs = clock();
    let nextMs = Infinity;
    for (const o of [...this.#open]) {
      const run = o.ticket.run;
      // The original's worker moved to other weights meanwhile (a drain that timed out): no copy of it.
      if (run === null || run.batch !== null || o.worker.weightVersion !== o.weightVersion) continue;
      const best = this.#bestCopy(o, idle);
      if (best === null) continue;
      const began = loads.beganMs(run);
      if (copyWorth(best.copyMs, remainingMs(run, began, nowMs, loads.slowdown(o.worker, nowMs))) || overdueCopyWorth(run, began, nowMs, best.copyMs)) {
        this.#start(o, best.worker);
        idle.delete(best.worker);
        if (idle.size === 0) break;
      } else {
        const at = copyWorthAtMs(run, began, best.copyMs, nowMs);
        if (at > nowMs) nextMs = Math.min(nextMs, at);
      }
    }
    if (nextMs < Infinity) this.#wakeAt(nextMs, nowMs);
  }

  /** The idle worker that would finish a copy soonest: a candidate of the request at its weight version, whose speed is known. */
  #bestCopy(o: HedgeOffer, idle: ReadonlySet<Worker>): { worker: Worker; copyMs: number } | null {
    const { candidates, loads } = this.ctx;
    let best: { worker: Worker; copyMs: number } | null = null;
    for (const w of candidates.of(o.ticket)) {
      if (w === o.worker || !idle.has(w) || w.weightVersion !== o.weightVersion) continue;
      if (loads.snapshot(w).observations < MIN_COPY_OBSERVATIONS) continue;
      const copyMs = loads.predictMs(o.ticket.facts.work, w);
      if (best === null || copyMs < best.copyMs) best = { worker: w, copyMs };
    }
    return best;
  }

  #start(o: HedgeOffer, worker: Worker): void {
    this.#open.delete(o);
    this.#copying.add(o);
    // The copy's own ticket: its run and its tried workers are its own; the original's are untouched.
    const copy: Ticket = { ...o.ticket, run: null, exclude: null };
    this.ctx.take(worker, copy, null);
    this.counts.started++;
    o.startCopy(worker, copy);
  }

  /** One timer for the earliest moment a copy may become worth it. */
  #wakeAt(atMs: number, nowMs: number): void {
    if (this.#timer !== null && this.#timerAtMs <= atMs) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAtMs = atMs;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#timerAtMs = Infinity;
        this.check();
      },
      Math.max(1, atMs - nowMs),
    );
    this.#timer.unref();
  }
}
