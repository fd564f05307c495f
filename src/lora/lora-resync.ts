import type { WorkerAnswer } from "../admin/broadcast.js";
import type { Control } from "../admin/control.js";
import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { loraCalls, type LoraScope, type PoolLora } from "./pool-lora.js";

/** A worker's LoRA answer succeeded: 200, and not `success: false` / `status: "error"`. */
export function loraOk(r: WorkerAnswer): boolean {
  const b = r.body as Record<string, unknown> | null;
  return r.status === 200 && !(b && typeof b === "object" && (b.success === false || b.status === "error"));
}

export function loraMessage(r: WorkerAnswer): string {
  const b = r.body as Record<string, unknown> | null;
  const m = b?.message ?? b?.detail ?? b?.error ?? b?.raw;
  return typeof m === "string" ? m : JSON.stringify(m ?? b);
}

/** Sends a scope to one worker: set_lora, then its last merge/unmerge. Returns the failed answer, or null. */
async function sendScope(control: Control, w: Worker, want: LoraScope): Promise<WorkerAnswer | null> {
  const calls = [{ path: loraCalls.set, body: want.setBody }, ...(want.mergeCall ? [{ path: loraCalls[want.mergeCall.kind], body: want.mergeCall.body }] : [])];
  for (const call of calls) {
    const [r] = await control.broadcast(call.path, call.body, [w]);
    if (!r || !loraOk(r)) return r ?? { workerUrl: w.url, status: 0, body: { error: "no answer" } };
  }
  return null;
}

/** Retries of a failed replay: 5 s, doubling to 5 min, as weight replays. */
class Backoff {
  readonly #failures = new Map<string, number>();
  readonly #nextAtMs = new Map<string, number>();

  /** Counts a failure; returns how many in a row. */
  failed(url: string): number {
    const n = (this.#failures.get(url) ?? 0) + 1;
    this.#failures.set(url, n);
    this.#nextAtMs.set(url, Date.now() + Math.min(300_000, 5_000 * 2 ** (n - 1)));
    return n;
  }

  waiting(url: string): boolean {
    return Date.now() < (this.#nextAtMs.get(url) ?? 0);
  }

  forget(url: string): void {
    this.#failures.delete(url);
    this.#nextAtMs.delete(url);
  }
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
  const backoff = new Backoff();
  /** Workers this module took out of rotation (and must not be left stale with unknown weights). */
  const ours = new Set<string>();

  /** Out of rotation as the coordinator brings it back on a probe: `stale` on the pool's weights, else `syncing` (weights first). */
  function outOfRotation(w: Worker, reason: "stale_weights" | "sync_failed", lastError: string): void {
    ours.add(w.url);
    if (w.weightVersion === options.weightVersion()) registry.markStale(w.url, reason, lastError);
    else if (w.sync !== "syncing") registry.beginSync(w.url);
  }

  function check(w: Worker): void {
    // First sight of a worker the adopted state lists (its first event may be a transition the coordinator made, before "added" reaches here).
    state.joined(w);
    // Ours, stale, weights unknown (its process went away): the coordinator leaves that to a trainer; make it `syncing`.
    if (ours.has(w.url) && w.sync === "stale" && !w.dead && w.weightVersion !== options.weightVersion()) registry.beginSync(w.url);
    if (registry.get(w.url) !== w || w.dead || w.sleeping || w.sync !== "in_sync" || state.isCurrent(w)) return;
    // Out of rotation at once, synchronously, before admission settles the change.
    if (replaying.has(w.url) || options.busy() || backoff.waiting(w.url)) {
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
    let failed: WorkerAnswer | null;
    try {
      failed = await sendScope(control, w, want);
    } finally {
      replaying.delete(w.url);
    }
    if (registry.get(w.url) !== w || w.processEpoch !== epoch) return;
    if (failed) {
      const n = backoff.failed(w.url);
      outOfRotation(w, "sync_failed", `replaying the pool's LoRA failed: ${loraMessage(failed)}`);
      logger.warn({ worker: w.url, attempt: n }, "LoRA re-sync failed: worker stays out of rotation");
      return;
    }
    backoff.forget(w.url);
    ours.delete(w.url);
    state.took(w, epoch, want);
    logger.info({ worker: w.url }, "worker took the pool's LoRA");
    // Back in rotation only on the pool's weights; otherwise the coordinator brings it there (and it is checked again).
    if (w.weightVersion === options.weightVersion() && !options.busy()) registry.weightsCurrent(w.url);
    else options.sweep();
  }

  registry.on("change", (e: RegistryEvent) => {
    if (e.type !== "removed") {
      if (e.type === "added" || e.reason !== "load") check(e.worker);
      return;
    }
    state.forget(e.worker.url);
    ours.delete(e.worker.url);
    backoff.forget(e.worker.url);
  });

  return {
    /** A failed LoRA change: the worker waits before its first replay (the same call just failed). */
    failedNow(url: string): void {
      ours.add(url);
      backoff.failed(url);
    },
    /** Re-checks every worker (after a LoRA change). */
    sweep(): void {
      for (const w of registry.all()) check(w);
    },
  };
}

export type LoraResync = ReturnType<typeof createLoraResync>;
