import type { Etcd3 } from "etcd3";
import type { Logger } from "../log.js";
import { afterInterruptedRefit } from "../refit/state.js";
import type { PersistedState } from "../refit/state-store.js";
import type { EtcdRefitStore } from "./etcd-refit-store.js";
import { refitIdOf } from "./peer-drain.js";

/** The refit lock's lease, as refit-lock.ts takes it. */
const LOCK_TTL_S = 10;

type Stored = PersistedState & { by?: string };

/**
 * Settles a refit whose router died (its presence lease expired), or left
 * it in progress without the lock (its last write lost), with the
 * restart rule a restarted router applies (refit/state.ts
 * afterInterruptedRefit: a disk refit rolled forward to its target, every
 * worker re-synced to it; a tensor refit ends with no worker trusted until
 * a trainer updates it). Under the refit lock, so one router does it, and
 * only while the state in etcd is still that refit (a compare-and-swap on
 * its revision): a router that lost the race, or a dead router's lock still
 * held (it is not dead, only slow), leaves it alone. Returns the settled
 * state, already written, or null when this router did not settle it.
 */
export async function settleDeadRefit(client: Etcd3, key: string, refitId: string, store: EtcdRefitStore, logger: Logger): Promise<PersistedState | null> {
  const lock = client.lock(`${key}/lock`).ttl(LOCK_TTL_S);
  try {
    await lock.acquire();
  } catch {
    return null;
  }
  try {
    const kv = (await client.get(key).exec()).kvs[0];
    if (!kv) return null;
    const { by, ...saved } = JSON.parse(kv.value.toString("utf8")) as Stored;
    if (by === undefined || saved.inProgress === null || refitIdOf(by, saved.inProgress) !== refitId) return null;
    const settled = afterInterruptedRefit(saved);
    const res = await client.if(key, "Mod", "==", kv.mod_revision).then(client.put(key).value(JSON.stringify({ ...settled, by: store.self }))).commit();
    if (!res.succeeded) return null;
    store.seen(settled, res.header.revision);
    logger.warn({ refit: refitId, kind: saved.inProgress.kind, version: settled.version }, "state store: the router running a refit died (or lost its last write of the refit state); the refit was settled as after a restart (disk: rolled forward and every worker re-synced; tensor: no worker trusted until a trainer updates it)");
    return settled;
  } finally {
    await lock.release().catch((err: unknown) => logger.warn({ err }, "state store: could not release the refit lock after settling a dead router's refit; it expires with its lease"));
  }
}
