import type { Operations } from "./operations.js";
import type { RefitState } from "./state.js";
import type { SharedLora } from "./state-store.js";

/** A LoRA change run as one operation of the pool (lora/lora-action.ts calls it). */
export type LoraOperation = <T>(drainTimeoutMs: number, run: () => Promise<T>) => Promise<T>;

/**
 * A LoRA change changes what the weights are, like a refit: it runs as the
 * pool's one operation (409 refit_in_progress beside a refit or sleep, here
 * and, under the refit lock, on other routers), holds new generation, is
 * written to the state as in progress so that every router on a shared
 * store holds and drains its own requests before the change reaches a
 * worker (operations.drain waits for their reports), and its end is written
 * with the pool's LoRA, which the others take before releasing their holds.
 */
export function createLoraOperation(operations: Operations, state: RefitState): LoraOperation {
  return async (drainTimeoutMs, run) => {
    const current = operations.begin("lora", "lora");
    state.persist({ kind: "lora", startedAtMs: current.startedAtMs });
    try {
      await operations.drain(drainTimeoutMs);
      current.phase = "updating";
      return await run();
    } finally {
      state.persist();
      operations.end(current);
    }
  };
}

/** The pool's LoRA as the state carries it (set by the LoRA pool once it exists). */
export type LoraSnapshot = () => SharedLora | null;
