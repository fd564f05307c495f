import type { Broadcast } from "../admin/broadcast.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Operations } from "./operations.js";
import type { Reconciler } from "./reconcile.js";
import type { RefitState } from "./state.js";
import { drainScope, modelOf, targetModel } from "./targets.js";
import type { MemoryCommand, MemoryResult } from "./types.js";

export interface MemoryOptions {
  registry: Registry;
  operations: Operations;
  reconciler: Reconciler;
  /** Where a sleep is announced (in progress, then ended with the workers asleep): other routers on a shared store hold and drain for it. */
  state: RefitState;
  broadcast: Broadcast;
  drainTimeoutMs: number;
}

/** Sleep (release GPU memory) and wake of the pool, or of one model's workers, between training phases. */
export function createMemory(options: MemoryOptions) {
  const { registry, operations, reconciler, broadcast, state } = options;

  /**
   * Every live worker is already `state` (and there is one): the call has
   * nothing to do. Dead workers do not count; with none alive the pool is
   * not asleep on purpose, it is down (503 as before).
   */
  function alreadyAll(state: "asleep" | "awake", model: string | null): boolean {
    const live = registry.all().filter((w) => (!w.dead || w.sleeping) && (model === null || modelOf(w) === model));
    return live.length > 0 && live.every((w) => w.sleeping === (state === "asleep"));
  }

  /**
   * Drains, then puts every awake worker to sleep (those that answered 200
   * are asleep now). A pool already asleep is left alone: a training loop
   * that sleeps twice is not an error. The sleep is written to the state
   * store as in progress before the drain, like a refit, so that on a shared
   * store every other router holds new generation and drains its own
   * requests before the release reaches a worker (operations.drain waits for
   * their reports); the end is written with the workers now asleep, which
   * they take out of rotation before releasing what they held.
   */
  async function releaseMemory(command: MemoryCommand): Promise<MemoryResult> {
    const model = targetModel(registry, command.model ?? null, false);
    if (operations.current === null && alreadyAll("asleep", model)) return { results: [], changed: false };
    const current = operations.begin("sleep", "sleep", model === null);
    state.persist({ kind: "sleep", startedAtMs: current.startedAtMs, ...(model === null ? {} : { model }) });
    try {
      await drainScope(registry, operations, model, command.drainTimeoutMs ?? options.drainTimeoutMs);
      current.phase = "sleeping";
      if (registry.size === 0) throw new RouterError("no_healthy_workers", "No workers registered in the pool");
      const targets = registry.all().filter((w) => !w.dead && !w.sleeping && (model === null || modelOf(w) === model));
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No eligible workers available in the pool");
      const results = await broadcast("/release_memory_occupation", command.body, targets);
      for (const r of results) if (r.status === 200) registry.markSleeping(r.workerUrl);
      return { results, changed: true };
    } finally {
      state.persist();
      operations.end(current);
    }
  }

  /** Wakes the sleeping workers (even those marked dead while asleep); held requests then flow. An awake pool is left alone. */
  async function resumeMemory(command: MemoryCommand): Promise<MemoryResult> {
    const op = operations.current;
    if (op) throw new RouterError("refit_in_progress", `a ${op.kind} operation is in progress (phase ${op.phase}); retry when it ends`);
    const model = targetModel(registry, command.model ?? null, false);
    if (alreadyAll("awake", model)) return { results: [], changed: false };
    if (registry.size === 0) throw new RouterError("no_healthy_workers", "No workers registered in the pool");
    const targets = registry.all().filter((w) => w.sleeping && (model === null || modelOf(w) === model));
    if (targets.length === 0) throw new RouterError("no_healthy_workers", "No eligible workers available in the pool (none is sleeping)");
    const results = await broadcast("/resume_memory_occupation", command.body, targets);
    for (const r of results) if (r.status === 200) registry.markAwake(r.workerUrl);
    // The state's workers no longer say asleep (the other routers learn of the wake from the worker set).
    state.persist();
    reconciler.sweep();
    return { results, changed: true };
  }

  return { releaseMemory, resumeMemory };
}
