import type { Backend } from "./backend.js";
import type { ExitInfo } from "./process.js";
import type { BackendFacts } from "./registry.js";

/** Where a started worker serves. */
export interface WorkerLocation {
  readonly url: string;
  readonly port: number;
  /** Its CUDA_VISIBLE_DEVICES, or null without GPUs. */
  readonly gpus: string | null;
}

/** What a backend says about one start of a worker (its `describe`). */
export interface RunDescription {
  /** Merged into the worker's snapshot for ListManagedWorkers (e.g. `slurm: { jobId, node, state }`). */
  readonly facts: BackendFacts;
  /** Log fields naming this start: `{ pid }`, or `{ slurmJobId, node }`. */
  readonly log: Readonly<Record<string, unknown>>;
  /** What {@link Backend.adopt} needs to find this start again (a process group id, a Slurm job id); restart recovery persists it. */
  readonly handle: string;
  /** A second name of the worker that stop() accepts, for a worker that may have no URL yet (a Slurm job id). */
  readonly alias?: string;
}

/**
 * One start of a worker, whatever runs it: a local process group or a Slurm
 * job. The launcher's restart, scaling and stop logic is written against
 * this only (where is it, exited, stop, describe).
 */
export interface WorkerRun {
  /** Pid of the local process group leader; 0 when no local process runs it. */
  readonly pid: number;
  /** Resolves once it is known where the worker serves; rejects if it ends first or `timeoutMs` passes. */
  locate(timeoutMs: number): Promise<WorkerLocation>;
  /** Resolves (never rejects) when the worker has ended. */
  readonly exited: Promise<ExitInfo>;
  exitInfo(): ExitInfo | undefined;
  /** Ends it (SIGTERM → grace → SIGKILL, or scancel) and resolves when it is gone. Idempotent. */
  stop(): Promise<void>;
  /** Ends it right now, synchronously (for `process.on("exit")`). */
  killSync(): void;
  describe(): RunDescription;
}
