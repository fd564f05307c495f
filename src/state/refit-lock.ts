import { EtcdLockFailedError, type Etcd3, type Lock } from "etcd3";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { RefitCoordinator } from "../refit/coordinator.js";

/** Lease of the lock: a router that dies mid-refit frees it this long after its last keep-alive. */
const LOCK_TTL_S = 10;
/** How often an open two-phase refit is checked for having ended by itself (its own timeout). */
const OPEN_CHECK_MS = 1_000;

/** Who holds the refit lock, as `/health` and GetRouterStatus show it. */
export interface RefitLockView {
  /** True while this router runs a refit or sleep/wake under the cluster-wide lock. */
  held(): boolean;
}

/**
 * Refits and sleep/wake across routers, one at a time: each takes
 * `PREFIX/refit/lock` (etcd3's Lock: a key created only if absent, under a
 * lease kept alive while this router lives) before the coordinator runs it,
 * so a second one through another router is a 409 refit_in_progress, like a
 * second one through the same router. A two-phase refit holds the lock from
 * begin to commit or abort (or its own timeout). Decorates the coordinator
 * (as audit/audited.ts does), so the coordinator itself is unchanged.
 */
export function lockedRefit(refit: RefitCoordinator, client: Etcd3, key: string, logger: Logger): RefitCoordinator & RefitLockView {
  let lock: Lock | null = null;
  let watchOpen: NodeJS.Timeout | null = null;
  /** False when this router already holds it: its own coordinator then answers the 409, and the lock stays with the running operation. */
  const acquire = async (): Promise<boolean> => {
    if (lock !== null) return false;
    const l = client.lock(key).ttl(LOCK_TTL_S);
    try {
      await l.acquire();
    } catch (err) {
      if (!(err instanceof EtcdLockFailedError)) throw new RouterError("state_store_unavailable", `could not take the refit lock in etcd: ${(err as Error).message}`, { cause: err });
      throw new RouterError("refit_in_progress", `a refit or sleep/wake is running through another router (etcd lock ${key}); retry when it ends`);
    }
    lock = l;
    return true;
  };
  const release = (): void => {
    if (watchOpen) clearInterval(watchOpen);
    watchOpen = null;
    const l = lock;
    lock = null;
    l?.release().catch((err: unknown) => logger.error({ err, key }, "could not release the refit lock; it expires with this router's lease"));
  };
  /** Runs one whole operation under the lock. */
  const locked = async <T>(run: () => Promise<T>): Promise<T> => {
    const mine = await acquire();
    try {
      return await run();
    } finally {
      if (mine) release();
    }
  };
  return {
    get version() {
      return refit.version;
    },
    status: () => refit.status(),
    held: () => lock !== null,
    updateWeightsFromDisk: (command) => locked(() => refit.updateWeightsFromDisk(command)),
    releaseMemory: (command) => locked(() => refit.releaseMemory(command)),
    resumeMemory: (command) => locked(() => refit.resumeMemory(command)),
    loraChange: (drainTimeoutMs, run) => locked(() => refit.loraChange(drainTimeoutMs, run)),
    shareLora: (snapshot) => refit.shareLora(snapshot),
    updateTensors: (workerUrl, send) => refit.updateTensors(workerUrl, send),
    adopt: (saved) => refit.adopt(saved),
    sweep: () => refit.sweep(),
    async begin(command) {
      const mine = await acquire();
      try {
        const opened = await refit.begin(command);
        // The coordinator aborts a refit left open past its timeout by itself: the lock follows.
        watchOpen = setInterval(() => refit.status().operation === null && release(), OPEN_CHECK_MS);
        watchOpen.unref();
        return opened;
      } catch (err) {
        if (mine) release();
        throw err;
      }
    },
    commit(command) {
      const r = refit.commit(command);
      release();
      return r;
    },
    abort(why) {
      const r = refit.abort(why);
      release();
      return r;
    },
  };
}
