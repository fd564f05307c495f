/**
 * Which workers may serve a request: the right kind of model for the route,
 * and the model the request names when some worker serves it. Pure functions
 * over worker facts, plus a cache of the candidate lists that the registry's
 * changes invalidate (the hot path must not filter every worker per request).
 */
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { RouteKind } from "./request-facts.js";

export type WorkerKind = "image" | "video" | "mesh" | "unknown";

const imageTasks = new Set(["T2I", "I2I", "TI2I"]);
const videoTasks = new Set(["T2V", "I2V", "TI2V"]);

export function workerKind(taskType: string | null): WorkerKind {
  if (taskType === null) return "unknown";
  const t = taskType.toUpperCase();
  if (imageTasks.has(t)) return "image";
  if (videoTasks.has(t)) return "video";
  if (t === "I2M") return "mesh";
  return "unknown";
}

/** What a request asks of a worker. */
export interface Demand {
  readonly kind: RouteKind;
  /** The model the request names, or null. */
  readonly model: string | null;
  /** kind and model as one string (the caches' key); {@link demandOf} sets it once per request. */
  readonly key?: string;
}

/** A request's demand, its cache key made once (the queue looks it up at every pass). */
export function demandOf(kind: RouteKind, model: string | null): Demand {
  return { kind, model, key: demandKey(kind, model) };
}

function demandKey(kind: RouteKind, model: string | null): string {
  return model === null ? kind : `${kind}\u0000${model}`;
}

/**
 * The workers (among `workers`, typically every registered one) that may
 * serve `demand`:
 * - video routes: video models only (as the original);
 * - image routes: image models (and workers not probed yet); a video-only or
 *   mesh worker only when the pool has no image-capable worker at all;
 * - a named model that some worker of that kind serves: only those workers.
 *   A name nobody serves (`sora-2`, a typo; real workers ignore the field)
 *   does not narrow the choice.
 */
export function eligibleWorkers<W extends Pick<Worker, "capabilities">>(workers: readonly W[], demand: Demand): W[] {
  let kindOk: W[];
  if (demand.kind === "video") kindOk = workers.filter((w) => w.capabilities.videoSupport === true);
  else if (demand.kind === "image") {
    const images = workers.filter((w) => {
      const k = workerKind(w.capabilities.taskType);
      return k === "image" || k === "unknown";
    });
    kindOk = images.length > 0 ? images : [...workers];
  } else kindOk = [...workers];
  if (demand.model === null) return kindOk;
  const serving = kindOk.filter((w) => w.capabilities.models.includes(demand.model!));
  return serving.length > 0 ? serving : kindOk;
}

/**
 * Candidate lists per demand, recomputed only after a registry change that is
 * not a load count. `registered` is what may serve the request at all (to
 * decide between waiting and failing); `routable` what may take it now.
 */
export class EligibilityCache {
  readonly #registry: Registry;
  #registered = new Map<string, readonly Worker[]>();
  #routable = new Map<string, readonly Worker[]>();

  constructor(registry: Registry) {
    this.#registry = registry;
    registry.on("change", (e) => {
      if (e.type === "updated" && e.reason === "load") return;
      this.#registered.clear();
      this.#routable.clear();
    });
  }

  registered(demand: Demand): readonly Worker[] {
    const key = keyOf(demand);
    let list = this.#registered.get(key);
    if (list === undefined) {
      list = eligibleWorkers(this.#registry.all(), demand);
      if (this.#registered.size > 1000) this.#registered.clear(); // bounded: model names come from clients
      this.#registered.set(key, list);
    }
    return list;
  }

  routable(demand: Demand): readonly Worker[] {
    const key = keyOf(demand);
    let list = this.#routable.get(key);
    if (list === undefined) {
      const registered = this.registered(demand);
      const routable = new Set(demand.kind === "video" ? this.#registry.routableVideo() : this.#registry.routable());
      list = registered.filter((w) => routable.has(w));
      if (this.#routable.size > 1000) this.#routable.clear();
      this.#routable.set(key, list);
    }
    return list;
  }
}

export function keyOf(d: Demand): string {
  return d.key ?? demandKey(d.kind, d.model);
}
