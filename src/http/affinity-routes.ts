import type { AffinityMap } from "../admission/affinity.js";
import type { RouteSpec } from "../dispatch/context.js";
import type { RouteSpecs } from "../dispatch/route-specs.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { DataPlane } from "./data-plane.js";
import type { RestCall } from "./rest-call.js";

export interface AffinityRoutesOptions {
  registry: Registry;
  data: DataPlane;
  specs: RouteSpecs;
  images: AffinityMap;
  videos: AffinityMap;
}

/**
 * Routes about something one worker holds (an image file, a video job):
 * they go to the worker that made it, never elsewhere.
 */
export function createAffinityRoutes(options: AffinityRoutesOptions) {
  const { registry, data, specs, images, videos } = options;

  /** Streams an exchange to the worker that owns an id; never retried elsewhere. */
  function toOwner(call: RestCall, path: string, ownerUrl: string | undefined, what: "video" | "image", id: string, spec: RouteSpec): Promise<void> {
    const owner = ownerUrl === undefined ? undefined : registry.get(ownerUrl);
    if (!owner) {
      throw new RouterError(what === "video" ? "video_not_found" : "image_not_found", `Unknown ${what}_id: ${id} (not created through this router, or its worker left the pool)`, { details: { param: `${what}_id` } });
    }
    if (owner.dead) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is unavailable`, { details: { retryAfterS: 5 } });
    if (owner.sleeping) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is sleeping`, { details: { retryAfterS: 5 } });
    return data.toWorker(call, owner, path, spec);
  }

  return {
    async imageContent(call: RestCall, path: string, id: string): Promise<void> {
      await toOwner(call, path, images.lookup(id), "image", id, specs.toOwner);
    },

    /**
     * Get, delete or download a job on the worker that owns it. The owner is
     * kept after a DELETE: a queued job only becomes `cancelling` there, and
     * later questions about it must still reach that worker (it answers 404
     * once the job is really gone).
     */
    async videoById(call: RestCall, path: string, id: string): Promise<void> {
      // A poll of the job (not its content) may show that it ended; a delete ends it.
      const method = call.req.method;
      const content = path.split("?", 1)[0]!.endsWith("/content");
      const spec = method === "GET" && !content ? specs.videoPoll : method === "DELETE" ? specs.videoDelete : specs.toOwner;
      await toOwner(call, path, videos.lookup(id), "video", id, spec);
    },

    /** `GET /v1/videos?video_id=`: a poll of that job on its owner, as the original did. */
    async pollVideo(call: RestCall, id: string): Promise<void> {
      await toOwner(call, `/v1/videos/${encodeURIComponent(id)}`, videos.lookup(id), "video", id, specs.videoPoll);
    },
  };
}

export type AffinityRoutes = ReturnType<typeof createAffinityRoutes>;
