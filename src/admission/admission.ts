import type { Policy } from "../balancer/index.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";

/** Which workers a request may go to. */
export type Pool = "any" | "video";

/**
 * Decides when a request may be dispatched and to which worker, and counts
 * it against that worker until {@link Admission.release}. The only place that
 * holds requests (refit, sleep, per-worker caps build on it).
 */
export interface Admission {
  acquire(pool: Pool): Worker;
  /** Counts a request against a worker chosen by id affinity. */
  acquireSpecific(worker: Worker): Worker;
  release(worker: Worker): void;
}

export function createAdmission(registry: Registry, policy: Policy): Admission {
  function take(worker: Worker): Worker {
    worker.activeRequests++;
    registry.notifyLoad(worker);
    return worker;
  }
  return {
    acquire(pool) {
      const candidates = pool === "video" ? registry.routableVideo() : registry.routable();
      if (candidates.length === 0) throw noWorkerError(registry, pool);
      return take(policy.pick(candidates));
    },
    acquireSpecific: take,
    release(worker) {
      if (worker.activeRequests > 0) worker.activeRequests--;
      registry.notifyLoad(worker);
    },
  };
}

/** The precise reason nothing can take a request, for the client's error. */
export function noWorkerError(registry: Registry, pool: Pool): RouterError {
  if (registry.size === 0) return new RouterError("no_healthy_workers", "No workers registered in the pool");
  if (pool === "video") {
    const video = registry.all().filter((w) => w.capabilities.videoSupport === true);
    if (video.length === 0) {
      return new RouterError("no_video_workers", "No video-capable workers available in current worker pool (no worker's /v1/models task_type is T2V, I2V or TI2V).");
    }
    return new RouterError("no_healthy_workers", `No healthy video-capable workers available (${video.length} registered, none routable)`, { details: { retryAfterS: 1 } });
  }
  return new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
}
