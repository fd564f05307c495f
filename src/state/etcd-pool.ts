import { randomUUID } from "node:crypto";
import type { Etcd3, IKeyValue } from "etcd3";
import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { workerIdOf } from "../registry/worker-url.js";
import type { PoolRecord, RecordedWorker } from "./pool-record.js";
import { applyRecorded, type PoolApplier } from "./etcd-pool-apply.js";

/** One worker's key value: its record, and which router process wrote it (to skip our own echoes). */
interface StoredWorker extends RecordedWorker {
  by: string;
}

/** Registry reasons that change a worker's record (as the file's recorder: not load or probe events). */
const recordedReasons = new Set(["quarantined", "recovered", "draining", "undrained", "sleeping", "awake", "process_changed"]);

function recordOf(w: Worker): RecordedWorker {
  return { url: w.url, quarantined: w.dead && w.deadReason === "manual", draining: w.draining, sleeping: w.sleeping };
}

const same = (a: RecordedWorker | undefined, b: RecordedWorker): boolean =>
  a !== undefined && a.quarantined === b.quarantined && a.draining === b.draining && a.sleeping === b.sleeping;

/** The worker set in etcd as read at startup, and the revision to watch from. */
export async function loadEtcdPool(client: Etcd3, prefix: string): Promise<{ record: PoolRecord; revision: string }> {
  const res = await client.getAll().prefix(`${prefix}/workers/`).exec();
  const workers: RecordedWorker[] = [];
  for (const kv of res.kvs) {
    const v = parse(kv);
    if (v) workers.push({ url: v.url, quarantined: v.quarantined, draining: v.draining, sleeping: v.sleeping });
  }
  return { record: { workers }, revision: res.header.revision };
}

function parse(kv: IKeyValue): StoredWorker | null {
  try {
    const v = JSON.parse(kv.value.toString("utf8")) as StoredWorker;
    return typeof v.url === "string" ? v : null;
  } catch {
    return null;
  }
}

/**
 * Shares the worker set through `PREFIX/workers/<worker_id>`: this router's
 * registrations, removals and operator states are written there, and the
 * other routers' are applied here from a watch (started at the revision the
 * startup read saw, so nothing between the two is missed). The hot path
 * never reads etcd: dispatch reads the registry, which this keeps in step.
 * `mirror` is what etcd holds as far as this router knows; a registry change
 * is written only when it differs, so applying another router's change does
 * not write it back. Launcher-managed workers stay local (their launcher
 * owns them). `quietly` runs a registry change this router makes because
 * another router already made it (a sleep's workers, from the refit
 * state), so it is not written back either: a late echo could undo a wake
 * made meanwhile.
 */
export async function shareEtcdPool(client: Etcd3, prefix: string, loaded: { record: PoolRecord; revision: string }, registry: Registry, applier: PoolApplier, logger: Logger): Promise<{ stop(): Promise<void>; quietly(run: () => void): void }> {
  const self = randomUUID();
  const mirror = new Map<string, RecordedWorker>();
  /** Keys with a write of ours not yet answered: a delete seen meanwhile is our own older one. */
  const pending = new Map<string, number>();
  let applying = false;
  let queue: Promise<void> = Promise.resolve();
  const keyOf = (url: string): string => `${prefix}/workers/${workerIdOf(url)}`;
  for (const w of loaded.record.workers) mirror.set(w.url, w);

  const send = (url: string, op: () => Promise<unknown>): void => {
    const key = keyOf(url);
    pending.set(key, (pending.get(key) ?? 0) + 1);
    queue = queue
      .then(async () => {
        await op();
      })
      .catch((err: unknown) => logger.error({ err, worker: url }, "state store: could not write a worker to etcd; the other routers do not see this change"))
      .finally(() => {
        const n = (pending.get(key) ?? 1) - 1;
        if (n === 0) pending.delete(key);
        else pending.set(key, n);
      });
  };
  const onChange = (e: RegistryEvent): void => {
    if (applying || e.worker.managed) return;
    if (e.type === "removed") {
      if (!mirror.delete(e.worker.url)) return;
      send(e.worker.url, () => client.delete().key(keyOf(e.worker.url)).exec());
      return;
    }
    if (e.type === "updated" && !recordedReasons.has(e.reason)) return;
    const rec = recordOf(e.worker);
    if (same(mirror.get(rec.url), rec)) return;
    mirror.set(rec.url, rec);
    const value = JSON.stringify({ ...rec, by: self } satisfies StoredWorker);
    send(rec.url, () => client.put(keyOf(rec.url)).value(value).exec());
  };
  // Registered before the restore finished (the command line's workers) are written now.
  for (const w of registry.all()) onChange({ type: "added", worker: w } as RegistryEvent);
  registry.on("change", onChange);

  const apply = (run: () => void): void => {
    applying = true;
    try {
      run();
    } finally {
      applying = false;
    }
  };
  const watcher = await client.watch().prefix(`${prefix}/workers/`).startRevision(String(BigInt(loaded.revision) + 1n)).create();
  watcher.on("put", (kv) => {
    const v = parse(kv);
    if (!v || v.by === self) return;
    const rec: RecordedWorker = { url: v.url, quarantined: v.quarantined, draining: v.draining, sleeping: v.sleeping };
    mirror.set(rec.url, rec);
    applyRecorded(rec, applier, apply, () => mirror.get(rec.url), logger);
  });
  watcher.on("delete", (kv) => {
    const key = kv.key.toString("utf8");
    if (pending.has(key)) return;
    const url = [...mirror.keys()].find((u) => keyOf(u) === key);
    if (url === undefined) return;
    mirror.delete(url);
    apply(() => applier.remove(url));
    logger.info({ worker: url }, "state store: worker removed through another router");
  });
  watcher.on("error", (err) => logger.error({ err }, "state store: worker watch failed; the client reconnects and resumes from the last revision"));
  return {
    async stop() {
      registry.off("change", onChange);
      await watcher.cancel();
      await queue;
    },
    quietly: apply,
  };
}
