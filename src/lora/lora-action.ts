import type { WorkerAnswer } from "../admin/broadcast.js";
import type { Control } from "../admin/control.js";
import type { LoraOperation } from "../refit/announced.js";
import type { SharedLora } from "../refit/state-store.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import { loraCalls, type LoraKind, PoolLora } from "./pool-lora.js";
import { createLoraResync, loraMessage, loraOk } from "./lora-resync.js";

export interface LoraPoolOptions {
  registry: Registry;
  control: Control;
  logger: Logger;
  /** Default time to wait for in-flight generation before the change (the refit's --drain-timeout). */
  drainTimeoutMs: number;
  /** The refit or sleep running now (null: none, or this LoRA change): a LoRA change waits for none, it is refused. */
  refitOperation: () => string | null;
  /** Runs the change as the pool's operation: hold, drain (every router on a shared store), announced (refit/announced.ts), under the refit lock with etcd. */
  operation: LoraOperation;
  weightVersion: () => string;
  /** The refit coordinator's re-check of every worker. */
  sweep: () => void;
}

/** What a LoRA change did (typed; REST and RPC each shape it once). */
export interface LoraChangeResult {
  kind: LoraKind;
  model: string | null;
  results: WorkerAnswer[];
  /** Null when every worker took it; else what went wrong (502 `upstream_failed`). */
  failure: string | null;
  /** The pool's LoRA after the change. */
  pool: ReturnType<PoolLora["describe"]>;
}

/**
 * LoRA as a control action over the pool, like a disk refit: new generation
 * requests are held, the ones in flight drain (on every router of a shared
 * store), every worker (of the named model) gets the call, and only then
 * are requests released, so no answer comes from a pool serving two
 * adapters. Its state goes with the refit state, so another router answers
 * with it ({@link LoraPool.adopt}). A worker that failed leaves
 * rotation until a replay brings it to the pool's LoRA (lora-resync.ts).
 */
export function createLoraPool(options: LoraPoolOptions) {
  const { registry, control, logger } = options;
  const state = new PoolLora();
  let running: { kind: LoraKind; startedAtMs: number } | null = null;
  const resync = createLoraResync({ registry, control, logger, state, weightVersion: options.weightVersion, sweep: options.sweep, busy: () => running !== null || options.refitOperation() !== null });

  function begin(kind: LoraKind): void {
    const other = options.refitOperation();
    if (other !== null) throw new RouterError("refit_in_progress", `a ${other} is in progress; retry the LoRA change when it ends`);
    if (running) throw new RouterError("refit_in_progress", `a LoRA ${running.kind} is in progress (started ${Math.round((Date.now() - running.startedAtMs) / 1000)} s ago); retry when it ends`);
    running = { kind, startedAtMs: Date.now() };
  }

  function targetsOf(model: string | null) {
    const live = registry.all().filter((w) => !w.dead && !w.sleeping);
    const targets = model === null ? live : live.filter((w) => w.capabilities.models.includes(model));
    if (targets.length === 0) throw new RouterError("no_healthy_workers", model === null ? "No healthy workers available in the pool" : `No healthy worker serves model '${model}'`);
    return targets;
  }

  /** Records who took the change; failed workers leave rotation when others took it. */
  function settle(kind: LoraKind, model: string | null, raw: Buffer, json: Record<string, unknown>, results: WorkerAnswer[]): string | null {
    const ok = results.filter(loraOk);
    const failed = results.filter((r) => !loraOk(r));
    if (ok.length > 0) {
      state.record(state.next(kind, model, raw.toString("utf8"), json));
      for (const r of ok) {
        const w = registry.get(r.workerUrl);
        const want = w ? state.desiredFor(w) : null;
        if (w && want) state.took(w, w.processEpoch, want);
      }
      for (const r of failed) {
        resync.failedNow(r.workerUrl);
        registry.markStale(r.workerUrl, "stale_weights", `LoRA ${kind} failed: ${loraMessage(r)}; out of rotation until the pool's LoRA is replayed to it`);
      }
    }
    if (failed.length === 0) return null;
    return ok.length === 0 ? `${loraCalls[kind]}: no worker took it; the pool's LoRA is unchanged` : `${loraCalls[kind]}: ${failed.length} of ${results.length} worker(s) failed and left rotation until they hold the pool's LoRA`;
  }

  return {
    state,
    get running(): LoraKind | null {
      return running?.kind ?? null;
    },

    /** One LoRA call to the pool: hold, drain, send to every worker (of `model`), record, release. */
    async change(kind: LoraKind, raw: Buffer, json: Record<string, unknown>, drainTimeoutMs = options.drainTimeoutMs): Promise<LoraChangeResult> {
      const model = typeof json.model === "string" && json.model !== "" ? json.model : null;
      begin(kind);
      try {
        return await options.operation(drainTimeoutMs, async () => {
          try {
            const results = await control.broadcast(loraCalls[kind], raw, targetsOf(model));
            const failure = settle(kind, model, raw, json, results);
            return { kind, model, results, failure, pool: state.describe() };
          } finally {
            // Workers that joined meanwhile are brought to the new LoRA before the held requests go (the operation's end releases them).
            running = null;
            resync.sweep();
            options.sweep();
          }
        });
      } finally {
        running = null;
      }
    },

    /** What the refit state carries of the pool's LoRA (null: never set). */
    snapshot: (): SharedLora | null => state.snapshot(registry.all()),

    /** The pool's LoRA from the state; `trustListed` false (a restart on the file, where a worker may have restarted unseen): every worker is replayed. */
    adopt(shared: SharedLora | undefined, trustListed = true): void {
      if (shared === undefined || running !== null) return;
      state.adopt(trustListed ? shared : { ...shared, workers: {} }, registry.all());
      if (!trustListed) resync.sweep();
    },
  };
}

export type LoraPool = ReturnType<typeof createLoraPool>;
