import { displayIdOf, workerIdOf } from "./worker-url.js";
import type { DeadReason, Worker, WorkerCapabilities } from "./worker.js";

/**
 * The registry's own view of a worker: the same record with its fields
 * writable. Everything outside the registry sees {@link Worker}, whose fields
 * are readonly, so the named transitions below are the only writers.
 */
export type MutableWorker = { -readonly [K in keyof Worker]: Worker[K] };

/** A newly registered worker: awake, in sync, no load, nothing learned. */
export function newWorkerRecord(url: string, init: { managed?: boolean; capabilities?: Partial<WorkerCapabilities> }): MutableWorker {
  return {
    url,
    id: workerIdOf(url),
    displayId: displayIdOf(url),
    registeredAtMs: Date.now(),
    activeRequests: 0,
    consecutiveFailures: 0,
    consecutiveSuccesses: 0,
    dead: false,
    deadReason: null,
    lastError: null,
    sleeping: false,
    sleepFound: false,
    starting: false,
    sleepCheckOut: false,
    draining: false,
    sync: "in_sync",
    weightVersion: null,
    capabilities: { taskType: null, videoSupport: null, models: [], instanceFingerprint: null, ...init.capabilities },
    managed: init.managed ?? false,
    ejectedUntilMs: 0,
    ejectionCount: 0,
    processEpoch: 0,
    lastProbeAtMs: 0,
  };
}

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

