import { randomUUID } from "node:crypto";
import type { Admission, Pool } from "../admission/admission.js";
import { imageIdsIn, videoIdIn, type AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import { describeNetworkError } from "../health/probe.js";
import type { Logger } from "../log.js";
import { forward, type ForwardRequest } from "../proxy/forward.js";
import { upstreamRequestHeaders } from "../proxy/headers.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Req } from "./body.js";
import { sendError, sendJson, type Res } from "./respond.js";

export interface DataPlaneOptions {
  registry: Registry;
  admission: Admission;
  upstream: Upstream;
  logger: Logger;
  images: AffinityMap;
  videos: AffinityMap;
  /** Time limit of the fan-out requests (model and video lists). */
  fanoutTimeoutMs: number;
}

/** Bytes of an images answer searched for content ids; `url` answers are small. */
const imageCaptureBytes = 64 * 1024;
/** A video-create answer is one small job object. */
const videoCaptureBytes = 256 * 1024;

type BeforeEnd = ForwardRequest["beforeEnd"];

/**
 * The OpenAI-style and native generation routes: pick a worker (or the one
 * that owns an id), stream the request there and the answer back.
 */
export function createDataPlane(options: DataPlaneOptions) {
  const { registry, admission, upstream, logger, images, videos } = options;
  const agent = upstream.agent;

  function requestIdOf(req: Req): string {
    const given = req.headers["x-request-id"];
    return typeof given === "string" && given !== "" && given.length <= 200 ? given : randomUUID();
  }

  function hasBody(req: Req): boolean {
    if (req.headers["transfer-encoding"] !== undefined) return true;
    const len = req.headers["content-length"];
    return len !== undefined && len !== "0";
  }

  /** Streams the exchange to `worker`, whose load was already counted. */
  async function proxyTo(req: Req, res: Res, worker: Worker, path: string, capture = 0, beforeEnd?: BeforeEnd): Promise<void> {
    const requestId = requestIdOf(req);
    const extraHeaders: Record<string, string> = { "x-request-id": requestId };
    if (worker.weightVersion !== null) extraHeaders["x-weight-version"] = worker.weightVersion;
    let outcome;
    try {
      outcome = await forward(agent, res, {
        origin: worker.url,
        path,
        method: req.method ?? "GET",
        headers: upstreamRequestHeaders(req.headers, requestId),
        body: hasBody(req) ? req : null,
        extraHeaders,
        captureBytes: capture,
        beforeEnd,
      });
    } finally {
      admission.release(worker);
    }
    (res as { workerUrl?: string }).workerUrl = worker.url;
    switch (outcome.kind) {
      case "completed":
      case "client_aborted":
        return;
      case "failed_before_response":
        logger.warn({ worker: worker.url, requestId, err: describeNetworkError(outcome.error) }, "worker unreachable");
        sendError(res, new RouterError("upstream_unreachable", `worker ${worker.displayId} failed before answering: ${describeNetworkError(outcome.error)}`, { cause: outcome.error }));
        return;
      case "failed_mid_response":
        logger.warn({ worker: worker.url, requestId, err: describeNetworkError(outcome.error) }, "worker answer cut off");
        return;
    }
  }

  async function balanced(req: Req, res: Res, path: string, pool: Pool = "any", capture = 0, beforeEnd?: BeforeEnd): Promise<void> {
    const worker = admission.acquire(pool);
    await proxyTo(req, res, worker, path, capture, beforeEnd);
  }

  /** Sends a request about an id to the worker that owns it. */
  async function toOwner(req: Req, res: Res, path: string, ownerUrl: string | undefined, what: "video" | "image", id: string, beforeEnd?: BeforeEnd): Promise<void> {
    const owner = ownerUrl === undefined ? undefined : registry.get(ownerUrl);
    if (!owner) {
      throw new RouterError(what === "video" ? "video_not_found" : "image_not_found", `Unknown ${what} id: ${id} (not created through this router, or its worker left the pool)`, { details: { param: `${what}_id` } });
    }
    if (owner.dead) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is unavailable`, { details: { retryAfterS: 5 } });
    if (owner.sleeping) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is sleeping`, { details: { retryAfterS: 5 } });
    await proxyTo(req, res, admission.acquireSpecific(owner), path, 0, beforeEnd);
  }

  function rememberImages(worker: Worker) {
    return (status: number, captured: Buffer) => {
      if (status !== 200) return;
      for (const id of imageIdsIn(captured)) images.remember(id, worker.url);
    };
  }

  return {
    proxyTo,
    balanced,

    async imageGeneration(req: Req, res: Res, path: string): Promise<void> {
      const worker = admission.acquire("any");
      await proxyTo(req, res, worker, path, imageCaptureBytes, rememberImages(worker));
    },

    async imageContent(req: Req, res: Res, path: string, id: string): Promise<void> {
      await toOwner(req, res, path, images.lookup(id), "image", id);
    },

    async createVideo(req: Req, res: Res, path: string): Promise<void> {
      const worker = admission.acquire("video");
      await proxyTo(req, res, worker, path, videoCaptureBytes, (status, captured) => {
        if (status >= 400) return;
        const id = videoIdIn(captured);
        if (id) videos.remember(id, worker.url);
      });
    },

    async videoById(req: Req, res: Res, path: string, id: string): Promise<void> {
      const isDelete = req.method === "DELETE";
      await toOwner(req, res, path, videos.lookup(id), "video", id, isDelete ? (status) => status === 200 && videos.forget(id) : undefined);
    },

    /**
     * `GET /v1/videos`: jobs live in each worker's memory, so the list is the
     * merge of every video worker's list, newest first (or oldest with
     * order=asc), then `after` and `limit` applied to the merged list. With
     * `video_id=` it polls that job on its owner, as the original did.
     */
    async listVideos(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const pollId = query.get("video_id") ?? query.get("id") ?? query.get("job_id");
      if (pollId) {
        await toOwner(req, res, `/v1/videos/${encodeURIComponent(pollId)}`, videos.lookup(pollId), "video", pollId);
        return;
      }
      const limitRaw = query.get("limit");
      const limit = limitRaw === null ? 20 : Number(limitRaw);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new RouterError("invalid_request", `limit must be an integer 1-100, got ${JSON.stringify(limitRaw)}`, { details: { param: "limit" } });
      const order = query.get("order") ?? "desc";
      if (order !== "asc" && order !== "desc") throw new RouterError("invalid_request", `order must be asc or desc, got ${JSON.stringify(order)}`, { details: { param: "order" } });
      const after = query.get("after");
      const targets = registry.all().filter((w) => w.capabilities.videoSupport === true && !w.dead && !w.sleeping);
      const lists = await Promise.all(
        targets.map(async (w) => {
          try {
            const a = await upstream.requestJson(w.url, "GET", `/v1/videos?limit=100&order=${order}`, { timeoutMs: options.fanoutTimeoutMs });
            const data = (a.body as { data?: unknown })?.data;
            if (a.status !== 200 || !Array.isArray(data)) return [];
            for (const job of data) if (job && typeof job.id === "string") videos.remember(job.id, w.url);
            return data as Record<string, unknown>[];
          } catch (err) {
            logger.warn({ worker: w.url, err: describeNetworkError(err) }, "video list from worker failed");
            return [];
          }
        }),
      );
      const sign = order === "asc" ? 1 : -1;
      let jobs = lists.flat().sort((a, b) => sign * (Number(a.created_at ?? 0) - Number(b.created_at ?? 0)));
      if (after) {
        const at = jobs.findIndex((j) => j.id === after);
        jobs = at >= 0 ? jobs.slice(at + 1) : jobs;
      }
      const page = jobs.slice(0, limit);
      sendJson(res, 200, {
        object: "list",
        data: page,
        first_id: page[0]?.id ?? null,
        last_id: page.at(-1)?.id ?? null,
        has_more: jobs.length > limit,
      });
    },

    /** `GET /v1/models`: every routable worker's cards, de-duplicated by id. */
    async listModels(res: Res): Promise<void> {
      const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
      const errors: Record<string, string> = {};
      const answers = await Promise.all(
        targets.map(async (w) => {
          try {
            const a = await upstream.requestJson(w.url, "GET", "/v1/models", { timeoutMs: options.fanoutTimeoutMs });
            const data = (a.body as { data?: unknown })?.data;
            if (a.status === 200 && Array.isArray(data)) return data as unknown[];
            errors[w.url] = `status=${a.status}`;
          } catch (err) {
            errors[w.url] = describeNetworkError(err);
          }
          return [];
        }),
      );
      const seen = new Set<string>();
      const merged: unknown[] = [];
      for (const card of answers.flat()) {
        if (!card || typeof card !== "object") continue;
        const c = card as Record<string, unknown>;
        const key = typeof c.id === "string" ? c.id : JSON.stringify(c);
        if (seen.has(key)) continue;
        seen.add(key);
        merged.push(card);
      }
      if (merged.length === 0) throw new RouterError("upstream_failed", `Failed to fetch models from workers: ${JSON.stringify(errors)}`);
      sendJson(res, 200, { object: "list", data: merged });
    },

    /** `GET /v1/models/{model}`: answered by a worker that serves it. */
    async getModel(req: Req, res: Res, path: string, model: string): Promise<void> {
      const owner = registry.routable().find((w) => w.capabilities.models.includes(model));
      if (!owner) {
        sendJson(res, 404, { error: { message: `The model '${model}' does not exist`, type: "invalid_request_error", param: "model", code: "model_not_found" } });
        return;
      }
      await proxyTo(req, res, admission.acquireSpecific(owner), path);
    },

    sendError,
  };
}

export type DataPlane = ReturnType<typeof createDataPlane>;
