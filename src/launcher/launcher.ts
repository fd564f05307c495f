import { RouterError } from "../errors.js";
import type { Backend, BackendContext } from "./backend.js";
import { groupName, type LauncherConfig, type LauncherGroups } from "./config.js";
import { LauncherConfigError, LauncherError } from "./errors.js";
import { recoverGroups, type GroupRecovery } from "./adoption.js";
import type { LaunchOptions, LaunchResult, Launcher, LauncherOptions, ManagedWorker, ScaleOptions, ScaleResult } from "./launcher-api.js";
import { detectGpuCountWithNvidiaSmi } from "./local/gpus.js";
import { configKey, settingsDigest, type ManagedRecord } from "./managed-record.js";
import { backendTable, type LauncherBackend } from "./registry.js";
import { Supervisor, type Entry } from "./supervisor.js";

export type { LaunchOptions, LaunchResult, Launcher, LauncherOptions, ManagedWorker, ScaleOptions, ScaleResult, WorkerState } from "./launcher-api.js";

/** Creates a launcher; it starts nothing until {@link Launcher.launch} or {@link Launcher.scale}. */
export function createLauncher(options: LauncherOptions): Launcher {
  const core = new LauncherCore(options);
  // A plain object of bound functions: callers wrap it by spreading (audit).
  return {
    launch: (config, launchOptions) => core.launch(config, launchOptions),
    records: () => core.records(),
    list: () => core.list(),
    stop: (urls) => core.stop(urls),
    scale: (config, count, scaleOptions) => core.scale(config, count, scaleOptions),
    killAllSync: () => core.killAllSync(),
  };
}

type ScalePlan = { batch: Entry[]; stopping: { entry: Entry; done: Promise<void> }[] };

/** Groups and scaling over the {@link Supervisor}, with one backend instance per `backend:` value. */
class LauncherCore implements Launcher {
  private readonly context: BackendContext;
  // Created on first use: the Slurm one names its jobs once per launcher.
  private readonly backends = new Map<LauncherBackend, Backend>();
  private readonly supervisor: Supervisor;
  /** Launched groups by name: the distinct settings launched under it (usually one). */
  private readonly groups = new Map<string, LauncherConfig[]>();
  // Allocation (ports, GPUs, spawn) runs one batch at a time, so two launches
  // cannot both see the same port as free before either has bound it.
  private lockTail: Promise<unknown> = Promise.resolve();

  constructor(options: LauncherOptions) {
    const env = options.env ?? process.env;
    this.context = {
      logger: options.logger,
      env,
      graceMs: options.stopGraceMs ?? 10_000,
      detectGpuCount: options.detectGpuCount ?? (() => detectGpuCountWithNvidiaSmi(env)),
    };
    this.supervisor = new Supervisor(options);
  }

  async launch(config: LauncherConfig | LauncherGroups, options: LaunchOptions = {}): Promise<LaunchResult> {
    const groups: LauncherGroups = isGroups(config) ? config : [config];
    const batches = await this.withLock(async () => {
      // A missing program fails the launch before any group starts.
      for (const group of groups) this.backendFor(group.backend).check(group);
      for (const group of groups) this.remember(group);
      const started: Entry[][] = [];
      let recovered: GroupRecovery[] = [];
      try {
        recovered = await this.recover(groups, options.adopt ?? []);
        for (const [i, group] of groups.entries()) started.push(await this.spawnGroup(group, recovered[i]!));
      } catch (error) {
        // A later group is short of GPUs or ports: the earlier ones (adopted ones too) do not stay half-launched.
        await this.dropAll([...new Set([...started.flat(), ...recovered.flatMap((r) => r.adopted)])]);
        throw error;
      }
      return started;
    });
    const settled = await Promise.all(batches.map((batch, i) => this.settleBatch(batch, groups[i]!)));
    return { workers: settled.flat() };
  }

