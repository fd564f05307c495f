import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import { buildWorkerCommand, resolveBackendProgram, workerUrl } from "./backends.js";
import type { LauncherBackend, LauncherConfig, LauncherGroups } from "./config.js";
import { LauncherError, WorkerExitedError } from "./errors.js";
import { assignGpus, detectGpuCountWithNvidiaSmi, splitDevices } from "./gpus.js";
import { findFreePort } from "./ports.js";
import { spawnWorker, waitForHealth, type ExitInfo } from "./process.js";
import { processRun, type WorkerRun } from "./run.js";
import { checkSlurmBackend, createSlurmBackend, type SlurmBackend } from "./slurm/backend.js";

/** Lifecycle of a managed worker. */
export type WorkerState = "starting" | "ready" | "restarting" | "failed" | "stopping" | "exited";

/** A snapshot of one worker process the launcher started. */
export interface ManagedWorker {
  /** Where it serves; "" for a Slurm job that has not reported its port yet. */
  readonly url: string;
  /** Process group leader; 0 for a Slurm job. */
  readonly pid: number;
  readonly backend: LauncherBackend;
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
  /** Backend slurm: the current job's id, node ("" while pending) and last squeue state. */
  readonly slurm?: { readonly jobId: string; readonly node: string; readonly state: string };
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
  /** URLs of the workers stopped to reach the count (newest first); a job id for a Slurm job that had no URL yet. */
  readonly stopped: readonly string[];
}

/** Options of {@link createLauncher}. */
export interface LauncherOptions {
  logger: Logger;
  /** Called once per worker when its /health first answers 200 (adds it to the router). */
  register(url: string): Promise<void>;
  /** Called when a registered worker is stopped through the launcher. Default: nothing. */
  deregister?(url: string): Promise<void>;
  /** Time between SIGTERM and SIGKILL of a worker's process group. Default 10000. */
  stopGraceMs?: number;
  /** Backend slurm: how long to wait for a job to end after scancel. Default 30000. */
  slurmStopWaitMs?: number;
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
  launch(config: LauncherConfig | LauncherGroups): Promise<LaunchResult>;
  /** Snapshots of every managed worker, oldest first (stopped ones are dropped once gone). */
  list(): ManagedWorker[];
  /**
   * Stops the given workers (default: all): deregisters the registered ones,
   * cancels pending restarts, then SIGTERM → grace → SIGKILL to each process
   * group (scancel for a Slurm job). Resolves when every one has exited; they
   * are then removed from {@link list}.
   *
   * @param urls worker URLs, or Slurm job ids (names a job that has not reported its URL yet).
   * @throws RouterError `worker_not_found` (stopping nothing) for a URL the launcher does not manage.
   */
  stop(urls?: readonly string[]): Promise<void>;
  /**
   * Brings the number of live (starting or ready) workers started from
   * `config` (compared without `num_workers`) to `count`: starts the missing
   * ones, or stops the newest.
   */
  scale(config: LauncherConfig, count: number): Promise<ScaleResult>;
  /**
   * SIGKILLs every process group and scancels every Slurm job right now,
   * synchronously (execFileSync). Only for a `process.on("exit")` hook, where
   * nothing async can run: detached workers and jobs would otherwise outlive
   * the router and keep their GPUs.
   */
  killAllSync(): void;
}

/** Ports and GPUs a local worker keeps across restarts (same URL). */
interface LocalPlan {
  port: number;
  masterPort: number;
  schedulerPort: number;
  gpus: string | null;
}

interface Entry {
  info: { -readonly [K in keyof ManagedWorker]: ManagedWorker[K] };
  /** The current start of the worker: a process group (local, sim) or a Slurm job. */
  run: WorkerRun;
  /** The config it was started from (a restart runs the same command). */
  config: LauncherConfig;
  /** Local backends: its ports and GPUs, kept for restarts. Null for Slurm: each job chooses its own on its node. */
  plan: LocalPlan | null;
  /** Restarts in a row; reset when a process has been ready for {@link STABLE_MS}. */
  consecutiveRestarts: number;
  readyAtMs: number | null;
  restartTimer: NodeJS.Timeout | null;
  /** Identifies the config it came from, for scale(). */
  configKey: string;
  /** Start order, for "stop the newest"; also its key in the launcher (a Slurm job's URL is known late, and changes on resubmission). */
  seq: number;
  registered: boolean;
  /** Until the process group is gone, its ports and GPUs are not handed out again. */
  holdsResources: boolean;
  /** Termination of the current run, once begun. */
  terminating?: Promise<void>;
}

