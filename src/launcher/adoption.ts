import type { Logger } from "../log.js";
import type { Backend } from "./backend.js";
import type { LauncherConfig } from "./config.js";
import { placementOf, settingsDigest, type ManagedRecord } from "./managed-record.js";
import type { LauncherBackend } from "./registry.js";
import type { WorkerRun } from "./run.js";
import type { Entry, Supervisor } from "./supervisor.js";

/** What restart recovery found for one launcher group. */
export interface GroupRecovery {
  /** Workers still running, taken over (not yet in the supervisor's entries, not yet settled). */
  readonly adopted: Entry[];
  /** Recorded workers that are gone: started again, under their names. */
  readonly gone: ManagedRecord[];
}

/**
 * Restart recovery: the recorded workers of each group, adopted where their
 * handle still runs and answers as the same worker, else listed as gone.
 * A record whose group is in no config (settings changed, or a group
 * launched at run time through LaunchWorkers) is left alone and logged:
 * without its settings the launcher could not restart it, and stopping a
 * worker an operator may still use is not restart recovery's call.
 */
export async function recoverGroups(
  groups: readonly LauncherConfig[],
  saved: readonly ManagedRecord[],
  parts: { supervisor: Supervisor; backendFor: (name: LauncherBackend) => Backend; logger: Logger },
): Promise<GroupRecovery[]> {
  const unclaimed = new Set(saved);
  const recovered: GroupRecovery[] = [];
  for (const config of groups) {
    const settings = settingsDigest(config);
    const mine = saved.filter((r) => unclaimed.has(r) && r.settings === settings && r.backend === config.backend).sort((a, b) => a.name.localeCompare(b.name));
    for (const r of mine) unclaimed.delete(r);
    const backend = parts.backendFor(config.backend);
    const found = await Promise.all(mine.map((r) => adoptOne(config, backend, r, parts)));
    recovered.push({ adopted: found.filter((e): e is Entry => e !== null), gone: mine.filter((_, i) => found[i] === null) });
  }
  for (const r of unclaimed) {
    parts.logger.warn(
      { worker: r.url, name: r.name, backend: r.backend, handle: r.handle },
      "state file: a recorded managed worker belongs to no group of the launcher config (its settings changed?); not adopted, and not stopped: stop it by hand if it still runs",
    );
  }
  return recovered;
}

async function adoptOne(config: LauncherConfig, backend: Backend, record: ManagedRecord, parts: { supervisor: Supervisor; logger: Logger }): Promise<Entry | null> {
  const placement = placementOf(record);
  let run: WorkerRun | null;
  try {
    run = await backend.adopt(config, placement, record.handle);
  } catch (err) {
    // Cannot tell whether it runs (squeue failed): starting a second copy could double-book its GPUs, but
    // leaving the slot empty loses a worker; the operator is told either way.
    parts.logger.error({ worker: record.url, name: record.name, err }, "state file: could not check a recorded managed worker; starting it again");
    return null;
  }
  if (run === null) {
    parts.logger.info({ worker: record.url, name: record.name, handle: record.handle }, "state file: a recorded managed worker is gone; starting it again");
    return null;
  }
  const entry = parts.supervisor.newEntry(config, backend, placement);
  Object.assign(entry.info, { name: record.name, restarts: record.restarts });
  parts.supervisor.adoptRun(entry, run);
  return entry;
}
