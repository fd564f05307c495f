import type { DeadReason, Worker } from "./worker.js";

/**
 * The registry's own view of a worker: the same record with its fields
 * writable. Everything outside the registry sees {@link Worker}, whose fields
 * are readonly, so the registry's named transitions are the only writers
 * (this module is imported by registry.ts alone).
 */
export type MutableWorker = { -readonly [K in keyof Worker]: Worker[K] };

export function kill(w: MutableWorker, reason: DeadReason): void {
  w.dead = true;
  w.deadReason = reason;
  w.consecutiveSuccesses = 0;
}

export function revive(w: MutableWorker): void {
  w.dead = false;
  w.deadReason = null;
  w.consecutiveFailures = 0;
  w.consecutiveSuccesses = 0;
}

/** Nothing the router knew of the process behind the URL holds any more: its weights and its learned speed. */
export function forgetProcess(w: MutableWorker): void {
  w.weightVersion = null;
  w.processEpoch++;
}
