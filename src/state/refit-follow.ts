import type { Etcd3 } from "etcd3";
import type { Logger } from "../log.js";
import type { PersistedState } from "../refit/state-store.js";
import type { EtcdRefitStore } from "./etcd-refit-store.js";

/** What following another router's refits needs from this one. */
export interface RefitFollower {
  /** Holds new generation requests here (admission.hold); the returned function releases them. */
  hold(reason: string): () => void;
  /** Takes the committed state (refit coordinator's adopt). */
  adopt(state: PersistedState): void;
  /** The worker's process as this router identified it (model-card fingerprint), or null when not yet. */
  fingerprintOf(url: string): string | null | undefined;
  /** Records that a worker holds a version (registry.weightsLoaded). */
  loaded(url: string, version: string): void;
}

/**
 * Workers the committing router saw load the version are in rotation here
 * at once: that router broadcast the weights and read each answer a few ms
 * ago. Only a worker whose process both routers identified differently
 * (restarted in between) is left to the coordinator (re-sync or stale).
 */
function trustCommitted(state: PersistedState, follower: RefitFollower): void {
  for (const [url, seen] of Object.entries(state.workers ?? {})) {
    const here = follower.fingerprintOf(url);
    if (here === undefined || seen.version !== state.version) continue;
    if (here !== null && seen.fingerprint !== null && here !== seen.fingerprint) continue;
    follower.loaded(url, state.version);
  }
}

/**
 * Follows refits run through other routers on the same store, from a watch
 * on `PREFIX/refit` (resumed from the revision read at startup): while the
 * state says a refit is in progress, this router holds new generation
 * requests (so none is sent to a worker loading weights), and when the
 * refit is committed it takes the new version and releases them: its
 * answers then carry the new X-Weight-Version. Requests already in flight
 * here when the other router starts are not waited for (the distributed
 * drain of docs/multi-router.md is still a plan).
 */
export async function followRefits(client: Etcd3, key: string, fromRevision: string, store: EtcdRefitStore, follower: RefitFollower, logger: Logger): Promise<() => Promise<void>> {
  let unhold: (() => void) | null = null;
  const watcher = await client.watch().key(key).startRevision(String(BigInt(fromRevision) + 1n)).create();
  watcher.on("put", (kv) => {
    let state: PersistedState & { by?: string };
    try {
      state = JSON.parse(kv.value.toString("utf8")) as PersistedState & { by?: string };
    } catch {
      return;
    }
    if (state.by === store.self) return;
    store.seen(state, kv.mod_revision);
    if (state.inProgress !== null) {
      if (unhold === null) {
        unhold = follower.hold("a refit through another router");
        logger.info("state store: a refit started through another router; holding new generation requests");
      }
      return;
    }
    trustCommitted(state, follower);
    follower.adopt(state);
    logger.info({ version: state.version }, "state store: weights committed through another router");
    unhold?.();
    unhold = null;
  });
  watcher.on("error", (err) => logger.error({ err }, "state store: refit watch failed; the client reconnects and resumes from the last revision"));
  // Fail closed: without etcd this router cannot see another router's refit,
  // so it holds generation (answered 503 queue_timeout, naming this reason,
  // after --queue-timeout) until the watch is back and has caught up.
  let lost: (() => void) | null = null;
  watcher.on("disconnected", (err) => {
    if (lost !== null) return;
    lost = follower.hold("the state store (etcd) being unreachable");
    logger.error({ err }, "state store: etcd unreachable; holding generation requests until it is back");
  });
  watcher.on("connected", () => {
    if (lost === null) return;
    lost();
    lost = null;
    logger.info("state store: etcd reachable again; generation requests flow");
  });
  return async () => {
    await watcher.cancel();
    unhold?.();
    lost?.();
  };
}
