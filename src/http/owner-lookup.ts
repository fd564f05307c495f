import { describeNetworkError } from "../health/probe.js";
import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import { workerKind } from "../registry/task-types.js";
import type { Worker } from "../registry/worker.js";

/** What a worker holds by id: a video job, a mesh job, an image file. */
export type HeldKind = "video" | "mesh" | "image";

export interface OwnerLookupOptions {
  registry: Registry;
  upstream: Upstream;
  logger: Logger;
  /** Time limit of each worker's answer: a worker that hangs must not hold the client's 404. */
  timeoutMs: number;
}

/** The worker path that answers 200 only on the worker holding the id. */
function probePath(kind: HeldKind, id: string): string {
  const e = encodeURIComponent(id);
  return kind === "video" ? `/v1/videos/${e}` : kind === "mesh" ? `/v1/meshes/${e}` : `/v1/images/${e}/content`;
}

/**
 * Live workers that could hold an id of this kind (an image can come from
 * any worker the pool sent images to). A worker whose card is not read yet
 * is asked too: right after a restart every worker is in that state, and a
 * client polling a job made before the crash must not get a 404 for it.
 */
function capable(registry: Registry, kind: HeldKind): Worker[] {
  const live = registry.all().filter((w) => !w.dead && !w.sleeping);
  const unknown = (w: Worker) => w.capabilities.taskType === null;
  if (kind === "video") return live.filter((w) => w.capabilities.videoSupport !== false);
  if (kind === "mesh") return live.filter((w) => unknown(w) || workerKind(w.capabilities.taskType) === "mesh");
  return live.filter((w) => unknown(w) || workerKind(w.capabilities.taskType) !== "action");
}

/**
 * Finds the owner of an id the router does not know (it restarted, or the
 * id was made through another router or on the worker directly): every
 * capable live worker is asked at once, each within the time limit, and
 * the first that answers 200 owns it. Answers are read only for their
 * status (an image's bytes are dropped).
 */
export function createOwnerLookup(options: OwnerLookupOptions) {
  const { registry, upstream, logger, timeoutMs } = options;

  async function holds(w: Worker, path: string): Promise<boolean> {
    try {
      const res = await upstream.agent.request({ origin: w.url, path, method: "GET", signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      return res.statusCode === 200;
    } catch (err) {
      logger.debug({ worker: w.url, path, err: describeNetworkError(err) }, "owner lookup: worker did not answer");
      return false;
    }
  }

  return async (kind: HeldKind, id: string): Promise<Worker | undefined> => {
    const path = probePath(kind, id);
    const targets = capable(registry, kind);
    const answers = await Promise.all(targets.map((w) => holds(w, path)));
    return targets.find((_, i) => answers[i]);
  };
}

export type OwnerLookup = ReturnType<typeof createOwnerLookup>;
