import { performance } from "node:perf_hooks";
import type { Etcd3, Lease } from "etcd3";
import type { Logger } from "../log.js";
import { PresenceProof, type PresenceListener } from "./presence-proof.js";

/** Lease of a router's presence: a router that dies is forgotten this long after its last keep-alive. */
const PRESENCE_TTL_S = 10;
/** Wait before asking for a new lease after one was lost (etcd away). */
const REGRANT_MS = 1_000;

/**
 * This router's presence in the shared store: `PREFIX/routers/<id>` under a
 * lease kept alive while the router lives, so the others know who must
 * drain before a refit loads weights (peer-drain.ts) and who died mid-refit
 * (refit-recover.ts). Keys put through {@link put} go with the lease: a dead
 * router's drain reports vanish with it.
 */
export interface RouterPresence {
  /** This router process's id (the `by` of its refit writes). */
  readonly id: string;
  /** Puts `key` under this router's lease. */
  put(key: string, value: string): Promise<void>;
  /** Ids of the routers present now. */
  live(): Promise<string[]>;
  /** Told when this router may no longer be counted by the others (its lease lapsing) and when it is again (presence-proof.ts). */
  listen(listener: PresenceListener): void;
  /** Revokes the lease: this router's keys go at once (a graceful stop). */
  stop(): Promise<void>;
}

export async function announceRouter(client: Etcd3, prefix: string, id: string, logger: Logger): Promise<RouterPresence> {
  const dir = `${prefix}/routers/`;
  const value = JSON.stringify({ id, pid: process.pid, startedAtMs: Date.now() });
  let stopped = false;
  let lease: Lease;
  const proof = new PresenceProof(PRESENCE_TTL_S * 1000);
  let retrying: NodeJS.Timeout | null = null;
  // One retry at a time: a failed grant is reported both by its lease's `lost` and by its put.
  const retry = (): void => {
    if (stopped || retrying !== null) return;
    retrying = setTimeout(() => {
      retrying = null;
      if (!stopped) grant().catch((err: unknown) => (logger.warn({ err }, "state store: could not announce this router again; retrying in 1 s"), retry()));
    }, REGRANT_MS);
    retrying.unref();
  };
  const grant = async (): Promise<void> => {
    const askedAt = performance.now();
    const l = client.lease(PRESENCE_TTL_S);
    lease = l;
    l.on("lost", (err) => {
      if (stopped || lease !== l) return;
      proof.lost();
      // etcd was away longer than the lease: the others count this router gone; come back as soon as etcd answers.
      logger.error({ err }, "state store: this router's presence lease was lost; announcing it again");
      retry();
    });
    try {
      await l.put(dir + id).value(value).exec();
    } catch (err) {
      // A lease without the presence key proves nothing: let it expire, ask for another.
      l.release();
      throw err;
    }
    // Counted by the others only from here: the presence key is in etcd.
    if (!stopped && lease === l) proof.granted(l, askedAt);
  };
  await grant();
  return {
    id,
    put: async (key, v) => {
      await lease.put(key).value(v).exec();
    },
    listen: (listener) => proof.listen(listener),
    live: async () => (await client.getAll().prefix(dir).keys()).map((k) => k.slice(dir.length)),
    async stop() {
      stopped = true;
      proof.stop();
      if (retrying !== null) clearTimeout(retrying);
      await lease.revoke().catch((err: unknown) => logger.warn({ err }, "state store: could not revoke this router's presence lease; it expires by itself"));
    },
  };
}
