import type { Logger } from "../log.js";
import type { Backend, Placement } from "./backend.js";
import { groupName, type LauncherConfig } from "./config.js";
import { LauncherError, WorkerExitedError } from "./errors.js";
import type { LauncherOptions, ManagedWorker } from "./launcher-api.js";
import { waitForHealth, type ExitInfo } from "./process.js";
import type { WorkerRun } from "./run.js";

/** One managed worker, across its restarts. */
export interface Entry {
  info: { -readonly [K in keyof ManagedWorker]: ManagedWorker[K] };
  /** The current start of the worker, as its backend runs it. */
  run: WorkerRun;
  backend: Backend;
  /** The config it was started from (a restart runs the same command). */
  config: LauncherConfig;
  /** Where its backend put it; kept for restarts (same URL, same GPUs). */
  placement: Placement;
  /** Restarts in a row; reset when a process has been ready for {@link STABLE_MS}. */
  consecutiveRestarts: number;
  readyAtMs: number | null;
  restartTimer: NodeJS.Timeout | null;
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

/**
 * The life of managed workers, whatever their backend: start, watch for
 * health and register, apply the restart policy when one exits, stop.
 */
export class Supervisor {
  readonly entries = new Map<number, Entry>();
  private nextSeq = 0;
  private readonly logger: Logger;
  private readonly healthPollMs: number;

  constructor(private readonly options: LauncherOptions) {
    this.logger = options.logger;
    this.healthPollMs = options.healthPollMs ?? 500;
  }

  snapshot(entry: Entry): ManagedWorker {
    return Object.freeze({ ...entry.info, ...entry.run.describe().facts });
  }

  isLive(entry: Entry): boolean {
    return entry.info.state === "starting" || entry.info.state === "ready" || entry.info.state === "restarting";
  }

  /** Log fields naming the worker: its URL, and its pid or Slurm job. */
  who(entry: Entry): Record<string, unknown> {
    return { worker: entry.info.url, ...entry.run.describe().log };
  }

  /** A worker named by its URL, or by its backend's other name for it (a Slurm job id). */
  find(name: string): Entry | undefined {
    const all = [...this.entries.values()];
    return all.find((e) => e.info.url === name) ?? all.find((e) => e.run.describe().alias === name);
  }

  /** Placements of workers that may still hold ports and GPUs of this machine. */
  heldPlacements(): Placement[] {
    return [...this.entries.values()].filter((e) => e.holdsResources).map((e) => e.placement);
  }

  /** A new entry for a worker about to start at `placement`; not yet in {@link entries}. */
  newEntry(config: LauncherConfig, backend: Backend, placement: Placement): Entry {
    const group = groupName(config);
    return {
      info: {
        url: placement.url,
        pid: 0,
        backend: config.backend,
        group,
        name: `${group}/${this.freeIndex(group)}`,
        model: config.model,
        port: placement.port,
        masterPort: placement.masterPort,
        schedulerPort: placement.schedulerPort,
        gpus: placement.gpus,
        state: "starting",
        startedAtMs: Date.now(),
        restarts: 0,
      },
      run: notStarted,
      backend,
      config,
      placement,
      consecutiveRestarts: 0,
      readyAtMs: null,
      restartTimer: null,
      seq: this.nextSeq++,
      registered: false,
      holdsResources: backend.holdsLocalResources,
    };
  }

  /** The lowest index no worker of `group` the launcher still lists holds (a failed one keeps its name). */
  private freeIndex(group: string): number {
    const taken = new Set([...this.entries.values()].filter((e) => e.info.group === group).map((e) => e.info.name));
    let i = 0;
    while (taken.has(`${group}/${i}`)) i++;
    return i;
  }

  /** Starts the entry's worker (again) through its backend, and watches for its end. */
  async startRun(entry: Entry): Promise<void> {
    this.adoptRun(entry, await entry.backend.start(entry.config, entry.placement));
    this.changed();
  }

  /** Makes `run` (just started, or adopted from an earlier router process) the entry's current one, and watches for its end. */
  adoptRun(entry: Entry, run: WorkerRun): void {
    entry.info.pid = run.pid;
    entry.run = run;
    entry.terminating = undefined;
    entry.holdsResources = entry.backend.holdsLocalResources;
    void run.exited.then((exit) => this.onExit(entry, run, exit));
  }

  /** Tells the owner (the state file's recorder) that a worker's handle, URL or membership may have changed. */
  changed(): void {
    this.options.onRunsChanged?.();
  }

