import type { Logger } from "../log.js";
import type { LauncherConfig, LauncherGroups } from "./config.js";
import type { ManagedRecord } from "./managed-record.js";
import type { BackendFacts, LauncherBackend } from "./registry.js";

/** Lifecycle of a managed worker. */
export type WorkerState = "starting" | "ready" | "restarting" | "failed" | "stopping" | "exited";

/** A snapshot of one worker the launcher started; backends add their facts under their own key (registry.ts). */
export interface ManagedWorker extends BackendFacts {
  /** Where it serves; "" while its backend does not know yet (a Slurm job that has not reported its port). */
  readonly url: string;
  /** Process group leader; 0 when no local process runs it (a Slurm job). */
  readonly pid: number;
  readonly backend: LauncherBackend;
  /** The launcher group it belongs to (its `name`, or its model). */
  readonly group: string;
  /**
   * Its stable name, `group/index` (the lowest index free in its group when
   * it was first started): the same across restarts and Slurm resubmissions,
   * whose URL changes. The restart metric's label.
   */
  readonly name: string;
  readonly model: string;
  /** HTTP port; port+1 is reserved for the worker too. */
  readonly port: number;
  /** `--master-port` it was given. */
  readonly masterPort: number;
  /** `--scheduler-port` it was given. */
  readonly schedulerPort: number;
  /** Its CUDA_VISIBLE_DEVICES, or null when it runs without GPUs. */
  readonly gpus: string | null;
  readonly state: WorkerState;
  readonly startedAtMs: number;
  /** Set once a process of this worker has exited: its code, or null if a signal ended it. */
  readonly exitCode?: number | null;
  /** The signal that ended the last process, or null when it exited with a code. */
  readonly exitSignal?: string | null;
  /** Times the restart policy started it again (for Slurm: resubmitted it). */
  readonly restarts: number;
  /** Why it failed (health timeout, early exit, registration error) or was stopped while starting. */
  readonly error?: string;
}

/** Outcome of {@link Launcher.launch}: one settled snapshot per started worker, in start order. */
export interface LaunchResult {
  readonly workers: readonly ManagedWorker[];
}

/** Outcome of {@link Launcher.scale}. */
export interface ScaleResult {
  /** Workers started to reach the count, settled (ready or failed). */
  readonly started: readonly ManagedWorker[];
  /** URLs of the workers stopped to reach the count (newest first); the backend's other name (a Slurm job id) for one that had no URL yet. */
  readonly stopped: readonly string[];
}

/** Options of {@link Launcher.scale}. */
export interface ScaleOptions {
  /** Start a new group from the config when no group has its name. Default false. */
  readonly create?: boolean;
}

/** Options of {@link Launcher.launch}. */
export interface LaunchOptions {
  /**
   * Restart recovery: the workers an earlier router process recorded. Each
   * of a group configured with the same settings is adopted if its handle
   * still runs and answers as the same worker (no second start), or started
   * again if it is gone; the group is then topped up to `num_workers`.
   */
  readonly adopt?: readonly ManagedRecord[];
}

/** Options of {@link createLauncher}. */
export interface LauncherOptions {
  logger: Logger;
  /**
   * Called once per worker when its /health first answers 200 (adds it to
   * the router). `handle` names its process (group) or job: the same for a
   * worker adopted after a router restart, new for every start.
   */
  register(url: string, handle: string): Promise<void>;
  /** Called when a registered worker is stopped through the launcher. Default: nothing. */
  deregister?(url: string): Promise<void>;
  /** Time between SIGTERM and SIGKILL of a worker's process group. Default 10000. */
  stopGraceMs?: number;
  /** Environment for GPU discovery, PATH lookup and the workers. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Pause between /health polls while a worker starts. Default 500. */
  healthPollMs?: number;
  /** GPU count when neither worker_gpu_ids nor CUDA_VISIBLE_DEVICES is set. Default: ask `nvidia-smi` (0 if absent). */
  detectGpuCount?: () => number;
  /**
   * A restart begins (the worker exited without being stopped); the function
   * it returns, if any, gets the outcome once the new process is ready or
   * failed. For the audit trail and metrics.
   */
  onRestart?: (worker: ManagedWorker) => ((outcome: ManagedWorker) => void) | void;
  /** A worker's handle, URL or membership may have changed: {@link Launcher.records} is worth writing again. */
  onRunsChanged?: () => void;
}

/** Starts, tracks and stops worker processes. */
export interface Launcher {
  /**
   * Starts `num_workers` workers of each group (one config, or the groups of
   * a launcher file in order) on free ports and free GPUs (never those of
   * workers this launcher still runs or has just started for an earlier
   * group), waits for all of them in parallel and registers each as soon as
   * it is healthy. Resolves when every worker is ready or failed; a failed
   * one is in the result, not thrown, and its process group is gone.
   *
   * @throws LauncherConfigError / LauncherError, leaving nothing running, if
   *   GPUs or ports are short or a backend's program is missing.
   */
  launch(config: LauncherConfig | LauncherGroups, options?: LaunchOptions): Promise<LaunchResult>;
  /** What restart recovery needs of every live worker (starting, ready, restarting), oldest first. */
  records(): ManagedRecord[];
  /** Snapshots of every managed worker, oldest first (stopped ones are dropped once gone). */
  list(): ManagedWorker[];
  /**
   * Stops the given workers (default: all): deregisters the registered ones,
   * cancels pending restarts, then SIGTERM → grace → SIGKILL to each process
   * group (scancel for a Slurm job). Resolves when every one has exited; they
   * are then removed from {@link list}. Stopping all of them (no `urls`)
   * also forgets the groups: a later scale must create them again.
   *
   * @param urls worker URLs, or the backend's other name of a worker (a Slurm job id names a job that has not reported its URL yet).
   * @throws RouterError `worker_not_found` (stopping nothing) for a URL the launcher does not manage.
   */
  stop(urls?: readonly string[]): Promise<void>;
  /**
   * Brings the number of live (starting or ready) workers of the group named
   * like `config` (its `name`, or its model) to `count`: starts the missing
   * ones with the settings the group was launched with, or stops the newest.
   *
   * @throws LauncherConfigError (invalid_request), naming the existing
   *   groups, when no group has that name, unless `options.create`: then
   *   `config` starts a new group.
   */
  scale(config: LauncherConfig, count: number, options?: ScaleOptions): Promise<ScaleResult>;
  /**
   * SIGKILLs every process group and scancels every Slurm job right now,
   * synchronously (execFileSync). Only for a `process.on("exit")` hook, where
   * nothing async can run: detached workers and jobs would otherwise outlive
   * the router and keep their GPUs.
   */
  killAllSync(): void;
}

