import { answerMessage, answerSucceeded, type Broadcast } from "../admin/broadcast.js";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { RefitState } from "./state.js";

export interface ReplayOptions {
  registry: Registry;
  state: RefitState;
  broadcast: Broadcast;
  logger: Logger;
}

export interface Replayer {
  /** Replays the last disk refit's body to `w` (once at a time per worker, not before its backoff ends). */
  replay(w: Worker, body: string): Promise<void>;
  /** A worker just failed to load the pool's weights: its first replay waits a while (the same load just failed). */
  failedToLoad(url: string): void;
  forget(url: string): void;
}

const firstRetryMs = 5_000;
const maxRetryMs = 300_000;

/** Brings one worker to the pool's disk-refit weights by replaying the refit, with exponential backoff between failures. */
export function createReplayer({ registry, state, broadcast, logger }: ReplayOptions): Replayer {
  const syncing = new Set<string>();
  const nextSyncAtMs = new Map<string, number>();
  const syncFailures = new Map<string, number>();

  function failed(w: Worker, target: string, why: string): void {
    const n = (syncFailures.get(w.url) ?? 0) + 1;
    syncFailures.set(w.url, n);
    nextSyncAtMs.set(w.url, Date.now() + Math.min(maxRetryMs, firstRetryMs * 2 ** (n - 1)));
    registry.markStale(w.url, "sync_failed", `replaying weights ${target} failed: ${why}`);
    logger.warn({ worker: w.url, version: target, attempt: n }, "re-sync failed: worker stays out of rotation");
  }

  return {
    async replay(w, body) {
      if (syncing.has(w.url)) return;
      if (Date.now() < (nextSyncAtMs.get(w.url) ?? 0)) {
        if (w.sync === "in_sync") registry.markStale(w.url, "stale_weights");
        return;
      }
      syncing.add(w.url);
      const target = state.weightsOf(w).version;
      registry.beginSync(w.url, true);
      logger.info({ worker: w.url, version: target }, "re-syncing worker: replaying the last update_weights_from_disk");
      try {
        const [result] = await broadcast("/update_weights_from_disk", body, [w]);
        if (registry.get(w.url) !== w) return;
        if (!result || !answerSucceeded(result) || target !== state.weightsOf(w).version) {
          failed(w, target, result ? answerMessage(result) : "no answer");
          return;
        }
        syncFailures.delete(w.url);
        nextSyncAtMs.delete(w.url);
        registry.weightsLoaded(w.url, target);
        state.persist();
        logger.info({ worker: w.url, version: target }, "worker re-synced: back in rotation");
      } finally {
        syncing.delete(w.url);
      }
    },
    failedToLoad(url) {
      syncFailures.set(url, 1);
      nextSyncAtMs.set(url, Date.now() + firstRetryMs);
    },
    forget(url) {
      syncFailures.delete(url);
      nextSyncAtMs.delete(url);
    },
  };
}
