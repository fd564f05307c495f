import type { AffinityMap } from "../admission/affinity.js";
import type { RouteSpec } from "../dispatch/context.js";
import type { RouteSpecs } from "../dispatch/route-specs.js";
import { RouterError, type ErrorCode } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { DataPlane } from "./data-plane.js";
import type { HeldKind, OwnerLookup } from "./owner-lookup.js";
import type { RestCall } from "./rest-call.js";

export interface AffinityRoutesOptions {
  registry: Registry;
  data: DataPlane;
  specs: RouteSpecs;
  images: AffinityMap;
  videos: AffinityMap;
  meshes: AffinityMap;
  /** Asks the pool for an id the maps do not hold. */
  lookup: OwnerLookup;
  /** The owner of an id another router made, from the shared store (--state-store); tried before the pool is asked. */
  resolveOwner?: (what: HeldKind, id: string) => Promise<string | undefined>;
}

const notFound: Readonly<Record<HeldKind, ErrorCode>> = { video: "video_not_found", mesh: "mesh_not_found", image: "image_not_found" };

/**
 * Routes about something one worker holds (an image file, a video or mesh
 * job): they go to the worker that made it, never elsewhere. An id the
 * router does not know is read from the shared store (etcd), then looked
 * for on the pool, before it answers 404.
 */
export function createAffinityRoutes(options: AffinityRoutesOptions) {
  const { registry, data, specs, lookup } = options;
  const maps: Readonly<Record<HeldKind, AffinityMap>> = { video: options.videos, mesh: options.meshes, image: options.images };

  /** The worker that holds the id: remembered, else found on the pool (and then remembered). */
  async function ownerOf(what: HeldKind, id: string): Promise<Worker> {
    const known = maps[what].lookup(id);
    const owner = known === undefined ? undefined : registry.get(known);
    if (owner) return owner;
    // Several routers (--state-store): an id made through another one is in etcd.
    const shared = await options.resolveOwner?.(what, id);
    const sharedOwner = shared === undefined ? undefined : registry.get(shared);
    if (sharedOwner) return sharedOwner;
    const found = await lookup(what, id);
    if (found === undefined) {
      throw new RouterError(notFound[what], `Unknown ${what}_id: ${id} (no worker in the pool holds it)`, { details: { param: `${what}_id` } });
    }
    maps[what].remember(id, found.url);
    return found;
  }

  /** Streams an exchange to the worker that owns an id; never retried elsewhere. */
  async function toOwner(call: RestCall, path: string, what: HeldKind, id: string, spec: RouteSpec): Promise<void> {
    const owner = await ownerOf(what, id);
    if (owner.dead) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is unavailable`, { details: { retryAfterS: 5 } });
    if (owner.sleeping) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is sleeping`, { details: { retryAfterS: 5 } });
    return data.toWorker(call, owner, path, spec);
  }

  return {
    async imageContent(call: RestCall, path: string, id: string): Promise<void> {
      await toOwner(call, path, "image", id, specs.toOwner);
    },

    /**
     * Get, delete or download a job on the worker that owns it. The owner is
     * kept after a DELETE: later questions about the job must still reach
     * that worker (it answers 404 once the job is gone).
     */
    async videoById(call: RestCall, path: string, id: string): Promise<void> {
      // A poll of the job (not its content) may show that it ended; a delete ends it.
      const method = call.req.method;
      const content = path.split("?", 1)[0]!.endsWith("/content");
      const spec = method === "GET" && !content ? specs.videoPoll : method === "DELETE" ? specs.videoDelete : specs.toOwner;
      await toOwner(call, path, "video", id, spec);
    },

    /** Get, delete or download a mesh job on its worker (mesh jobs are not counted as work: nothing to learn from polls). */
    async meshById(call: RestCall, path: string, id: string): Promise<void> {
      await toOwner(call, path, "mesh", id, call.req.method === "DELETE" ? specs.meshDelete : specs.toOwner);
    },

    /** `GET /v1/videos?video_id=`: a poll of that job on its owner, as the original did. */
    async pollVideo(call: RestCall, id: string): Promise<void> {
      await toOwner(call, `/v1/videos/${encodeURIComponent(id)}`, "video", id, specs.videoPoll);
    },
  };
}

export type AffinityRoutes = ReturnType<typeof createAffinityRoutes>;
