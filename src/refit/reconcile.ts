import type { Broadcast } from "../admin/broadcast.js";
import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { RegistryReason } from "../registry/transitions.js";
import type { Worker } from "../registry/worker.js";
import type { Operations } from "./operations.js";
import { createReplayer } from "./replay.js";
import type { RefitState } from "./state.js";

export interface ReconcilerOptions {
  registry: Registry;
  state: RefitState;
  operations: Operations;
  broadcast: Broadcast;
  logger: Logger;
}

export interface Reconciler {
  /** Brings one worker to the pool's weights, or keeps it out of rotation. */
  reconcile(w: Worker): void;
  /** Re-checks every worker (after a refit, and on each health round for backoff retries). */
  sweep(): void;
  /** A worker just failed to load the pool's weights: its first replay waits a while (the same load just failed). */
  failedToLoad(url: string): void;
}

// "added" is not here: a new worker's process fingerprint (needed to trust a
// restored state) is known only after the capability probe ("capabilities").
// health_probe_failed / request_failed: a refused connection makes the
// worker's weights unknown (a restart would bring base weights back).
const reconcileOn = new Set<RegistryReason>(["capabilities", "health_probe_ok", "health_probe_failed", "request_failed", "recovered", "awake", "found_awake", "process_changed", "request_ok"]);

/**
 * Keeps every worker on the pool's weights: a worker that failed to load,
 * joined later, came back from the dead or restarted behind its URL is out
 * of rotation (`syncing`/`stale`) until it holds the current version. The
 * last disk refit is replayed to it (replay.ts); a tensor refit, which the
 * router cannot replay, leaves it for the trainer.
 */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { registry, state, operations, broadcast, logger } = options;
  const replayer = createReplayer({ registry, state, broadcast, logger });

  function reconcile(w: Worker): void {
    const op = operations.current;
    if (registry.get(w.url) !== w || w.dead || op?.kind === "disk" || op?.kind === "tensor") return;
    const { version, last } = state.weightsOf(w);
    if (w.weightVersion === version) {
      if (w.sync !== "in_sync") registry.weightsCurrent(w.url);
      return;
    }
    if (last === null) {
      // No refit ever happened: every worker holds the base weights, except
      // one marked stale (it took tensors of a refit that was not committed).
      if (w.sync === "stale") return;
      registry.weightsLoaded(w.url, version);
      return;
    }
    const mem = state.remembered[w.url];
    if (mem && mem.version === version && mem.fingerprint !== null && mem.fingerprint === w.capabilities.instanceFingerprint) {
      // Same process that held the current version before the router restarted.
      registry.weightsLoaded(w.url, version, "weights_restored");
      return;
    }
    if (last.kind === "tensor") {
      if (w.sync !== "stale") registry.markStale(w.url, "stale_weights", `holds weights ${w.weightVersion ?? "unknown"}, pool is on ${version} from a tensor refit the router cannot replay: update it through /refit/begin, /workers/{id}/update_weights_from_tensor, /refit/commit`);
      return;
    }
    if (w.sleeping) {
      // A sleeping worker cannot load weights; it is re-synced when it wakes.
      if (w.sync === "in_sync") registry.markStale(w.url, "stale_weights", `asleep while the pool moved to ${version}`);
      return;
    }
    replayer.replay(w, last.body).catch((err: unknown) => logger.error({ err, worker: w.url }, "re-sync failed unexpectedly"));
  }

  function onChange(e: RegistryEvent): void {
    if (e.type === "removed" || (e.type === "updated" && e.reason === "process_changed")) operations.forget(e.worker.url);
    if (e.type === "removed") {
      replayer.forget(e.worker.url);
      return;
    }
    const w = e.worker;
    const { version, last } = state.weightsOf(w);
    if (e.type === "added") {
      // Its model is not known yet: any refit at all means it must be checked.
      if (last === null && state.models.size === 0) reconcile(w);
      else registry.beginSync(w.url);
      return;
    }
    if (!reconcileOn.has(e.reason) || w.dead) return;
    if (w.weightVersion !== version || w.sync !== "in_sync") {
      // Out of rotation at once (synchronously, before any request can pick
      // it), then brought up to date.
      if (w.sync === "in_sync" && last !== null) registry.beginSync(w.url);
      queueMicrotask(() => reconcile(w));
    }
  }
  registry.on("change", onChange);

  return {
    reconcile,
    sweep() {
      for (const w of registry.all()) reconcile(w);
    },
    failedToLoad: replayer.failedToLoad,
  };
}