  records(): ManagedRecord[] {
    return [...this.supervisor.entries.values()]
      .filter((e) => this.supervisor.isLive(e) && e.run.describe().handle !== "")
      .sort((a, b) => a.seq - b.seq)
      .map((e) => ({
        name: e.info.name,
        group: e.info.group,
        backend: e.config.backend,
        model: e.config.model,
        settings: settingsDigest(e.config),
        url: e.info.url,
        port: e.placement.port,
        masterPort: e.placement.masterPort,
        schedulerPort: e.placement.schedulerPort,
        gpus: e.placement.gpus,
        handle: e.run.describe().handle,
        restarts: e.info.restarts,
      }));
  }

  /**
   * Restart recovery (under the lock): adopts the recorded workers still
   * running, before anything is placed, so fresh workers never take their
   * ports or GPUs. Nothing is told until every one is in the entries: a
   * record written halfway would forget the others.
   */
  private async recover(groups: LauncherGroups, saved: readonly ManagedRecord[]): Promise<GroupRecovery[]> {
    if (saved.length === 0) return groups.map(() => ({ adopted: [], gone: [] }));
    const recovered = await recoverGroups(groups, saved, { supervisor: this.supervisor, backendFor: (b) => this.backendFor(b), logger: this.context.logger });
    for (const entry of recovered.flatMap((r) => r.adopted)) {
      this.supervisor.entries.set(entry.seq, entry);
      this.context.logger.info({ ...this.supervisor.who(entry), name: entry.info.name }, "adopted a managed worker of the previous router process");
    }
    this.supervisor.changed();
    return recovered;
  }

  /** A group's workers at start: the adopted ones, the gone ones again (same names, one restart more), then new ones up to num_workers. */
  private async spawnGroup(group: LauncherConfig, recovery: GroupRecovery): Promise<Entry[]> {
    const { adopted, gone } = recovery;
    const fresh = await this.spawnBatch(group, Math.max(group.num_workers, adopted.length + gone.length) - adopted.length, gone);
    return [...adopted, ...fresh];
  }

  list(): ManagedWorker[] {
    return [...this.supervisor.entries.values()].sort((a, b) => a.seq - b.seq).map((e) => this.supervisor.snapshot(e));
  }

  async stop(urls?: readonly string[]): Promise<void> {
    // Let an allocation in progress finish, so its workers are seen (and stopped) too.
    await this.withLock(async () => undefined);
    const targets =
      urls === undefined
        ? [...this.supervisor.entries.values()]
        : urls.map((url) => {
            const entry = this.supervisor.find(url);
            if (entry === undefined) throw new RouterError("worker_not_found", `the launcher manages no worker ${url}`, { details: { url } });
            return entry;
          });
    if (urls === undefined) this.groups.clear();
    await Promise.all(targets.map((e) => this.supervisor.beginStop(e)));
  }

  async scale(config: LauncherConfig, count: number, options: ScaleOptions = {}): Promise<ScaleResult> {
    if (!Number.isInteger(count) || count < 0) {
      throw new LauncherError(`scale count must be an integer >= 0, got ${count}`);
    }
    let group = config;
    const { batch, stopping } = await this.withLock(async (): Promise<ScalePlan> => {
      group = this.groupToScale(config, options);
      const key = configKey(group);
      const live = [...this.supervisor.entries.values()].filter((e) => configKey(e.config) === key && this.supervisor.isLive(e)).sort((a, b) => a.seq - b.seq);
      if (count >= live.length) return { batch: await this.spawnBatch(group, count - live.length), stopping: [] };
      // Newest first. beginStop marks them "stopping" synchronously, inside the
      // lock, so a concurrent scale() already counts them as gone.
      const victims = live.slice(count).reverse();
      return { batch: [], stopping: victims.map((entry) => ({ entry, done: this.supervisor.beginStop(entry) })) };
    });
    await Promise.all(stopping.map((s) => s.done));
    // A worker stopped before it had a URL (a Slurm job that had not reported) is named by its backend's other name.
    return { started: await this.settleBatch(batch, group), stopped: stopping.map((s) => s.entry.info.url || (s.entry.run.describe().alias ?? "")) };
  }

  killAllSync(): void {
    for (const entry of this.supervisor.entries.values()) {
      if (entry.restartTimer !== null) clearTimeout(entry.restartTimer);
      entry.run.killSync();
    }
    // Workers still being started or followed, whatever their entry's state.
    for (const backend of this.backends.values()) backend.killAllSync();
  }

