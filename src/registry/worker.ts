/**
 * Why a worker is dead. `manual` is an operator's quarantine (PUT
 * is_dead=true) and only an operator lifts it; the others are lifted by
 * health probes. A worker whose weights are wrong is not dead but out of
 * sync (`sync: "stale"`): see the refit coordinator.
 */
export type DeadReason = "health_check" | "unreachable" | "manual" | "ejected";

/** One display state, derived from the facts below, most important first. */
export type WorkerState = "healthy" | "suspect" | "starting" | "dead" | "sleeping" | "syncing" | "draining" | "stale";

export interface WorkerCapabilities {
  /** `task_type` of the worker's `/v1/models` card (T2I, T2V, ...), null until probed. */
  taskType: string | null;
  /** true for video task types (registry/task-types.ts), false for the others, null while unknown. */
  videoSupport: boolean | null;
  /** Model ids served, from `/v1/models`. */
  models: string[];
  /** `created` of the model card: changes when the process behind the URL restarts. */
  instanceFingerprint: string | null;
  /**
   * Generations the worker runs at once: `dp_size` of its `GET /server_info`
   * (data-parallel replicas behind one URL). Absent = 1 (not reported, or
   * not read yet).
   */
  parallelSlots?: number;
}

/**
 * The registry's record of a worker, read-only outside the registry: its
 * named transitions (registry/registry.ts) are the only writers.
 */
export interface Worker {
  readonly url: string;
  readonly id: string;
  readonly displayId: string;
  readonly registeredAtMs: number;
  /** Requests dispatched to this worker and not yet finished. */
  readonly activeRequests: number;
  /** Consecutive failed health probes (or passive failures). */
  readonly consecutiveFailures: number;
  /** Consecutive successful probes while dead, to decide when it comes back. */
  readonly consecutiveSuccesses: number;
  readonly dead: boolean;
  readonly deadReason: DeadReason | null;
  /** Human-readable detail of the last failure. */
  readonly lastError: string | null;
  readonly sleeping: boolean;
  /**
   * Asleep without the router having put it to sleep (its answers said so:
   * health/sleep-check.ts). The router checks now and then whether it woke;
   * a worker the router put to sleep stays asleep until the router wakes it.
   */
  readonly sleepFound: boolean;
  /**
   * Warming up: its /health answers but its model card is held (SGLang holds
   * /v1/models until the pipeline is loaded). Not routed, not dead: it takes
   * traffic once the card arrives.
   */
  readonly starting: boolean;
  /**
   * A generation answered 500 and the router is asking once whether the
   * worker sleeps (health/sleep-check.ts): suspect, so no new request until
   * the answer, which either finds it asleep or counts the 500 as a failure.
   */
  readonly sleepCheckOut: boolean;
  readonly draining: boolean;
  /** "in_sync" takes traffic; "syncing" is being brought to the current weights; "stale" waits for a trainer. */
  readonly sync: "in_sync" | "syncing" | "stale";
  readonly weightVersion: string | null;
  readonly capabilities: WorkerCapabilities;
  /** Launcher-managed workers are stopped with the router. */
  readonly managed: boolean;
  /** Passive ejection backoff: no traffic before this time. */
  readonly ejectedUntilMs: number;
  readonly ejectionCount: number;
  readonly lastProbeAtMs: number;
  /**
   * Bumped each time the router concludes another process may now be behind
   * the URL (nothing listened there, or the card's fingerprint changed): what
   * was learned of the previous process (its speed) no longer holds.
   */
  readonly processEpoch: number;
}

export function workerState(w: Worker): WorkerState {
  if (w.dead) return "dead";
  if (w.starting) return "starting";
  if (w.sleeping) return "sleeping";
  if (w.sync === "syncing") return "syncing";
  if (w.sync === "stale") return "stale";
  if (w.draining) return "draining";
  if (w.consecutiveFailures > 0 || w.sleepCheckOut) return "suspect";
  return "healthy";
}

/** Whether the balancer may pick this worker for a new request. */
export function isRoutable(w: Worker): boolean {
  return !w.dead && !w.starting && !w.sleeping && !w.sleepCheckOut && !w.draining && w.sync === "in_sync";
}

export { taskTypeSupportsVideo } from "./task-types.js";
