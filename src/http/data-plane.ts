import { performance } from "node:perf_hooks";
import type { Admission, Ticket } from "../admission/admission.js";
import { imageIdsIn, videoIdIn, videoJobEnd, type AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import { describeNetworkError } from "../health/probe.js";
import type { Logger } from "../log.js";
import type { OutlierDetector } from "../health/outlier-detector.js";
import { BodyLimitExceeded, forward, type AnswerHook, type ForwardOutcome } from "../proxy/forward.js";
import { classifyFailure } from "../proxy/network-errors.js";
import { decideRetry, mayTryAgain, type AttemptFacts, type RetryClass } from "../proxy/retry-decision.js";
import { upstreamRequestHeaders } from "../proxy/headers.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { factsWithoutBody, readRequestFacts, type RequestFacts, type RouteKind } from "../scheduler/request-facts.js";
import { demandOf } from "../scheduler/eligibility.js";
import { readBody, type Req } from "./body.js";
import { notes } from "./notes.js";
import { sendError, sendJson, type Res } from "./respond.js";

export interface DataPlaneOptions {
  registry: Registry;
  admission: Admission;
  upstream: Upstream;
  outliers: OutlierDetector;
  logger: Logger;
  images: AffinityMap;
  videos: AffinityMap;
  /** Time limit of the fan-out requests (model and video lists). */
  fanoutTimeoutMs: number;
  /** Further workers tried after a failure before any answer byte; default 2. */
  maxRetries: number;
  /** No retry starts later than this after the request arrived; default 300 s. */
  retryBudgetMs: number;
  /** Most bytes of a request body forwarded to a worker (--max-body-bytes). */
  maxBodyBytes: number;
  /** Generation bodies up to this size are kept in memory so they can be retried; default 1 MiB. */
  maxRetryBodyBytes: number;
}

/**
 * Bytes of an images answer searched for content ids. A `url` answer is one
 * small item (`{"id","created","data":[{"b64_json":null,"url":...}]}`), so
 * its url is in the first hundreds of bytes; a `b64_json` answer has none.
 */
const imageCaptureBytes = 8 * 1024;
/** A video-create answer is one small job object. */
const videoCaptureBytes = 256 * 1024;


/** One generation request as dispatch carries it from attempt to attempt. */
interface Dispatched {
  readonly req: Req;
  readonly res: Res;
  readonly path: string;
  readonly spec: RouteSpec;
  readonly requestId: string;
  readonly ticket: Ticket;
  /** The body, when the router holds it (retryable); null: streamed from the client once. */
  readonly buffered: Buffer | null;
  readonly headers: ReturnType<typeof upstreamRequestHeaders>;
  /** Fires when the client goes away; made the first time the request must wait. */
  signal: AbortSignal | null;
}

interface RouteSpec {
  /** Which workers may serve it (image, video, any generation, anything). */
  kind: RouteKind;
  retry: RetryClass;
  capture: number;
  /** What the route does with a worker's answer before the client sees its end. */
  onAnswer?: AnswerHook;
}

class ClientGone extends Error {
  constructor() {
    super("client went away while its request was queued");
  }
}

/**
 * One instance for every request: `close` fires after every answer, and a
 * fresh Error (its stack trace) per request was 4% of the router's CPU with
 * requests queued (bench/profile.mjs). Nobody reads its stack.
 */
const CLIENT_GONE = new ClientGone();

/**
 * The OpenAI-style and native generation routes: admission picks a worker
 * (or the request waits), the exchange streams there and back, and a
 * failure before any answer byte moves the request to another worker.
 */
export function createDataPlane(options: DataPlaneOptions) {
  const { registry, admission, upstream, logger, images, videos, outliers } = options;
  const proxy = upstream.proxy;

  /** Set by the REST handler for every request. */
  function requestIdOf(res: Res): string {
    return notes(res).requestId!;
  }

  function hasBody(req: Req): boolean {
    if (req.headers["transfer-encoding"] !== undefined) return true;
    const len = req.headers["content-length"];
    if (len !== undefined) return len !== "0";
    // HTTP/2 needs neither header: a body follows unless the stream ended with its headers.
    return "stream" in req && !req.stream.endAfterHeaders;
  }

  /** An AbortSignal that fires when the client goes away; made only when a request must wait. */
  function clientSignal(res: Res): AbortSignal {
    const ac = new AbortController();
    if (res.destroyed || res.writableEnded) ac.abort(CLIENT_GONE);
    else res.once("close", () => ac.abort(CLIENT_GONE));
    return ac.signal;
  }

  /**
   * 413 before anything else happens (no queue slot, no worker) for a body
   * whose declared length is over --max-body-bytes; bodies of unknown length
   * are counted as they stream ({@link BodyLimitExceeded}).
   */
  function checkDeclaredLength(req: Req): void {
    const declared = Number(req.headers["content-length"]);
    if (declared > options.maxBodyBytes) throw tooLarge(`request body of ${declared} bytes`);
  }

  function tooLarge(what: string): RouterError {
    return new RouterError("body_too_large", `${what} exceeds the limit of ${options.maxBodyBytes} bytes (--max-body-bytes)`, { details: { limit: options.maxBodyBytes } });
  }

  /**
   * Small bodies of retryable routes are read whole so that a second worker
   * can get the same bytes; large or unknown-length bodies stream through and
   * are not retried.
   */
  async function retryableBody(req: Req, spec: RouteSpec): Promise<Buffer | null> {
    if (spec.retry === "none" || !hasBody(req)) return null;
    const len = Number(req.headers["content-length"]);
    if (!(len <= options.maxRetryBodyBytes)) return null;
    return readBody(req, options.maxRetryBodyBytes);
  }

  /**
   * What the scheduler needs of a request, read from the body the router
   * holds anyway (a retryable JSON body); bodies it streams (multipart,
   * large) are estimated without it.
   */
  function ticketOf(req: Req, spec: RouteSpec, buffered: Buffer | null): Ticket {
    const header = req.headers["x-routing-key"];
    const routingKey = typeof header === "string" && header !== "" ? header : null;
    let facts: RequestFacts;
    if (buffered === null || spec.kind === "other" || buffered.length === 0 || !/json/i.test(String(req.headers["content-type"] ?? "application/json"))) {
      facts = factsWithoutBody(spec.kind, routingKey);
    } else {
      let body: unknown = null;
      try {
        body = JSON.parse(buffered.toString("utf8"));
      } catch {
        // Not JSON: the worker answers the client's mistake; the router estimates without it.
      }
      facts = readRequestFacts(spec.kind, body, routingKey);
    }
    return { demand: demandOf(facts.kind, facts.model), facts, exclude: null, run: null, weightVersion: null };
  }

  /**
   * One generation request: a worker from admission (or the queue), the
   * exchange streamed there and back, failover before the first answer
   * byte. `preset` is a body the router already holds (a rollout item), and
   * the weight version the request must run on.
   */
  async function dispatch(req: Req, res: Res, path: string, spec: RouteSpec, preset?: { body: Buffer; weightVersion: string | null }): Promise<void> {
    const arrivedMs = Date.now();
    const requestId = requestIdOf(res);
    if (!preset) checkDeclaredLength(req);
    const buffered = preset ? preset.body : await retryableBody(req, spec);
    const ticket = ticketOf(req, spec, buffered);
    if (preset) {
      ticket.weightVersion = preset.weightVersion;
      ticket.fromJob = true;
    }
    const request: Dispatched = { req, res, path, spec, requestId, ticket, buffered, headers: upstreamRequestHeaders(req.headers, requestId), signal: null };
    // What happened on the last worker tried: a request that reached workers
    // and found none left to try is answered with that (502), not with the
    // "no worker" 503 meant for requests that never found one.
    let lastFailure: RouterError | null = null;
    for (let attempt = 0; ; attempt++) {
      const waitFromMs = performance.now();
      const w = await workerFor(request, lastFailure);
      if (w === null) return; // the client went away while it waited
      const facts: AttemptFacts = {
        attempt,
        maxRetries: options.maxRetries,
        elapsedMs: Date.now() - arrivedMs,
        retryBudgetMs: options.retryBudgetMs,
        replayableBody: buffered !== null,
        // Asked last, and only when everything else allows a retry: it walks the pool.
        get otherWorker() {
          return admission.hasOtherWorker(ticket, w.url);
        },
      };
      const n = notes(res);
      n.workerUrl = w.url;
      n.queueMs = Math.round(performance.now() - waitFromMs);
      const outcome = await exchange(request, w, mayTryAgain(spec.retry, facts));
      const failure = judge(request, w, outcome, facts);
      if (failure === null) return;
      lastFailure = failure.error;
      if (!failure.retry || res.destroyed) throw failure.error;
      (ticket.exclude ??= new Set()).add(w.url);
      n.retries = attempt + 1;
    }
  }

  /** A worker for the next attempt: at once, or after waiting in the queue; null when the client left meanwhile. */
  async function workerFor(d: Dispatched, lastFailure: RouterError | null): Promise<Worker | null> {
    try {
      const now = admission.tryAcquire(d.ticket);
      if (now !== null) return now;
      d.signal ??= clientSignal(d.res);
      return await admission.wait(d.ticket, d.signal);
    } catch (err) {
      if (err instanceof ClientGone) return null;
      throw lastFailure ?? err;
    }
  }

  /** One attempt on `w`: the exchange streamed both ways, then the worker's slot released with what was learned. */
  async function exchange(d: Dispatched, w: Worker, mayRetry: boolean): Promise<ForwardOutcome> {
    const { spec, ticket } = d;
    const n = notes(d.res);
    let outcome: ForwardOutcome | null = null;
    const dispatchedMs = performance.now();
    try {
      outcome = await forward(proxy, d.res, {
        origin: w.url,
        path: d.path,
        method: d.req.method ?? "GET",
        headers: d.headers,
        body: d.buffered ?? (hasBody(d.req) ? d.req : null),
        requestId: d.requestId,
        workerId: w.id,
        weightVersion: w.weightVersion,
        captureBytes: spec.capture,
        beforeEnd: spec.onAnswer,
        holdBack5xx: mayRetry && spec.retry === "generation",
        stats: n,
        maxBodyBytes: options.maxBodyBytes,
      });
      return outcome;
    } finally {
      const completed = outcome?.kind === "completed" ? outcome : null;
      // A video create answers at once; the job runs on the worker after it. It counts as
      // that worker's work before the slot is released, so no re-plan sees the worker idle.
      if (completed !== null && spec.kind === "video" && completed.status < 300 && completed.learned !== undefined) admission.jobStarted(w, completed.learned, ticket);
      // Only a 2xx answer is a service time worth learning from.
      const ok = completed !== null && completed.status < 300;
      admission.release(w, ticket, ok ? { ok, doneMs: completed.headAtMs } : { ok: false });
      if (completed !== null) n.serviceMs = Math.round(completed.headAtMs - dispatchedMs);
    }
  }

  /**
   * What an attempt's outcome means: null when the request is done (answered,
   * or cut off after answer bytes went out), else the error to answer with and
   * whether another worker should be tried first. Feeds outlier detection.
   */
  function judge(d: Dispatched, w: Worker, outcome: ForwardOutcome, facts: AttemptFacts): { error: RouterError; retry: boolean } | null {
    switch (outcome.kind) {
      case "completed":
        if (outcome.status >= 500) outliers.onFailure(w, "status_5xx", `answered ${outcome.status}`);
        else outliers.onSuccess(w);
        return null;
      case "client_aborted":
        return null;
      case "failed_mid_response":
        outliers.onFailure(w, classifyFailure(outcome.error), describeNetworkError(outcome.error));
        logger.warn({ worker: w.url, requestId: d.requestId, err: describeNetworkError(outcome.error) }, "worker answer cut off");
        return null;
      case "failed_before_response": {
        // The client's fault, not the worker's: no outlier count, no retry.
        if (outcome.error instanceof BodyLimitExceeded) return { error: tooLarge("request body"), retry: false };
        const kind = classifyFailure(outcome.error);
        const detail = describeNetworkError(outcome.error);
        outliers.onFailure(w, kind, detail);
        const retry = decideRetry(kind, d.spec.retry, facts) === "retry";
        logger.warn({ worker: w.url, requestId: d.requestId, kind, err: detail, attempt: facts.attempt, retry }, "worker failed before answering");
        const error =
          kind === "timeout"
            ? new RouterError("upstream_timeout", `Worker request failed: ${w.displayId} sent nothing for longer than --timeout`, { cause: outcome.error })
            : new RouterError("upstream_unreachable", `Worker request failed: ${w.displayId} failed before answering: ${detail}`, { cause: outcome.error });
        return { error, retry };
      }
    }
  }

  /** Streams an exchange to the worker that owns an id; never retried elsewhere. */
  function toOwner(req: Req, res: Res, path: string, ownerUrl: string | undefined, what: "video" | "image", id: string, onAnswer?: AnswerHook): Promise<void> {
    const owner = ownerUrl === undefined ? undefined : registry.get(ownerUrl);
    if (!owner) {
      throw new RouterError(what === "video" ? "video_not_found" : "image_not_found", `Unknown ${what}_id: ${id} (not created through this router, or its worker left the pool)`, { details: { param: `${what}_id` } });
    }
    if (owner.dead) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is unavailable`, { details: { retryAfterS: 5 } });
    if (owner.sleeping) throw new RouterError("no_healthy_workers", `The worker that owns ${what} ${id} (${owner.displayId}) is sleeping`, { details: { retryAfterS: 5 } });
    return toWorker(req, res, owner, path, onAnswer);
  }

  /**
   * Streams an exchange to one given worker (id affinity, admin
   * passthroughs): never held, capped or retried elsewhere.
   */
  async function toWorker(req: Req, res: Res, worker: Worker, path: string, onAnswer?: AnswerHook): Promise<void> {
    const requestId = requestIdOf(res);
    const n = notes(res);
    checkDeclaredLength(req);
    n.workerUrl = worker.url;
    admission.acquireSpecific(worker);
    let outcome: ForwardOutcome;
    try {
      outcome = await forward(proxy, res, {
        origin: worker.url,
        path,
        method: req.method ?? "GET",
        headers: upstreamRequestHeaders(req.headers, requestId),
        body: hasBody(req) ? req : null,
        requestId,
        workerId: worker.id,
        captureBytes: onAnswer ? 64 * 1024 : 0,
        beforeEnd: onAnswer,
        stats: n,
        maxBodyBytes: options.maxBodyBytes,
      });
    } finally {
      admission.release(worker, null);
    }
    if (outcome.kind === "failed_before_response") {
      if (outcome.error instanceof BodyLimitExceeded) throw tooLarge("request body");
      throw new RouterError("upstream_unreachable", `Worker request failed: ${worker.displayId} failed before answering: ${describeNetworkError(outcome.error)}`, { cause: outcome.error });
    }
  }

  const rememberImages: AnswerHook = (workerUrl, status, captured) => {
    if (status !== 200) return;
    for (const id of imageIdsIn(captured)) images.remember(id, workerUrl);
  };
  const rememberVideo: AnswerHook = (workerUrl, status, captured) => {
    if (status >= 400) return;
    const id = videoIdIn(captured);
    if (id) videos.remember(id, workerUrl);
    return id ?? undefined;
  };
  /** A deleted job is no work of its worker any more (a queued one is cancelled there). */
  const endVideoJob: AnswerHook = (_workerUrl, status, captured) => {
    if (status >= 300) return;
    const id = videoIdIn(captured);
    if (id) admission.jobEnded(id, false);
  };
  /** A poll that shows a job ended tells the scheduler the worker is done with it. */
  const watchVideoJob: AnswerHook = (_workerUrl, status, captured) => {
    if (status !== 200) return;
    const end = videoJobEnd(captured);
    if (end) admission.jobEnded(end.id, end.ok, end.times);
  };

  // Route specs are built once; the hot path only reads them.
  const imageSpec: RouteSpec = { kind: "image", retry: "generation", capture: imageCaptureBytes, onAnswer: rememberImages };
  const generationSpec: RouteSpec = { kind: "generation", retry: "generation", capture: 0 };
  const videoCreateSpec: RouteSpec = { kind: "video", retry: "create_once", capture: videoCaptureBytes, onAnswer: rememberVideo };
  const passthroughSpec: RouteSpec = { kind: "other", retry: "none", capture: 0 };

  const specOfPath: Record<string, RouteSpec> = { "/v1/images/generations": imageSpec, "/rollout/generate": generationSpec, "/v1/diffusion/generate": generationSpec };

  return {
    toWorker,
    /**
     * A request the router makes on a client's behalf (a rollout item):
     * the same admission, scheduling, failover and proxy as a client's own
     * request, with its answer written into `sink`. Throws the RouterError a
     * client would have been answered with.
     */
    runItem(path: string, body: Buffer, sink: Res, headers: Record<string, string>, weightVersion: string | null): Promise<void> {
      const spec = specOfPath[path];
      if (spec === undefined) throw new RouterError("invalid_request", `path must be one of ${Object.keys(specOfPath).join(", ")}, got ${JSON.stringify(path)}`);
      const req = { headers: { "content-type": "application/json", "content-length": String(body.length), ...headers }, method: "POST" } as unknown as Req;
      return dispatch(req, sink, path, spec, { body, weightVersion });
    },
    /** Paths a rollout item may take. */
    rolloutPaths: Object.keys(specOfPath),
    /** Images generations and edits: remembers which worker holds each `url` image. */
    imageGeneration: (req: Req, res: Res, path: string) => dispatch(req, res, path, imageSpec),
    /** `/rollout/generate`, `/v1/diffusion/generate`: the whole request to one worker. */
    generation: (req: Req, res: Res, path: string) => dispatch(req, res, path, generationSpec),
    /** Any other path: forwarded to a worker unchanged. */
    passthrough: (req: Req, res: Res, path: string) => dispatch(req, res, path, passthroughSpec),
    createVideo: (req: Req, res: Res, path: string) => dispatch(req, res, path, videoCreateSpec),

    async imageContent(req: Req, res: Res, path: string, id: string): Promise<void> {
      await toOwner(req, res, path, images.lookup(id), "image", id);
    },

    /**
     * Get, delete or download a job on the worker that owns it. The owner is
     * kept after a DELETE: a queued job only becomes `cancelling` there, and
     * later questions about it must still reach that worker (it answers 404
     * once the job is really gone).
     */
    async videoById(req: Req, res: Res, path: string, id: string): Promise<void> {
      // A poll of the job (not its content) may show that it ended; a delete ends it.
      const content = path.split("?", 1)[0]!.endsWith("/content");
      const hook = req.method === "GET" && !content ? watchVideoJob : req.method === "DELETE" ? endVideoJob : undefined;
      await toOwner(req, res, path, videos.lookup(id), "video", id, hook);
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
        await toOwner(req, res, `/v1/videos/${encodeURIComponent(pollId)}`, videos.lookup(pollId), "video", pollId, watchVideoJob);
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
      await toWorker(req, res, owner, path);
    },

    sendError,
  };
}

export type DataPlane = ReturnType<typeof createDataPlane>;
