/**
 * Which workers may serve a request: the right kind of model for the route,
 * and the model the request names when some worker serves it. Pure functions
 * over worker facts, plus a cache of the candidate lists that the registry's
 * changes invalidate (the hot path must not filter every worker per request).
 */
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { workerKind, type WorkerKind } from "../registry/task-types.js";
import type { RouteKind } from "./request-facts.js";

export { workerKind, type WorkerKind };

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
 * - mesh creates: I2M workers only;
 * - video routes, and native generation routes whose body asks for video
 *   (`num_frames`, ...: see request-facts.ts): video models only;
 * - image routes, and native generation routes whose body asks for no video:
 *   image models; workers whose card is not read yet
 *   only while no image worker is known (a worker still warming up must not
 *   take an image request a known image worker can serve); a video or mesh
 *   worker only when the pool has no image-capable worker at all (the
 *   original sent images anywhere); never a VLA action worker;
 * - a named model that some worker of that kind serves (on native generation
 *   routes: some worker at all): only those workers.
 *   A name nobody serves (`sora-2`, a typo; real workers ignore the field)
 *   does not narrow the choice.
 */
export function eligibleWorkers<W extends Pick<Worker, "capabilities">>(workers: readonly W[], demand: Demand): W[] {
  const model = demand.model;
  // A native generation naming a served model is that model's, whatever its
  // kind (a Wan rollout without num_frames is still a video rollout).
  if (model !== null && (demand.kind === "generation" || demand.kind === "video_generation")) {
    const serving = workers.filter((w) => w.capabilities.models.includes(model));
    if (serving.length > 0) return serving;
  }
  let kindOk: W[];
  if (demand.kind === "video" || demand.kind === "video_generation") kindOk = workers.filter((w) => w.capabilities.videoSupport === true);
  else if (demand.kind === "image" || demand.kind === "generation") kindOk = imageCapable(workers);
  else if (demand.kind === "mesh") kindOk = workers.filter((w) => workerKind(w.capabilities.taskType) === "mesh");
  else kindOk = [...workers];
  if (model === null) return kindOk;
  const serving = kindOk.filter((w) => w.capabilities.models.includes(model));
  return serving.length > 0 ? serving : kindOk;
}

function imageCapable<W extends Pick<Worker, "capabilities">>(workers: readonly W[]): W[] {
  const byKind = (kind: WorkerKind) => workers.filter((w) => workerKind(w.capabilities.taskType) === kind);
  const images = byKind("image");
  if (images.length > 0) return images;
  const unknown = byKind("unknown");
  if (unknown.length > 0) return unknown;
  return workers.filter((w) => workerKind(w.capabilities.taskType) !== "action");
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
      const routable = new Set(demand.kind === "video" || demand.kind === "video_generation" ? this.#registry.routableVideo() : this.#registry.routable());
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