/** A worker ready this long has recovered: its next crash starts the backoff over. */
const STABLE_MS = 600_000;
/** Longest wait before a restart. */
const MAX_BACKOFF_MS = 60_000;

/** Creates a launcher; it starts nothing until {@link Launcher.launch} or {@link Launcher.scale}. */
export function createLauncher(options: LauncherOptions): Launcher {
  const logger = options.logger;
  const env = options.env ?? process.env;
  const graceMs = options.stopGraceMs ?? 10_000;
  const healthPollMs = options.healthPollMs ?? 500;
  const detectGpuCount = options.detectGpuCount ?? (() => detectGpuCountWithNvidiaSmi(env));
  const entries = new Map<number, Entry>();
  let nextSeq = 0;
  let slurmBackend: SlurmBackend | undefined;
  const slurm = (): SlurmBackend =>
    (slurmBackend ??= createSlurmBackend({ env, logger, ...(options.slurmStopWaitMs === undefined ? {} : { stopWaitMs: options.slurmStopWaitMs }) }));

  // Allocation (ports, GPUs, spawn) runs one batch at a time, so two launches
  // cannot both see the same port as free before either has bound it.
  let lockTail: Promise<unknown> = Promise.resolve();
  const withLock = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lockTail.then(fn, fn);
    lockTail = run.catch(() => undefined);
    return run;
  };

  const snapshot = (entry: Entry): ManagedWorker => {
    const facts = entry.run.slurm();
    return Object.freeze({ ...entry.info, ...(facts === undefined ? {} : { slurm: facts }) });
  };
  const isLive = (entry: Entry): boolean => entry.info.state === "starting" || entry.info.state === "ready" || entry.info.state === "restarting";
  /** Log fields naming the worker: its URL, and its pid or Slurm job. */
  const who = (entry: Entry): Record<string, unknown> => {
    const facts = entry.run.slurm();
    return { worker: entry.info.url, ...(facts === undefined ? { pid: entry.run.pid } : { slurmJobId: facts.jobId, node: facts.node }) };
  };

  /**
   * Ends the entry's current run once (SIGTERM → grace → SIGKILL, or
   * scancel) and frees its ports and GPUs, unless a restart will reuse them.
   */
  const terminate = (entry: Entry): Promise<void> => {
    const run = entry.run;
    entry.terminating ??= (async () => {
      try {
        await run.stop();
      } finally {
        if (entry.run === run && entry.info.state !== "restarting") entry.holdsResources = false;
        recordExit(entry, run.exitInfo());
      }
    })();
    return entry.terminating;
  };

  const recordExit = (entry: Entry, exit: ExitInfo | undefined): void => {
    if (exit === undefined) return;
    entry.info.exitCode = exit.code;
    entry.info.exitSignal = exit.signal;
  };

  const onExit = (entry: Entry, run: WorkerRun, exit: ExitInfo): void => {
    if (entry.run !== run) return; // an earlier process or job of a restarted worker
    recordExit(entry, exit);
    const crashed = entry.info.state === "ready";
    if (crashed) {
      entry.info.state = "exited";
      logger.warn(
        { ...who(entry), exitCode: exit.code, signal: exit.signal, reason: exit.reason, restarts: entry.info.restarts, policy: entry.config.restart },
        "managed worker exited unexpectedly",
      );
    }
    if (entry.info.state !== "stopping") void terminate(entry);
    if (!crashed) return;
    // It leaves rotation at once (not after failed health probes), and
    // nothing it spawned keeps running or holding GPUs.
    if (entry.registered) {
      entry.registered = false;
      void deregisterQuietly(entry.info.url);
    }
    if (entry.readyAtMs !== null && Date.now() - entry.readyAtMs >= STABLE_MS) entry.consecutiveRestarts = 0;
    restartLater(entry, exit.reason !== undefined ? `ended ${exit.reason}` : exit.signal === null ? `exited with code ${exit.code}` : `was killed by ${exit.signal}`);
  };

  /** Applies the restart policy to a worker that ended (crashed, or a restart that failed to start). */
  const restartLater = (entry: Entry, why: string): void => {
    const { restart, max_restarts, restart_backoff } = entry.config;
    if (restart === "never") return;
    if (entry.info.restarts >= max_restarts) {
      entry.info.state = "failed";
      entry.info.error = `${why}; not restarted again: it was restarted ${entry.info.restarts} time(s) (max_restarts ${max_restarts})`;
      logger.error({ ...who(entry), restarts: entry.info.restarts }, "managed worker gave up: max_restarts reached");
      return;
    }
    const delayMs = Math.min(MAX_BACKOFF_MS, restart_backoff * 1000 * 2 ** entry.consecutiveRestarts);
    entry.info.state = "restarting";
    entry.info.error = `${why}; restarting in ${(delayMs / 1000).toFixed(1)} s`;
    logger.info({ ...who(entry), delayMs, restarts: entry.info.restarts }, "restarting managed worker after its backoff");
    entry.restartTimer = setTimeout(() => void restartNow(entry), delayMs);
  };

  /**
   * Starts a worker in `restarting` again: a new process on the same ports
   * and GPUs (local, sim), or a new job (Slurm, wherever it lands); it is
   * registered once healthy.
   */
  const restartNow = async (entry: Entry): Promise<void> => {
    entry.restartTimer = null;
    if (entry.info.state !== "restarting") return;
    await entry.terminating; // the old process group (or job) is gone and its resources free
    if (entry.info.state !== "restarting") return;
    entry.info.restarts++;
    entry.consecutiveRestarts++;
    const settled = options.onRestart?.(snapshot(entry));
    try {
      await startRun(entry);
      entry.readyAtMs = null;
      Object.assign(entry.info, { state: "starting", startedAtMs: Date.now(), error: undefined });
      logger.info({ ...who(entry), restarts: entry.info.restarts }, "restarted managed worker");
    } catch (error) {
      entry.info.state = "failed";
      entry.info.error = `restart failed: ${error instanceof Error ? error.message : String(error)}`;
      settled?.(snapshot(entry));
      restartLater(entry, entry.info.error);
      return;
    }
    const outcome = await settle(entry, entry.config.wait_timeout * 1000);
    settled?.(outcome);
    if (outcome.state === "failed") restartLater(entry, outcome.error ?? "failed to start");
  };

  /** Starts a process (local, sim: on the entry's ports and GPUs) or submits a job (Slurm) for the entry. */
  const startRun = async (entry: Entry): Promise<void> => {
    const { config, plan } = entry;
    let run: WorkerRun;
    if (plan === null) {
      run = await slurm().start(config);
      entry.info.pid = 0;
      logger.info({ worker: entry.info.url, slurmJobId: run.slurm()?.jobId, model: config.model }, "submitted worker job");
    } else {
      const program = resolveBackendProgram(config.backend as Exclude<LauncherBackend, "slurm">, env);
      const { command, args } = buildWorkerCommand(program, config, plan);
      const url = entry.info.url;
      const proc = await spawnWorker({ command, args, env: workerEnv(plan.gpus), logger: logger.child({ worker: url }) });
      run = processRun(proc, { url, port: plan.port, gpus: plan.gpus }, { graceMs, logger: logger.child({ worker: url, pid: proc.pid }) });
      entry.info.pid = proc.pid;
      logger.info(
        { worker: url, pid: proc.pid, cudaVisibleDevices: plan.gpus, command: [command, ...args].map(shellQuote).join(" ") },
        "launched worker",
      );
    }
    entry.run = run;
    entry.terminating = undefined;
    entry.holdsResources = plan !== null;
    void run.exited.then((exit) => onExit(entry, run, exit));
  };

  const workerEnv = (gpus: string | null): NodeJS.ProcessEnv => {
    const childEnv: NodeJS.ProcessEnv = { ...env };
    if (gpus !== null) childEnv["CUDA_VISIBLE_DEVICES"] = gpus;
    // Python block-buffers stdout into a pipe; unbuffered, sglang's log reaches ours as it happens.
    childEnv["PYTHONUNBUFFERED"] ??= "1";
    return childEnv;
  };

  /** A finished worker that had this URL before is superseded: dropped from the list. */
  const supersede = (entry: Entry): void => {
    for (const other of entries.values()) {
      if (other !== entry && other.info.url === entry.info.url && !isLive(other) && other.info.state !== "stopping") entries.delete(other.seq);
    }
  };

  /** Reserves ports and GPUs (local backends) and starts `count` workers. Call under the lock only. */
  const spawnBatch = async (config: LauncherConfig, count: number): Promise<Entry[]> => {
    if (count <= 0) return [];
    const key = configKey(config);
    let plans: (LocalPlan | null)[];
    if (config.backend === "slurm") {
      checkSlurmBackend(config, env);
      plans = Array.from({ length: count }, () => null);
    } else {
      // A missing program fails before any port is reserved.
      resolveBackendProgram(config.backend, env);
      plans = await planLocal(config, count);
    }

    const batch: Entry[] = [];
    for (const plan of plans) {
      const entry: Entry = {
        info: {
          url: plan === null ? "" : workerUrl(config.worker_host, plan.port),
          pid: 0,
          backend: config.backend,
          model: config.model,
          port: plan?.port ?? 0,
          masterPort: plan?.masterPort ?? 0,
          schedulerPort: plan?.schedulerPort ?? 0,
          gpus: plan?.gpus ?? null,
          state: "starting",
          startedAtMs: Date.now(),
          restarts: 0,
        },
        run: notStarted,
        config,
        plan,
        consecutiveRestarts: 0,
        readyAtMs: null,
        restartTimer: null,
        configKey: key,
        seq: nextSeq++,
        registered: false,
        holdsResources: plan !== null,
      };
      try {
        await startRun(entry);
      } catch (error) {
        // Same program for the whole batch: the rest would fail too. Leave nothing half-started.
        await Promise.all(batch.map((e) => terminate(e)));
        for (const e of batch) entries.delete(e.seq);
        throw error;
      }
      if (entry.info.url !== "") supersede(entry);
      entries.set(entry.seq, entry);
      batch.push(entry);
    }
    return batch;
  };

  /** Free ports and GPUs for `count` local workers, skipping those of workers still holding theirs. */
  const planLocal = async (config: LauncherConfig, count: number): Promise<LocalPlan[]> => {
    const holders = [...entries.values()].filter((e) => e.holdsResources && e.plan !== null);
    const inUseGpus = new Set(holders.flatMap((e) => (e.info.gpus === null ? [] : splitDevices(e.info.gpus))));
    const gpus = assignGpus(config, env, detectGpuCount, { count, inUse: inUseGpus });
    const reserved = new Set(holders.flatMap((e) => [e.info.port, e.info.port + 1, e.info.masterPort, e.info.schedulerPort]));
    const plans: LocalPlan[] = [];
    for (let i = 0; i < count; i += 1) {
      const port = await findFreePort({ host: config.worker_host, preferred: config.worker_base_port + 2 * i, reserved, span: 2 });
      reserved.add(port).add(port + 1);
      // Internal ports are bound on loopback, as in the Python launcher.
      const masterPort = await findFreePort({
        host: "127.0.0.1",
        preferred: config.master_port_base + i * config.internal_port_stride,
        reserved,
      });
      reserved.add(masterPort);
      const schedulerPort = await findFreePort({
        host: "127.0.0.1",
        preferred: config.scheduler_port_base + i * config.internal_port_stride,
        reserved,
      });
      reserved.add(schedulerPort);
      plans.push({ port, masterPort, schedulerPort, gpus: gpus[i]! });
    }
    return plans;
  };

  /** Waits for one worker's location (a Slurm job's report) and health, then registers it. Never throws: the outcome is in the entry. */
  const settle = async (entry: Entry, timeoutMs: number): Promise<ManagedWorker> => {
    const run = entry.run;
    const deadline = Date.now() + timeoutMs;
    const stoppedMeanwhile = (): boolean => entry.run !== run || entry.info.state !== "starting";
    try {
      const location = await run.locate(timeoutMs);
      if (!stoppedMeanwhile()) {
        if (entry.info.url !== location.url) {
          entry.info.url = location.url;
          supersede(entry);
        }
        entry.info.port = location.port;
        entry.info.gpus = location.gpus;
      }
      await waitForHealth({
        url: location.url,
        timeoutMs: Math.max(0, deadline - Date.now()),
        pollIntervalMs: healthPollMs,
        process: run,
        logger: logger.child(who(entry)),
      });
    } catch (error) {
      if (stoppedMeanwhile()) {
        entry.info.error = "stopped before it became healthy";
      } else {
        entry.info.state = "failed";
        entry.info.error = error instanceof Error ? error.message : String(error);
        if (error instanceof WorkerExitedError) {
          entry.info.exitCode = error.exitCode;
          entry.info.exitSignal = error.signal;
        }
        logger.error({ ...who(entry), err: error }, "worker failed to start");
        // On timeout the process may be alive but stuck (or the job still pending): it must not linger.
        await terminate(entry);
      }
      return snapshot(entry);
    }
    if (stoppedMeanwhile()) {
      entry.info.error = "stopped before it became healthy";
      return snapshot(entry);
    }

    const { url } = entry.info;
    try {
      await options.register(url);
    } catch (error) {
      entry.info.state = "failed";
      entry.info.error = `registration failed: ${error instanceof Error ? error.message : String(error)}`;
      logger.error({ ...who(entry), err: error }, "worker is healthy but could not be registered; stopping it");
      await terminate(entry);
      return snapshot(entry);
    }
    if (stoppedMeanwhile()) {
      // stop() ran while register() was in flight and saw nothing to deregister.
      await deregisterQuietly(url);
      entry.info.error ??= "stopped before it became ready";
      return snapshot(entry);
    }
    entry.registered = true;
    const exit = run.exitInfo();
    if (exit !== undefined) {
      entry.info.state = "exited";
      recordExit(entry, exit);
      logger.warn({ ...who(entry), exitCode: exit.code, reason: exit.reason }, "managed worker exited right after registration");
      return snapshot(entry);
    }
    entry.info.state = "ready";
    entry.readyAtMs = Date.now();
    logger.info({ ...who(entry), startupMs: Date.now() - entry.info.startedAtMs }, "worker ready and registered");
    return snapshot(entry);
  };

  const deregisterQuietly = async (url: string): Promise<void> => {
    if (options.deregister === undefined || url === "") return;
    try {
      await options.deregister(url);
    } catch (error) {
      logger.warn({ worker: url, err: error }, "deregistering a stopped worker failed");
    }
  };

  /** Marks the entry stopping (synchronously, so counts are right at once), then stops it. */
  const beginStop = (entry: Entry): Promise<void> => {
    if (isLive(entry)) entry.info.state = "stopping";
    if (entry.restartTimer !== null) {
      clearTimeout(entry.restartTimer);
      entry.restartTimer = null;
    }
    return (async () => {
      if (entry.registered) {
        entry.registered = false;
        // Deregister first so the router stops sending requests before SIGTERM.
        await deregisterQuietly(entry.info.url);
      }
      await terminate(entry);
      if (entry.info.state === "stopping") entry.info.state = "exited";
      entries.delete(entry.seq);
    })();
  };

  const settleBatch = async (batch: Entry[], config: LauncherConfig): Promise<ManagedWorker[]> =>
    Promise.all(batch.map((entry) => settle(entry, config.wait_timeout * 1000)));

  /** A worker named by its URL, or by its Slurm job id. */
  const find = (name: string): Entry | undefined => {
    const all = [...entries.values()];
    return all.find((e) => e.info.url === name) ?? all.find((e) => e.run.slurm()?.jobId === name);
  };

  return {
    async launch(config) {
      const groups: LauncherGroups = isGroups(config) ? config : [config];
      const batches = await withLock(async () => {
        // A missing program fails the launch before any group starts.
        for (const group of groups) {
          if (group.backend === "slurm") checkSlurmBackend(group, env);
          else resolveBackendProgram(group.backend, env);
        }
        const started: Entry[][] = [];
        try {
          for (const group of groups) started.push(await spawnBatch(group, group.num_workers));
        } catch (error) {
          // A later group is short of GPUs or ports: the earlier ones do not stay half-launched.
          const spawned = started.flat();
          await Promise.all(spawned.map((e) => terminate(e)));
          for (const e of spawned) entries.delete(e.seq);
          throw error;
        }
        return started;
      });
      const settled = await Promise.all(batches.map((batch, i) => settleBatch(batch, groups[i]!)));
      return { workers: settled.flat() };
    },

    list() {
      return [...entries.values()].sort((a, b) => a.seq - b.seq).map(snapshot);
    },

    async stop(urls) {
      // Let an allocation in progress finish, so its workers are seen (and stopped) too.
      await withLock(async () => undefined);
      let targets: Entry[];
      if (urls === undefined) {
        targets = [...entries.values()];
      } else {
        targets = urls.map((url) => {
          const entry = find(url);
          if (entry === undefined) {
            throw new RouterError("worker_not_found", `the launcher manages no worker ${url}`, { details: { url } });
          }
          return entry;
        });
      }
      await Promise.all(targets.map(beginStop));
    },


    async scale(config, count) {
      if (!Number.isInteger(count) || count < 0) {
        throw new LauncherError(`scale count must be an integer >= 0, got ${count}`);
      }
      const key = configKey(config);
      const { batch, stopping } = await withLock(async (): Promise<{ batch: Entry[]; stopping: { entry: Entry; done: Promise<void> }[] }> => {
        const live = [...entries.values()].filter((e) => e.configKey === key && isLive(e)).sort((a, b) => a.seq - b.seq);
        if (count >= live.length) return { batch: await spawnBatch(config, count - live.length), stopping: [] };
        // Newest first. beginStop marks them "stopping" synchronously, inside the
        // lock, so a concurrent scale() already counts them as gone.
        const victims = live.slice(count).reverse();
        return { batch: [], stopping: victims.map((entry) => ({ entry, done: beginStop(entry) })) };
      });
      await Promise.all(stopping.map((s) => s.done));
      // A Slurm job stopped before it reported its URL is named by its job id.
      return { started: await settleBatch(batch, config), stopped: stopping.map((s) => s.entry.info.url || (s.entry.run.slurm()?.jobId ?? "")) };
    },

    killAllSync() {
      for (const entry of entries.values()) {
        if (entry.restartTimer !== null) clearTimeout(entry.restartTimer);
        entry.run.killSync();
      }
      // Jobs still being submitted or followed, whatever their entry's state.
      slurmBackend?.cancelAllSync();
    },
  };
}

/** The run of an entry before its first start. */
const notStarted: WorkerRun = {
  pid: 0,
  locate: () => Promise.reject(new LauncherError("worker not started")),
  exited: new Promise(() => undefined),
  exitInfo: () => undefined,
  stop: () => Promise.resolve(),
  killSync: () => undefined,
  slurm: () => undefined,
};

function isGroups(config: LauncherConfig | LauncherGroups): config is LauncherGroups {
  return Array.isArray(config);
}

/** Configs that differ only in num_workers describe the same kind of worker. */
function configKey(config: LauncherConfig): string {
  const { num_workers: _ignored, ...rest } = config;
  return JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
}

/** For the log line only: the command as an operator would paste it into a shell. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
