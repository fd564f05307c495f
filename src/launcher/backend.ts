import type { Logger } from "../log.js";
import type { LauncherConfig } from "./config.js";
import type { ConfigContext } from "./config-values.js";
import type { WorkerRun } from "./run.js";

/**
 * Where a worker runs, decided before its first start and kept across its
 * restarts (same URL, same GPUs). A backend that learns this only once the
 * worker runs (a Slurm job picks its ports on its node) leaves `url` "" and
 * the numbers 0; {@link WorkerRun.locate} tells the launcher later.
 */
export interface Placement {
  readonly url: string;
  readonly port: number;
  readonly masterPort: number;
  readonly schedulerPort: number;
  /** CUDA_VISIBLE_DEVICES, or null without GPUs (or not known yet). */
  readonly gpus: string | null;
}

/** What the launcher gives a backend when it creates it. */
export interface BackendContext {
  readonly logger: Logger;
  /** Environment for PATH lookup, GPU discovery and the workers. */
  readonly env: NodeJS.ProcessEnv;
  /** Time between SIGTERM and SIGKILL of a local process group. */
  readonly graceMs: number;
  /** GPU count when neither worker_gpu_ids nor CUDA_VISIBLE_DEVICES is set. */
  readonly detectGpuCount: () => number;
}

/**
 * One way of running workers (local processes, simulated workers, Slurm
 * jobs). The launcher core (groups, restart policy, scaling, registration)
 * is written against this only. Starting returns a {@link WorkerRun}, the
 * handle of that one start: its `stop()` is the backend's stop (SIGTERM →
 * grace → SIGKILL, or scancel), its `describe()` the backend's description
 * for ListManagedWorkers (pid, job id, node).
 */
export interface Backend {
  /**
   * Checks what can be checked before anything is reserved or started (the
   * program exists, the client commands are on PATH).
   *
   * @throws LauncherError naming what is missing.
   */
  check(config: LauncherConfig): void;
  /**
   * Placements for `count` new workers of `config`, never reusing the ports
   * or GPUs of `held` (workers of this launcher whose processes may still be
   * running on this machine).
   *
   * @throws LauncherConfigError / LauncherError when GPUs or ports are short.
   */
  place(config: LauncherConfig, count: number, held: readonly Placement[]): Promise<Placement[]>;
  /** Starts one worker at `placement`; resolves once it was spawned or submitted (not once healthy). */
  start(config: LauncherConfig, placement: Placement): Promise<WorkerRun>;
  /**
   * Takes over a worker that is already running at `placement` (started by
   * an earlier router process, found again on restart recovery), so that it
   * is stopped, restarted and described like one this launcher started.
   * `handle` is what that start's `describe().handle` said (a process group
   * id, a Slurm job id). Resolves null, starting and signalling nothing,
   * when that worker is gone or something else is there now (a reused pid).
   * The returned run's `exited` resolves when the adopted worker ends even
   * though the launcher is not its parent.
   */
  adopt(config: LauncherConfig, placement: Placement, handle: string): Promise<WorkerRun | null>;
  /** Ends everything it started, synchronously (execFileSync, kill), for `process.on("exit")`. */
  killAllSync(): void;
  /** Whether its workers hold ports and GPUs of this machine (the launcher then keeps them reserved until the process group is gone). */
  readonly holdsLocalResources: boolean;
}

/**
 * A backend's own mapping in a launcher group (`slurm:`), parsed beside the
 * backend. Allowed only with `backend: <its backend>`; absent otherwise
 * (the parsed group then has `null` under the key).
 */
export interface BackendSection<T> {
  readonly key: string;
  /** Parses the raw value (undefined when the key is absent) with defaults filled. @throws LauncherConfigError */
  parse(raw: unknown, ctx: ConfigContext): T;
}

/** One entry of the registration table (registry.ts), under its YAML `backend:` value. */
export interface BackendDefinition {
  /** Its own mapping in a group, if any. */
  readonly section?: BackendSection<unknown>;
  /** Its default for the generic `worker_host` key, if it differs from 127.0.0.1. */
  readonly defaultWorkerHost?: string;
  /** Whether its workers take `worker_base_port + 2i` on this machine (groups' port ranges must then not overlap). */
  readonly usesBasePort: boolean;
  create(ctx: BackendContext): Backend;
}
