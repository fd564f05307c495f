import type { AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import { describeNetworkError } from "../health/probe.js";
import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import { workerKind } from "../registry/task-types.js";
import type { Worker } from "../registry/worker.js";
import type { AffinityRoutes } from "./affinity-routes.js";
import type { DataPlane } from "./data-plane.js";
import { sendJson } from "./respond.js";
import type { RestCall } from "./rest-call.js";

export interface FanoutRoutesOptions {
  registry: Registry;
  upstream: Upstream;
  logger: Logger;
  data: DataPlane;
  affinity: AffinityRoutes;
  videos: AffinityMap;
  meshes: AffinityMap;
  /** Time limit of each worker's part of a list. */
  fanoutTimeoutMs: number;
}

type Job = Record<string, unknown>;

/** A `data` list from one worker, or null when it answered something else. */
function listOf(status: number, body: unknown): unknown[] | null {
  const data = (body as { data?: unknown })?.data;
  return status === 200 && Array.isArray(data) ? data : null;
}

/** Cards de-duplicated by id (a card without one by its whole content). */
function mergeCards(cards: unknown[]): unknown[] {
  const seen = new Set<string>();
  const merged: unknown[] = [];
  for (const card of cards) {
    if (!card || typeof card !== "object") continue;
    const c = card as Record<string, unknown>;
    const key = typeof c.id === "string" ? c.id : JSON.stringify(c);
    if (seen.has(key)) continue;
    seen.add(key);
    merged.push(card);
  }
  return merged;
}

/** `limit` and `order` of a video list, checked. */
function listParams(query: URLSearchParams): { limit: number; order: "asc" | "desc"; after: string | null } {
  const limitRaw = query.get("limit");
  const limit = limitRaw === null ? 20 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new RouterError("invalid_request", `limit must be an integer 1-100, got ${JSON.stringify(limitRaw)}`, { details: { param: "limit" } });
  const order = query.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") throw new RouterError("invalid_request", `order must be asc or desc, got ${JSON.stringify(order)}`, { details: { param: "order" } });
  return { limit, order, after: query.get("after") };
}

/**
 * Job lists (videos, meshes) live in each worker's memory: the list is the
 * merge of every capable worker's list; each job's worker is remembered.
 */
function createJobLists(options: FanoutRoutesOptions) {
  const { registry, upstream, logger, fanoutTimeoutMs } = options;
  const kinds = {
    videos: { owners: options.videos, holds: (w: Worker) => w.capabilities.videoSupport === true },
    meshes: { owners: options.meshes, holds: (w: Worker) => workerKind(w.capabilities.taskType) === "mesh" },
  };
  type JobKind = keyof typeof kinds;

  /** One worker's jobs, remembered as that worker's; none when it fails. */
  async function jobsOf(w: Worker, kind: JobKind, order: string): Promise<Job[]> {
    try {
      const a = await upstream.requestJson(w.url, "GET", `/v1/${kind}?limit=100&order=${order}`, { timeoutMs: fanoutTimeoutMs });
      const list = listOf(a.status, a.body);
      if (list === null) return [];
      for (const job of list as Job[]) if (job && typeof job.id === "string") kinds[kind].owners.remember(job.id, w.url);
      return list as Job[];
    } catch (err) {
      logger.warn({ worker: w.url, err: describeNetworkError(err) }, `${kind} list from worker failed`);
      return [];
    }
  }

  /** Every capable live worker's jobs merged, newest first (or oldest), then `after` and `limit` applied to the merged list. */
  async function listJobs(call: RestCall, kind: JobKind, query: URLSearchParams): Promise<void> {
    const { limit, order, after } = listParams(query);
    const targets = registry.all().filter((w) => kinds[kind].holds(w) && !w.dead && !w.sleeping);
    const lists = await Promise.all(targets.map((w) => jobsOf(w, kind, order)));
    const sign = order === "asc" ? 1 : -1;
    let jobs = lists.flat().sort((a, b) => sign * (Number(a.created_at ?? 0) - Number(b.created_at ?? 0)));
    if (after) {
      const at = jobs.findIndex((j) => j.id === after);
      jobs = at >= 0 ? jobs.slice(at + 1) : jobs;
    }
    const page = jobs.slice(0, limit);
    sendJson(call.res, 200, { object: "list", data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: jobs.length > limit });
  }

  return listJobs;
}

/**
 * Lists that live in every worker's memory (models, video jobs): asked of
 * each worker at once and merged into one answer.
 */
export function createFanoutRoutes(options: FanoutRoutesOptions) {
  const { registry, upstream, data, affinity, fanoutTimeoutMs } = options;
  const listJobs = createJobLists(options);

  return {
    /**
     * `GET /v1/videos`: jobs live in each worker's memory, so the list is the
     * merge of every video worker's list, newest first (or oldest with
     * order=asc), then `after` and `limit` applied to the merged list. With
     * `video_id=` it polls that job on its owner, as the original did.
     */
    async listVideos(call: RestCall, query: URLSearchParams): Promise<void> {
      const pollId = query.get("video_id") ?? query.get("id") ?? query.get("job_id");
      if (pollId) return affinity.pollVideo(call, pollId);
      return listJobs(call, "videos", query);
    },

    /** `GET /v1/meshes`: every I2M worker's mesh jobs merged, as the video list. */
    listMeshes: (call: RestCall, query: URLSearchParams) => listJobs(call, "meshes", query),

    /** `GET /v1/models`: every routable worker's cards, de-duplicated by id. */
    async listModels(call: RestCall): Promise<void> {
      const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
      const errors: Record<string, string> = {};
      const answers = await Promise.all(
        targets.map(async (w) => {
          try {
            const a = await upstream.requestJson(w.url, "GET", "/v1/models", { timeoutMs: fanoutTimeoutMs });
            const list = listOf(a.status, a.body);
            if (list !== null) return list;
            errors[w.url] = `status=${a.status}`;
          } catch (err) {
            errors[w.url] = describeNetworkError(err);
          }
          return [];
        }),
      );
      const merged = mergeCards(answers.flat());
      if (merged.length === 0) throw new RouterError("upstream_failed", `Failed to fetch models from workers: ${JSON.stringify(errors)}`);
      sendJson(call.res, 200, { object: "list", data: merged });
    },

    /** `GET /v1/models/{model}`: answered by a worker that serves it. */
    async getModel(call: RestCall, path: string, model: string): Promise<void> {
      const owner = registry.routable().find((w) => w.capabilities.models.includes(model));
      if (!owner) {
        sendJson(call.res, 404, { error: { message: `The model '${model}' does not exist`, type: "invalid_request_error", param: "model", code: "model_not_found" } });
        return;
      }
      await data.toWorker(call, owner, path);
    },
  };
}

export type FanoutRoutes = ReturnType<typeof createFanoutRoutes>;
