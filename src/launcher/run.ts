import type { Logger } from "../log.js";
import { groupExists, signalGroup, stopProcessGroup, type ExitInfo, type WorkerProcess } from "./process.js";

/** Where a started worker serves. */
export interface WorkerLocation {
  readonly url: string;
  readonly port: number;
  /** Its CUDA_VISIBLE_DEVICES, or null without GPUs. */
  readonly gpus: string | null;
}

/** Slurm facts about a worker's job, for ListManagedWorkers. */
export interface SlurmJobFacts {
  readonly jobId: string;
  /** Node it runs on; "" while pending. */
  readonly node: string;
  /** Last state squeue reported (PENDING, RUNNING, CANCELLED, ...). */
  readonly state: string;
}

/**
 * One start of a worker, whatever runs it: a local process group or a Slurm
 * job. The launcher's restart, scaling and stop logic is written against
 * this only (start, where is it, exited, stop).
 */
export interface WorkerRun {
  /** Pid of the local process group leader; 0 for a Slurm job. */
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
  /** Job id, node and state when a Slurm job runs it. */
  slurm(): SlurmJobFacts | undefined;
}

/** A local process group (backends local and sim) as a {@link WorkerRun}; its location is known before it starts. */
export function processRun(proc: WorkerProcess, location: WorkerLocation, options: { graceMs: number; logger: Logger }): WorkerRun {
  let stopping: Promise<void> | undefined;
  return {
    pid: proc.pid,
    locate: () => Promise.resolve(location),
    exited: proc.exited,
    exitInfo: () => proc.exitInfo(),
    stop() {
      stopping ??= stopProcessGroup(proc, { graceMs: options.graceMs, logger: options.logger }).then(() => undefined);
      return stopping;
    },
    killSync() {
      if (proc.exitInfo() === undefined || groupExists(proc.pid)) signalGroup(proc.pid, "SIGKILL");
    },
    slurm: () => undefined,
  };
}