  /**
   * The settings of the group `config` names: the launched ones equal to it
   * (num_workers aside), or else the only ones launched under its name. A
   * request that names no group would otherwise start workers on defaults
   * beside the real ones (a partial config started a second group on
   * default ports).
   */
  private groupToScale(config: LauncherConfig, options: ScaleOptions): LauncherConfig {
    const name = groupName(config);
    const variants = this.groups.get(name) ?? [];
    const key = configKey(config);
    const exact = variants.find((v) => configKey(v) === key);
    if (exact !== undefined) return exact;
    if (variants.length === 1) return variants[0]!;
    if (variants.length === 0 && options.create === true) return this.remember(config);
    const existing = [...this.groups.keys()].map((n) => `"${n}" (${this.groups.get(n)![0]!.backend}, ${this.liveCount(n)} live)`);
    const why =
      variants.length === 0
        ? `no launcher group is named "${name}" (existing groups: ${existing.join(", ") || "none"})`
        : `${variants.length} groups were launched as "${name}" with different settings and the request matches none of them exactly`;
    throw new LauncherConfigError(
      `${why}; a scale request names its group by launcher.name, or by model when the group has no name: ` +
        `name an existing group, or ask to create a new one (create: true)`,
      { source: "scale request", key: "launcher.name" },
    );
  }

  private remember(config: LauncherConfig): LauncherConfig {
    const name = groupName(config);
    const variants = this.groups.get(name) ?? [];
    if (!variants.some((v) => configKey(v) === configKey(config))) this.groups.set(name, [...variants, config]);
    return config;
  }

  private liveCount(name: string): number {
    return [...this.supervisor.entries.values()].filter((e) => groupName(e.config) === name && this.supervisor.isLive(e)).length;
  }

  private backendFor(name: LauncherBackend): Backend {
    let backend = this.backends.get(name);
    if (backend === undefined) this.backends.set(name, (backend = backendTable[name].create(this.context)));
    return backend;
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lockTail.then(fn, fn);
    this.lockTail = run.catch(() => undefined);
    return run;
  }

  /**
   * Places and starts `count` workers of `config`. Call under the lock only.
   * The first ones stand for `again` (recorded workers found gone at restart
   * recovery): they keep those names and count one restart more.
   */
  private async spawnBatch(config: LauncherConfig, count: number, again: readonly ManagedRecord[] = []): Promise<Entry[]> {
    if (count <= 0) return [];
    const backend = this.backendFor(config.backend);
    // A missing program fails before any port is reserved.
    backend.check(config);
    const placements = await backend.place(config, count, this.supervisor.heldPlacements());
    const batch: Entry[] = [];
    for (const [i, placement] of placements.entries()) {
      const entry = this.supervisor.newEntry(config, backend, placement);
      const record = again[i];
      if (record !== undefined) Object.assign(entry.info, { name: record.name, restarts: record.restarts + 1 });
      try {
        await this.supervisor.startRun(entry);
      } catch (error) {
        // Same program for the whole batch: the rest would fail too. Leave nothing half-started.
        await this.dropAll(batch);
        throw error;
      }
      if (entry.info.url !== "") this.supervisor.supersede(entry);
      this.supervisor.entries.set(entry.seq, entry);
      // On disk before the next one starts: a router killed now must find this one.
      this.supervisor.changed();
      batch.push(entry);
    }
    return batch;
  }

  private async dropAll(batch: readonly Entry[]): Promise<void> {
    await Promise.all(batch.map((e) => this.supervisor.terminate(e)));
    for (const e of batch) this.supervisor.entries.delete(e.seq);
    this.supervisor.changed();
  }

  private settleBatch(batch: Entry[], config: LauncherConfig): Promise<ManagedWorker[]> {
    return Promise.all(batch.map((entry) => this.supervisor.settle(entry, config.wait_timeout * 1000)));
  }
}

function isGroups(config: LauncherConfig | LauncherGroups): config is LauncherGroups {
  return Array.isArray(config);
}