  /** A finished worker that had this URL before is superseded: dropped from the list. */
  supersede(entry: Entry): void {
    for (const other of this.entries.values()) {
      if (other !== entry && other.info.url === entry.info.url && !this.isLive(other) && other.info.state !== "stopping") this.entries.delete(other.seq);
    }
  }

  /**
   * Ends the entry's current run once (SIGTERM → grace → SIGKILL, or
   * scancel) and frees its ports and GPUs, unless a restart will reuse them.
   */
  terminate(entry: Entry): Promise<void> {
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
  }

  private onExit(entry: Entry, run: WorkerRun, exit: ExitInfo): void {
    if (entry.run !== run) return; // an earlier process or job of a restarted worker
    recordExit(entry, exit);
    const crashed = entry.info.state === "ready";
    if (crashed) {
      entry.info.state = "exited";
      this.logger.warn(
        { ...this.who(entry), exitCode: exit.code, signal: exit.signal, reason: exit.reason, restarts: entry.info.restarts, policy: entry.config.restart },
        "managed worker exited unexpectedly",
      );
    }
    if (entry.info.state !== "stopping") void this.terminate(entry);
    if (!crashed) return;
    // It leaves rotation at once (not after failed health probes), and
    // nothing it spawned keeps running or holding GPUs.
    if (entry.registered) {
      entry.registered = false;
      void this.deregisterQuietly(entry.info.url);
    }
    if (entry.readyAtMs !== null && Date.now() - entry.readyAtMs >= STABLE_MS) entry.consecutiveRestarts = 0;
    this.restartLater(entry, exit.reason !== undefined ? `ended ${exit.reason}` : exit.signal === null ? `exited with code ${exit.code}` : `was killed by ${exit.signal}`);
  }

  /** Applies the restart policy to a worker that ended (crashed, or a restart that failed to start). */
  private restartLater(entry: Entry, why: string): void {
    const { restart, max_restarts, restart_backoff } = entry.config;
    if (restart === "never") return;
    if (entry.info.restarts >= max_restarts) {
      entry.info.state = "failed";
      entry.info.error = `${why}; not restarted again: it was restarted ${entry.info.restarts} time(s) (max_restarts ${max_restarts})`;
      this.logger.error({ ...this.who(entry), restarts: entry.info.restarts }, "managed worker gave up: max_restarts reached");
      this.changed();
      return;
    }
    const delayMs = Math.min(MAX_BACKOFF_MS, restart_backoff * 1000 * 2 ** entry.consecutiveRestarts);
    entry.info.state = "restarting";
    entry.info.error = `${why}; restarting in ${(delayMs / 1000).toFixed(1)} s`;
    this.logger.info({ ...this.who(entry), delayMs, restarts: entry.info.restarts }, "restarting managed worker after its backoff");
    entry.restartTimer = setTimeout(() => void this.restartNow(entry), delayMs);
  }

  /**
   * Starts a worker in `restarting` again at the same placement (local,
   * sim: same ports and GPUs; Slurm: a new job, wherever it lands); it is
   * registered once healthy.
   */
  private async restartNow(entry: Entry): Promise<void> {
    entry.restartTimer = null;
    if (entry.info.state !== "restarting") return;
    await entry.terminating; // the old process group (or job) is gone and its resources free
    if (entry.info.state !== "restarting") return;
    entry.info.restarts++;
    entry.consecutiveRestarts++;
    const settled = this.options.onRestart?.(this.snapshot(entry));
    try {
      await this.startRun(entry);
      entry.readyAtMs = null;
      Object.assign(entry.info, { state: "starting", startedAtMs: Date.now(), error: undefined });
      this.logger.info({ ...this.who(entry), restarts: entry.info.restarts }, "restarted managed worker");
    } catch (error) {
      entry.info.state = "failed";
      entry.info.error = `restart failed: ${error instanceof Error ? error.message : String(error)}`;
      settled?.(this.snapshot(entry));
      this.restartLater(entry, entry.info.error);
      return;
    }
    const outcome = await this.settle(entry, entry.config.wait_timeout * 1000);
    settled?.(outcome);
    if (outcome.state === "failed") this.restartLater(entry, outcome.error ?? "failed to start");
  }

