import type { Policy } from "../balancer/index.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Candidates } from "./candidates.js";
import type { Gate } from "./gate.js";
import type { LoadBook } from "./loads.js";
import type { WaitQueue } from "./queue.js";
import type { Batch, Ticket } from "./ticket.js";

/**
 * How queued requests are matched to workers: one implementation per
 * scheduling mode (policy-dispatch.ts, plan-dispatch.ts), chosen once when
 * admission is made, so no request asks which mode it is in.
 */
export interface DispatchStrategy {
  /** Whether tryAcquire may hand the ticket a worker at once instead of queueing it. */
  answersAtOnce(ticket: Ticket): boolean;
  /** A worker for the ticket now (the balancer's pick among those with room), or null. */
  pick(ticket: Ticket): Worker | null;
  /** The queue key of a new waiter (larger goes first in an ordered queue). */
  priority(ticket: Ticket): number;
  /** Whether waiters are ordered by {@link priority} (else first-in first-out). */
  readonly ordered: boolean;
  /** A waiter joined the queue. */
  arrived(): void;
  /** A request ended (or its GPU time is predicted over) and someone waits: its slot may go to a waiter. */
  freed(): void;
  /** Sends what can go now among the waiters (called with the gate open and someone waiting). */
  dispatch(): void;
  /** Waiters the next dispatch will send at once: they do not count against --queue-size. */
  aboutToLeave(): number;
  /** Whether the end of a request (its ticket; null for an affinity request) can let a waiter go. */
  freesSlot(ticket: Ticket | null): boolean;
  /** Requests a worker may still be sent now under the per-worker cap. */
  freeSlots(worker: Worker): number;
}

/** What the strategies share with admission. */
export interface DispatchContext {
  readonly registry: Registry;
  readonly policy: Policy;
  readonly candidates: Candidates;
  readonly loads: LoadBook;
  readonly queue: WaitQueue;
  readonly gate: Gate;
  readonly clock: () => number;
  /** Most requests on one worker (0 = unlimited). */
  readonly cap: number;
  /** Whether `cap` is per parallel slot of a worker (the default cap of earliest-finish), not per worker (the flag). */
  readonly capPerSlot: boolean;
  /** Compatible requests sent together to one worker. */
  readonly batchSize: number;
  /** Priority a queued request gains per ms waited (see priorityKey). */
  readonly ageing: number;
  /** Counts a request on a worker and returns the worker (predicted to take `predictedMs`: a batch's joiner, see LoadBook.joinCost; default the cost model's). */
  take(worker: Worker, ticket: Ticket, batch: Batch | null, predictedMs?: number): Worker;
  /** Runs {@link DispatchStrategy.dispatch} if the gate is open and someone waits. */
  pump(): void;
}
