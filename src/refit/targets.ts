import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Operations } from "./operations.js";

/** The model a worker's weights are filed under: the first it serves ("" while unknown). */
export function modelOf(w: Worker): string {
  return w.capabilities.models[0] ?? "";
}

/** The models the pool's workers serve (workers not probed yet do not count). */
export function modelsServed(registry: Registry): string[] {
  return [...new Set(registry.all().map(modelOf).filter((m) => m !== ""))].sort();
}

/**
 * Which model an operation acts on: null = the whole pool. A pool that
 * serves several models must be told which one to refit (`required`):
 * refitting all of them with one checkpoint is never meant. In a pool that
 * serves one model (or none known yet) `model` changes nothing: it is the
 * whole pool, as before `model` was read (trainers may send a name the
 * worker's card spells differently).
 */
export function targetModel(registry: Registry, requested: string | null, required: boolean): string | null {
  const served = modelsServed(registry);
  if (served.length <= 1) return null;
  if (requested === null) {
    if (required && served.length > 1) {
      throw new RouterError("invalid_request", `the pool serves ${served.length} models (${served.join(", ")}): name the one to refit in model`, { details: { param: "model" } });
    }
    return null;
  }
  if (!served.includes(requested)) {
    throw new RouterError("invalid_request", `no worker serves model ${JSON.stringify(requested)} (served: ${served.join(", ") || "none yet"})`, { details: { param: "model" } });
  }
  return requested;
}

/** `model` as sent: absent = null. */
export function modelFieldOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || value === "") throw new RouterError("invalid_request", `model must be a non-empty string, got ${JSON.stringify(value)}`, { details: { param: "model" } });
  return value;
}

/**
 * Whole pool (null): every request is held (admission) and the in-flight
 * ones finish. One model: only its workers leave rotation (its requests
 * wait, the other models keep serving) and their requests finish; the
 * operation's end brings back those it did not change.
 */
export async function drainScope(registry: Registry, operations: Operations, model: string | null, timeoutMs: number): Promise<void> {
  if (model === null) return operations.drain(timeoutMs);
  const workers = registry.all().filter((w) => !w.dead && modelOf(w) === model);
  for (const w of workers) if (w.sync === "in_sync") registry.beginSync(w.url);
  await operations.drainWorkers(workers, timeoutMs);
}
