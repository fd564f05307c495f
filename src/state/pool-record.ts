import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { PoolStore } from "./state-file.js";

/**
 * What a restarted router needs to serve the same pool: every worker an
 * operator or trainer registered, and the states only they change
 * (quarantined, draining, asleep). RL frameworks register their workers
 * once, at start: a router that forgot them would answer 503 until the run
 * failed. Weights are not here: the refit coordinator keeps each worker's
 * version in the same file and re-checks it when the worker comes back.
 * Launcher-managed workers are the launcher's to restore (it knows their
 * processes), so they are left out.
 */
export interface PoolRecord {
  workers: RecordedWorker[];
}

export interface RecordedWorker {
  url: string;
  /** PUT is_dead: true. */
  quarantined: boolean;
  draining: boolean;
  /** Put to sleep through the router: still asleep until someone wakes it (a real worker's /health does not say). */
  sleeping: boolean;
}

/** Registry reasons that change what is recorded; load and probe events (every request, every round) do not. */
const recordedReasons = new Set(["quarantined", "recovered", "draining", "undrained", "sleeping", "awake", "process_changed"]);

function recordOf(registry: Registry): PoolRecord {
  const workers: RecordedWorker[] = [];
  for (const w of registry.all()) {
    if (w.managed) continue;
    workers.push({ url: w.url, quarantined: w.dead && w.deadReason === "manual", draining: w.draining, sleeping: w.sleeping });
  }
  return { workers };
}

/**
 * Keeps the pool's record in the state file as the registry changes. Writes
 * only when the record itself changed (one small synchronous write per
 * registration or operator action).
 */
export function recordPool(registry: Registry, store: PoolStore, logger: Logger): () => void {
  let last = JSON.stringify(store.load() ?? { workers: [] });
  const sync = (): void => {
    const record = recordOf(registry);
    const text = JSON.stringify(record);
    if (text === last) return;
    try {
      store.save(record);
      last = text;
    } catch (err) {
      // A full disk must not take the router down; the record is one write behind.
      logger.error({ err, path: store.path }, "could not write the worker set to the state file");
    }
  };
  const onChange = (e: RegistryEvent): void => {
    if (e.type === "updated" && !recordedReasons.has(e.reason)) return;
    sync();
  };
  // What changed before recording started (registrations during the restore) is written now.
  sync();
  registry.on("change", onChange);
  return () => registry.off("change", onChange);
}

/** What restoring one recorded worker needs: registration and the operator's states. */
export interface PoolRestorer {
  addWorker(url: string): Promise<{ worker: Worker }>;
  quarantine(url: string): void;
  drain(url: string): void;
  markSleeping(url: string): void;
}

/**
 * Registers the recorded workers again, at once, with the states an operator
 * or trainer gave them. Their weights are checked by the refit coordinator
 * as each comes back (same process and version: in rotation; otherwise
 * re-synced or kept out).
 */
export async function restorePool(record: PoolRecord, restorer: PoolRestorer, logger: Logger): Promise<void> {
  await Promise.all(
    record.workers.map(async (r) => {
      try {
        await restorer.addWorker(r.url);
        if (r.quarantined) restorer.quarantine(r.url);
        if (r.draining) restorer.drain(r.url);
        if (r.sleeping) restorer.markSleeping(r.url);
      } catch (err) {
        logger.warn({ worker: r.url, err }, "state file: could not register a recorded worker again");
      }
    }),
  );
  if (record.workers.length > 0) logger.info({ workers: record.workers.length }, "state file: registered the recorded workers again");
}
