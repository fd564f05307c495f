import type { WorkerAnswer } from "../admin/broadcast.js";

/*
 * The refit core's inputs and results: typed values that know nothing of
 * HTTP or protobuf. REST (http/refit-json.ts) and RPC (rpc/refit-rpcs.ts)
 * each map them to their own shapes once.
 */

export type RefitPhase = "idle" | "draining" | "updating" | "open" | "sleeping";
export type OperationKind = "disk" | "tensor" | "sleep" | "lora";

/** `update_weights_from_disk`, parsed. */
export interface DiskRefitCommand {
  /** The checkpoint to load (the body's `model_path`). */
  modelPath: string;
  /** The label the pool takes; null = the next refit number. */
  weightVersion: string | null;
  /** The caller loads the pool's current `weightVersion` again on purpose (without it, that is refused). */
  replay: boolean;
  /** Only the workers serving this model load the weights (required when the pool serves several); null = every worker. */
  model: string | null;
  /**
   * The body as the trainer sent it: workers receive these bytes (fields the
   * router does not know included), and a worker that joins later gets them replayed.
   */
  body: Buffer;
  /** Time to wait for in-flight generation; default: the router's --drain-timeout. */
  drainTimeoutMs?: number;
}

/** `release_memory_occupation` / `resume_memory_occupation`. */
export interface MemoryCommand {
  /** Forwarded to each worker as sent. */
  body: Buffer;
  /** Release only: time to wait for in-flight generation. */
  drainTimeoutMs?: number;
  /** Only the workers serving this model sleep or wake; the others keep serving. Null/absent = every worker. */
  model?: string | null;
}

/** `refit/begin`. */
export interface BeginCommand {
  drainTimeoutMs?: number;
  /** Time the refit may stay open before it aborts itself; default: --refit-timeout. */
  timeoutMs?: number;
}

/** `refit/commit`. */
export interface CommitCommand {
  /** The label the updated workers take; null = the next refit number. */
  weightVersion: string | null;
  /** The pool's current label again, on purpose. */
  replay?: boolean;
}

/** One worker that did not load the weights, and why. */
export interface FailedWorker {
  workerUrl: string;
  status: number;
  message: string;
}

/** Counts of a weight load across the pool. */
export interface RefitSummary {
  targets: number;
  succeeded: number;
  failed: number;
  failedWorkers: FailedWorker[];
}

/**
 * What a disk refit did. `failure` set = some worker failed: a 502
 * `upstream_failed` over REST, UNAVAILABLE over RPC, with these results.
 */
export interface DiskRefitResult {
  results: WorkerAnswer[];
  weightVersion: string;
  previousWeightVersion: string;
  summary: RefitSummary;
  /** Null when every worker loaded the weights; else what went wrong, for the error message. */
  failure: string | null;
}

/** What a sleep or wake did on each worker. */
export interface MemoryResult {
  results: WorkerAnswer[];
  /** False when the pool was already asleep (release) or awake (resume): no worker was called. */
  changed: boolean;
}

export interface BeginResult {
  weightVersion: string;
  timeoutMs: number;
  /** Workers that may be updated in this refit (every live one). */
  workers: string[];
}

/** How one worker's tensor update ended (for the caller's answer and the audit trail). */
export interface TensorUpdateOutcome {
  workerUrl: string;
  /** The worker answered 200 without success:false. */
  ok: boolean;
  /** The worker's status; 0 when it never answered. */
  status: number;
}

export interface CommitResult {
  weightVersion: string;
  previousWeightVersion: string;
  updatedWorkers: string[];
  /** Live workers not updated: out of rotation until they hold the new version. */
  staleWorkers: string[];
}

export interface AbortResult {
  weightVersion: string;
  reason: string;
  /** Workers holding uncommitted weights: out of rotation. */
  staleWorkers: string[];
}

export interface RefitStatus {
  weightVersion: string;
  refits: number;
  phase: RefitPhase;
  operation: OperationKind | null;
  startedAtMs: number | null;
  updatedWorkers: string[];
  /** The current weights came from a disk refit, which the router can replay to a joining worker. */
  replayable: boolean;
  /** Models whose version differs from the pool's (a refit that named a model), by model. */
  modelVersions: Record<string, string>;
  heldRequests: number;
  inFlight: number;
}
