import type { BroadcastResult, Control } from "../admin/control.js";
import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { loraCalls, type LoraScope, type PoolLora } from "./pool-lora.js";

/** A worker's LoRA answer succeeded: 200, and not `success: false` / `status: "error"`. */
export function loraOk(r: BroadcastResult): boolean {
  const b = r.body as Record<string, unknown> | null;
  return r.status_code === 200 && !(b && typeof b === "object" && (b.success === false || b.status === "error"));
}

export function loraMessage(r: BroadcastResult): string {
  const b = r.body as Record<string, unknown> | null;
  const m = b?.message ?? b?.detail ?? b?.error ?? b?.raw;
  return typeof m === "string" ? m : JSON.stringify(m ?? b);
}

export interface LoraResyncOptions {
  registry: Registry;
  control: Control;
  logger: Logger;
  state: PoolLora;
  /** The pool's weight version: a replayed worker goes back in rotation only if it holds it. */
  weightVersion: () => string;
  /** True while a refit, sleep or LoRA change runs: a joining worker waits out of rotation (their end re-checks it). */
  busy: () => boolean;
  /** Asks the refit coordinator to re-check every worker (it brings a waiting one back in rotation). */
  sweep: () => void;
}

/**
 * Keeps a worker that does not hold the pool's LoRA out of rotation and
 * replays it (set_lora, then the last merge/unmerge) before it takes
 * traffic: a worker that joins, restarts behind its URL, wakes or failed a
 * LoRA change. It judges in the registry's `change` phase, after the refit
 * coordinator put the worker on the pool's weights, so admission (which
 * acts on `settled`) never hands out a worker with the wrong adapter.
 */
export function createLoraResync(options: LoraResyncOptions) {
  const { registry, control, logger, state } = options;
  const replaying = new Set<string>();
  const nextAtMs = new Map<string, number>();
  const failures = new Map<string, number>();
  /** Workers this module took out of rotation (and must not be left stale with unknown weights). */
  const ours = new Set<string>();

  /**
   * Out of rotation in a state the refit coordinator brings back on its next
   * look (a health probe): `stale` when the worker holds the pool's weights
   * (it answers `weights_current`, and the LoRA is checked again), else
   * `syncing` (its weights first; a stale worker of unknown weights would
   * wait for a trainer).
   */
  function outOfRotation(w: Worker, reason: "stale_weights" | "sync_failed", lastError: string): void {
    ours.add(w.url);
    if (w.weightVersion === options.weightVersion()) registry.markStale(w.url, reason, lastError);
    else if (w.sync !== "syncing") registry.beginSync(w.url);
  }

  function check(w: Worker): void {
    // Stale with weights the router no longer knows (its process went away meanwhile): the
    // coordinator leaves such a worker to a trainer, so hand it back as `syncing` (weights first).
    if (ours.has(w.url) && w.sync === "stale" && !w.dead && w.weightVersion !== options.weightVersion()) registry.beginSync(w.url);
    if (registry.get(w.url) !== w || w.dead || w.sleeping || w.sync !== "in_sync" || state.isCurrent(w)) return;
    // Out of rotation at once, synchronously, before admission settles the change.
    if (replaying.has(w.url) || options.busy() || Date.now() < (nextAtMs.get(w.url) ?? 0)) {
      // Keeps the error that put it here (a failed change or replay) when there is one.
      outOfRotation(w, "stale_weights", w.lastError ?? "does not hold the pool's LoRA adapter: re-synced before it takes traffic");
      return;
    }
    const want = state.desiredFor(w)!;
    registry.beginSync(w.url, true);
    replay(w, want).catch((err: unknown) => logger.error({ err, worker: w.url }, "LoRA re-sync failed unexpectedly"));
  }

  async function replay(w: Worker, want: LoraScope): Promise<void> {
    replaying.add(w.url);
    const epoch = w.processEpoch;
    logger.info({ worker: w.url, lora: want.nickname, merged: want.merged }, "re-syncing worker: replaying the pool's LoRA");
    let failed: BroadcastResult | null = null;
    try {
      const calls = [{ path: loraCalls.set, body: want.setBody }, ...(want.mergeCall ? [{ path: loraCalls[want.mergeCall.kind], body: want.mergeCall.body }] : [])];
      for (const call of calls) {
        const [r] = await control.broadcast(call.path, call.body, [w]);
        if (!r || !loraOk(r)) {
          failed = r ?? { worker_url: w.url, status_code: 0, body: { error: "no answer" } };
          break;
        }
      }
    } finally {
      replaying.delete(w.url);
    }
    if (registry.get(w.url) !== w || w.processEpoch !== epoch) return;
    if (failed) {
      const n = (failures.get(w.url) ?? 0) + 1;
      failures.set(w.url, n);
      nextAtMs.set(w.url, Date.now() + Math.min(300_000, 5_000 * 2 ** (n - 1)));
      outOfRotation(w, "sync_failed", `replaying the pool's LoRA failed: ${loraMessage(failed)}`);
      logger.warn({ worker: w.url, attempt: n }, "LoRA re-sync failed: worker stays out of rotation");
      return;
    }
    failures.delete(w.url);
    nextAtMs.delete(w.url);
    ours.delete(w.url);
    state.took(w, epoch, want);
    logger.info({ worker: w.url }, "worker took the pool's LoRA");
    // Back in rotation only on the pool's weights; otherwise the coordinator brings it there (and it is checked again).
    if (w.weightVersion === options.weightVersion() && !options.busy()) registry.weightsCurrent(w.url);
    else options.sweep();
  }

  registry.on("change", (e: RegistryEvent) => {
    if (e.type === "removed") {
      state.forget(e.worker.url);
      ours.delete(e.worker.url);
      failures.delete(e.worker.url);
      nextAtMs.delete(e.worker.url);
      return;
    }
    if (e.type === "updated" && e.reason === "load") return;
    check(e.worker);
  });

  return {
    /** A failed LoRA change: the worker waits before its first replay (the same call just failed). */
    failedNow(url: string): void {
      ours.add(url);
      failures.set(url, 1);
      nextAtMs.set(url, Date.now() + 5_000);
    },
    /** Re-checks every worker (after a LoRA change). */
    sweep(): void {
      for (const w of registry.all()) check(w);
    },
  };
}

export type LoraResync = ReturnType<typeof createLoraResync>;