  /** Waits for one worker's location (a Slurm job's report) and health, then registers it. Never throws: the outcome is in the entry. */
  async settle(entry: Entry, timeoutMs: number): Promise<ManagedWorker> {
    const run = entry.run;
    const stoppedMeanwhile = (): boolean => entry.run !== run || entry.info.state !== "starting";
    try {
      await this.waitUntilServing(entry, timeoutMs, stoppedMeanwhile);
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
        this.logger.error({ ...this.who(entry), err: error }, "worker failed to start");
        // On timeout the process may be alive but stuck (or the job still pending): it must not linger.
        await this.terminate(entry);
        this.changed();
      }
      return this.snapshot(entry);
    }
    if (stoppedMeanwhile()) {
      entry.info.error = "stopped before it became healthy";
      return this.snapshot(entry);
    }
    return this.register(entry, stoppedMeanwhile);
  }

  /** Learns where the run serves (updating the entry) and waits for its /health. */
  private async waitUntilServing(entry: Entry, timeoutMs: number, stoppedMeanwhile: () => boolean): Promise<void> {
    const run = entry.run;
    const deadline = Date.now() + timeoutMs;
    const location = await run.locate(timeoutMs);
    if (!stoppedMeanwhile()) {
      if (entry.info.url !== location.url) {
        entry.info.url = location.url;
        this.supersede(entry);
      }
      // A Slurm job's node and URL are known now: its record can name them.
      this.changed();
      entry.info.port = location.port;
      entry.info.gpus = location.gpus;
    }
    await waitForHealth({
      url: location.url,
      timeoutMs: Math.max(0, deadline - Date.now()),
      pollIntervalMs: this.healthPollMs,
      process: run,
      logger: this.logger.child(this.who(entry)),
    });
  }

  /** Adds a healthy worker to the router; a worker that cannot be registered is stopped. */
  private async register(entry: Entry, stoppedMeanwhile: () => boolean): Promise<ManagedWorker> {
    const { url } = entry.info;
    try {
      await this.options.register(url, entry.run.describe().handle);
    } catch (error) {
      entry.info.state = "failed";
      entry.info.error = `registration failed: ${error instanceof Error ? error.message : String(error)}`;
      this.logger.error({ ...this.who(entry), err: error }, "worker is healthy but could not be registered; stopping it");
      await this.terminate(entry);
      return this.snapshot(entry);
    }
    if (stoppedMeanwhile()) {
      // stop() ran while register() was in flight and saw nothing to deregister.
      await this.deregisterQuietly(url);
      entry.info.error ??= "stopped before it became ready";
      return this.snapshot(entry);
    }
    entry.registered = true;
    const exit = entry.run.exitInfo();
    if (exit !== undefined) {
      entry.info.state = "exited";
      recordExit(entry, exit);
      this.logger.warn({ ...this.who(entry), exitCode: exit.code, reason: exit.reason }, "managed worker exited right after registration");
      return this.snapshot(entry);
    }
    entry.info.state = "ready";
    entry.readyAtMs = Date.now();
    this.logger.info({ ...this.who(entry), startupMs: Date.now() - entry.info.startedAtMs }, "worker ready and registered");
    return this.snapshot(entry);
  }

  private async deregisterQuietly(url: string): Promise<void> {
    if (this.options.deregister === undefined || url === "") return;
    try {
      await this.options.deregister(url);
    } catch (error) {
      this.logger.warn({ worker: url, err: error }, "deregistering a stopped worker failed");
    }
  }

  /** Marks the entry stopping (synchronously, so counts are right at once), then stops it. */
  beginStop(entry: Entry): Promise<void> {
    if (this.isLive(entry)) entry.info.state = "stopping";
    if (entry.restartTimer !== null) {
      clearTimeout(entry.restartTimer);
      entry.restartTimer = null;
    }
    return (async () => {
      if (entry.registered) {
        entry.registered = false;
        // Deregister first so the router stops sending requests before SIGTERM.
        await this.deregisterQuietly(entry.info.url);
      }
      await this.terminate(entry);
      if (entry.info.state === "stopping") entry.info.state = "exited";
      this.entries.delete(entry.seq);
      this.changed();
    })();
  }
}

function recordExit(entry: Entry, exit: ExitInfo | undefined): void {
  if (exit === undefined) return;
  entry.info.exitCode = exit.code;
  entry.info.exitSignal = exit.signal;
}

/** The run of an entry before its first start. */
const notStarted: WorkerRun = {
  pid: 0,
  locate: () => Promise.reject(new LauncherError("worker not started")),
  exited: new Promise(() => undefined),
  exitInfo: () => undefined,
  stop: () => Promise.resolve(),
  killSync: () => undefined,
  describe: () => ({ facts: {}, log: {}, handle: "" }),
};
