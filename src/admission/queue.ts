import { RouterError } from "../errors.js";
import type { Worker } from "../registry/worker.js";
import type { Ticket } from "./ticket.js";

/** A request waiting in the router for a worker. */
export interface Waiter {
  readonly ticket: Ticket;
  /** Priority (larger first) in an ordered queue; 0 in a first-in first-out one. Moved only by a re-keying that re-sorts the queue (queue-keys.ts). */
  key: number;
  settled: boolean;
  /** Date.now() when it was queued (a hold that gives up counts from it). */
  readonly addedAtMs: number;
  /** Internal to the queue: ends the wait. */
  readonly resolve: (w: Worker) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | null;
  readonly onAbort: (() => void) | null;
}

export interface QueueOptions {
  /** Most requests waiting; beyond it, 503 queue_full. */
  queueSize: number;
  /** Longest wait; then 503 queue_timeout. */
  queueTimeoutMs: number;
  /** Largest key first (ties in arrival order); false = arrival order. */
  ordered: boolean;
  /** Why a request is still waiting, for its queue_timeout message. */
  whyWaiting(): string;
  /** The error of a hold that gives up (gate.ts GiveUp), answered instead of queue_timeout when the queue timeout comes first. */
  heldError?(): Error | null;
}

/** The longest Node timer (about 24.8 days): a rollout item waits until its job ends it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The requests waiting in the router: their order, their timeouts, clients
 * that leave, and the queue's bound. Answering a waiter ({@link hand} or an
 * error) takes it off the count at once; its array slot goes lazily.
 */
export class WaitQueue {
  #waiters: Waiter[] = [];
  #queued = 0;
  /** Set by rejectAll (shutdown): every later wait fails with it. */
  #closed: Error | null = null;

  constructor(private readonly options: QueueOptions) {}

  /** Requests waiting (not yet answered). */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Queues a ticket until {@link hand} answers it. `aboutToLeave` is asked
   * only when the queue looks full: waiters that the next dispatch will send
   * at once and that therefore do not count against the bound.
   */
  add(ticket: Ticket, key: number, signal: AbortSignal | null, aboutToLeave: () => number): Promise<Worker> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    const { queueSize } = this.options;
    if (this.#queued >= queueSize && ticket.fromJob !== true && this.#queued - aboutToLeave() >= queueSize) {
      return Promise.reject(new RouterError("queue_full", `router queue is full (${queueSize} requests waiting)`, { details: { retryAfterS: 1 } }));
    }
    return new Promise<Worker>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason instanceof Error ? signal.reason : new Error("client went away"));
        return;
      }
      const waiter: Waiter = {
        ticket,
        key,
        resolve,
        reject,
        signal,
        settled: false,
        addedAtMs: Date.now(),
        timer: setTimeout(() => this.#timedOut(waiter), ticket.fromJob === true ? MAX_TIMER_MS : this.options.queueTimeoutMs),
        onAbort: signal ? () => this.#fail(waiter, signal.reason instanceof Error ? signal.reason : new Error("client went away while queued")) : null,
      };
      waiter.timer.unref();
      if (signal) signal.addEventListener("abort", waiter.onAbort!, { once: true });
      this.#insert(waiter);
      this.#queued++;
    });
  }

  /** The unanswered waiters in order (the array is the queue's own: callers read it, then {@link keep}). */
  live(): Waiter[] {
    // Answered waiters are dropped lazily; under a long hold nothing is served, so compact here to keep the array bounded.
    if (this.#waiters.length > 2 * this.#queued + 64) this.#waiters = this.#waiters.filter((w) => !w.settled);
    return this.#waiters;
  }

  /** Replaces the array after a dispatch round dropped what it answered. */
  keep(waiters: Waiter[]): void {
    this.#waiters = waiters;
  }

  /** Answers a waiter with its worker. */
  hand(waiter: Waiter, worker: Worker): void {
    this.#settle(waiter);
    waiter.resolve(worker);
  }

  /** Answers every waiter with `err`, and every later one (shutdown). */
  rejectAll(err: Error): void {
    this.#closed = err;
    for (const waiter of this.#waiters) this.#fail(waiter, err);
    this.#waiters = [];
  }

  /** Answers with `error()` every waiter `which` selects (a hold that gives up, admission/give-up.ts). */
  failWhere(which: (w: Waiter) => boolean, error: () => Error): void {
    for (const waiter of this.#waiters) if (!waiter.settled && which(waiter)) this.#fail(waiter, error());
  }

  #timedOut(waiter: Waiter): void {
    const { queueTimeoutMs, whyWaiting } = this.options;
    if (waiter.settled) return;
    const held = this.options.heldError?.() ?? null;
    if (held !== null) return this.#fail(waiter, held);
    this.#fail(waiter, new RouterError("queue_timeout", `request waited ${Math.round(queueTimeoutMs / 1000)} s in the router queue (${whyWaiting()})`, { details: { retryAfterS: 5 } }));
  }

  #fail(waiter: Waiter, err: Error): void {
    if (waiter.settled) return;
    this.#settle(waiter);
    waiter.reject(err);
  }

  #settle(waiter: Waiter): void {
    waiter.settled = true;
    this.#queued--;
    clearTimeout(waiter.timer);
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener("abort", waiter.onAbort);
  }

  #insert(waiter: Waiter): void {
    const q = this.#waiters;
    if (!this.options.ordered) {
      q.push(waiter);
      return;
    }
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (q[mid]!.key >= waiter.key) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, waiter);
  }
}
