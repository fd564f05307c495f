import { Agent, type Dispatcher } from "undici";
import type { Interceptor } from "@connectrpc/connect";
import { createAdmin, type AdminClient, type AdminTransport } from "./admin.js";
import { RouterClientError, errorFromAnswer } from "./errors.js";
import { createRolloutJobs, type RolloutJobs } from "./rollout-jobs.js";
import { answerFacts, flattenHeaders } from "./headers.js";
import { decodeBase64, decodeDataUrl, sniffImageType } from "./image-bytes.js";
import { RouterPromise, responseMeta, type WithResponse } from "./response.js";
import { editForm } from "./upload.js";
import {
  CallScope,
  contentLengthOf,
  contentTypeOf,
  exchange,
  readAll,
  readJson,
  resolveRetry,
  sleep,
  type Answer,
  type Exchange,
  type HttpContext,
  type ResolvedRetry,
} from "./http.js";
import type {
  CallOptions,
  DownloadedImage,
  Health,
  ImageData,
  ImageEditRequest,
  ImagesRequest,
  ImagesResponse,
  ModelsList,
  RetryOptions,
  RolloutBytes,
  RolloutOptions,
  RolloutRequest,
  RolloutStream,
  StreamedBody,
  VideoContent,
  VideoCreateRequest,
  VideoJob,
  VideoList,
  VideoListQuery,
  WaitForVideoOptions,
} from "./types.js";

export const SDK_VERSION = "0.1.0";

export interface RouterClientOptions {
  /** The router, e.g. `http://127.0.0.1:30080` (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer` on data-plane calls (router `--api-key`). */
  apiKey?: string;
  /** Sent as `Authorization: Bearer` on admin RPCs (router `--admin-api-key`). */
  adminApiKey?: string;
  /** Admin RPC transport; default `connect`. The data plane is always REST over HTTP/1.1. */
  transport?: AdminTransport;
  /** Default time limit of every call in ms (admin RPCs included); default none: generations can take minutes. */
  timeoutMs?: number;
  /** Retry policy of data-plane calls; default none. */
  retry?: RetryOptions;
  /** Connect and gRPC-Web only: binary protobuf (default true) or JSON. */
  useBinaryFormat?: boolean;
  /** Extra Connect interceptors for admin RPCs (run after the bearer one). */
  interceptors?: Interceptor[];
  /** undici dispatcher for the data plane; default a keep-alive Agent without undici's own timeouts. */
  dispatcher?: Dispatcher;
}

export interface RouterClient {
  /** The generated AdminService client. Its failures are `RouterClientError`s too (with `rpcCode`). */
  readonly admin: AdminClient;
  /**
   * Rollout jobs (the RolloutService, with the data-plane key): a whole burst
   * submitted at once, results as they finish, `minComplete`, deadlines,
   * cancel, and the worker and weights of every result.
   */
  readonly rollouts: RolloutJobs;
  readonly baseUrl: string;

  /**
   * `POST /v1/images/generations`. Like every call that answers JSON, the
   * result is a {@link RouterPromise}: `await` it for the answer, or
   * `.withResponse()` for `{ data, meta }` with the weight version, worker id
   * and request id.
   */
  generateImages(req: ImagesRequest, opts?: CallOptions): RouterPromise<ImagesResponse>;
  /** `POST /v1/images/edits` as multipart/form-data (one or several `image`s, optional `mask`). */
  editImages(req: ImageEditRequest, opts?: CallOptions): RouterPromise<ImagesResponse>;
  /**
   * The bytes of an image item (or its `url`): a `url` on the router
   * (`/v1/images/{id}/content`, or absolute under `baseUrl`) is fetched with
   * the data-plane key, one on another origin without it; `b64_json` and
   * `data:` URLs are decoded locally.
   */
  downloadImage(item: ImageData | string, opts?: CallOptions): Promise<DownloadedImage>;

  /** `POST /v1/videos`: answers the queued job at once. */
  createVideo(req: VideoCreateRequest, opts?: CallOptions): RouterPromise<VideoJob>;
  /** `GET /v1/videos/{id}`. */
  getVideo(id: string, opts?: CallOptions): RouterPromise<VideoJob>;
  /** `GET /v1/videos`: the merged list of every video worker's jobs. */
  listVideos(query?: VideoListQuery, opts?: CallOptions): RouterPromise<VideoList>;
  /** `DELETE /v1/videos/{id}`. */
  deleteVideo(id: string, opts?: CallOptions): RouterPromise<VideoJob>;
  /**
   * Polls `getVideo` with exponential backoff until the job is `completed`
   * (resolves with it) or `failed`/`cancelled`/`deleted` (throws code
   * `video_failed`, status 200, `body` = the job, message = the job's error).
   */
  waitForVideo(id: string, opts?: WaitForVideoOptions): Promise<VideoJob>;
  /** `GET /v1/videos/{id}/content`: the MP4 as a stream, never buffered. */
  downloadVideoContent(id: string, opts?: CallOptions): Promise<VideoContent>;

  /** `POST /rollout/generate`: the raw answer, whole (`as: "bytes"`, default). */
  rolloutGenerate(req: RolloutRequest, opts?: RolloutOptions & { as?: "bytes" }): RouterPromise<RolloutBytes>;
  /** `POST /rollout/generate`: the raw answer as a stream (`as: "stream"`). */
  rolloutGenerate(req: RolloutRequest, opts: RolloutOptions & { as: "stream" }): RouterPromise<RolloutStream>;
  rolloutGenerate(req: RolloutRequest, opts?: RolloutOptions): RouterPromise<RolloutBytes | RolloutStream>;

  /** `GET /v1/models`: the cards of every routable worker. */
  listModels(opts?: CallOptions): RouterPromise<ModelsList>;
  /** `GET /health`: resolves for 200 (healthy) and 503 (unhealthy) alike; never retried. */
  health(opts?: CallOptions): Promise<Health>;

  /** Closes pooled connections (data plane and admin). Calls after close fail. */
  close(): Promise<void>;
}

function checkId(id: string, what: string): string {
  if (typeof id !== "string" || id === "") throw new TypeError(`${what} must be a non-empty string`);
  return encodeURIComponent(id);
}

class RouterClientImpl implements RouterClient {
  readonly admin: AdminClient;
  readonly rollouts: RolloutJobs;
  readonly baseUrl: string;
  private readonly http: HttpContext;
  private readonly ownDispatcher: Agent | null;
  private readonly retry: ResolvedRetry | null;
  private readonly timeoutMs: number | undefined;
  private readonly closeAdmin: () => void;

  constructor(options: RouterClientOptions) {
    if (typeof options?.baseUrl !== "string") throw new TypeError("baseUrl is required");
    const url = new URL(options.baseUrl);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`baseUrl must be http(s), got ${options.baseUrl}`);
    if (url.search || url.hash) throw new TypeError("baseUrl must not have a query or fragment");
    this.baseUrl = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    if (options.timeoutMs !== undefined && (!Number.isFinite(options.timeoutMs) || options.timeoutMs < 0)) throw new TypeError(`timeoutMs must be >= 0, got ${options.timeoutMs}`);
    this.timeoutMs = options.timeoutMs || undefined;
    this.retry = resolveRetry(options.retry);
    // undici's defaults end a request after 300 s without headers or body
    // bytes; a video group can take longer, so only timeoutMs limits calls.
    this.ownDispatcher = options.dispatcher ? null : new Agent({ headersTimeout: 0, bodyTimeout: 0 });
    const headers: Record<string, string> = { "user-agent": `sgl-diffusion-router-sdk/${SDK_VERSION}` };
    if (options.apiKey !== undefined) headers["authorization"] = `Bearer ${options.apiKey}`;
    this.http = { baseUrl: this.baseUrl, dispatcher: options.dispatcher ?? this.ownDispatcher!, headers };
    // One transport per key: admin RPCs carry the admin key, the
    // RolloutService (the data plane) the data-plane key.
    const rpc = (key: string | undefined) =>
      createAdmin({
        baseUrl: this.baseUrl,
        transport: options.transport ?? "connect",
        adminApiKey: key,
        timeoutMs: this.timeoutMs,
        useBinaryFormat: options.useBinaryFormat,
        interceptors: options.interceptors ?? [],
      });
    const admin = rpc(options.adminApiKey);
    const data = rpc(options.apiKey);
    this.rollouts = createRolloutJobs(data.transport);
    this.admin = admin.client;
    this.closeAdmin = () => {
      admin.close();
      data.close();
    };
  }

  private scope(what: string, opts: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined } | undefined): CallScope {
    return new CallScope(what, opts?.signal, opts?.timeoutMs ?? this.timeoutMs);
  }

  private spec(opts: CallOptions | undefined, ex: Omit<Exchange, "retry" | "headers">): Exchange {
    return { ...ex, headers: opts?.headers, retry: opts?.retry === undefined ? this.retry : resolveRetry(opts.retry) };
  }

  /** A JSON call, body read whole; the scope ends with it. */
  private json<T>(opts: CallOptions | undefined, ex: Omit<Exchange, "retry" | "headers">): RouterPromise<T> {
    return new RouterPromise(this.jsonAnswer<T>(opts, ex));
  }

  private async jsonAnswer<T>(opts: CallOptions | undefined, ex: Omit<Exchange, "retry" | "headers">): Promise<WithResponse<T>> {
    const what = `${ex.method} ${ex.path}`;
    const scope = this.scope(what, opts);
    try {
      const answer = await exchange(this.http, this.spec(opts, ex), scope);
      const data = await readJson<T>(answer, scope, what);
      return { data, meta: responseMeta(answer.status, answer.headers) };
    } finally {
      scope.dispose();
    }
  }

  /** A streamed call: the scope (time limit, signal) lives until the body closes. */
  private async stream(opts: CallOptions | undefined, ex: Omit<Exchange, "retry" | "headers">): Promise<StreamedBody> {
    const scope = this.scope(`${ex.method} ${ex.path}`, opts);
    let answer: Answer;
    try {
      answer = await exchange(this.http, this.spec(opts, ex), scope);
    } catch (err) {
      scope.dispose();
      throw err;
    }
    answer.body.once("close", () => scope.dispose());
    return {
      status: answer.status,
      contentType: contentTypeOf(answer.headers),
      contentLength: contentLengthOf(answer.headers),
      headers: answer.headers,
      ...answerFacts(flattenHeaders(answer.headers)),
      body: answer.body,
    };
  }

  generateImages(req: ImagesRequest, opts?: CallOptions): RouterPromise<ImagesResponse> {
    return this.json(opts, { method: "POST", path: "/v1/images/generations", json: req, accept: "application/json" });
  }

  editImages(req: ImageEditRequest, opts?: CallOptions): RouterPromise<ImagesResponse> {
    // Building the form reads Blob heads (async); bad input rejects the promise.
    const answer = editForm(req).then((form) => this.jsonAnswer<ImagesResponse>(opts, { method: "POST", path: "/v1/images/edits", form, accept: "application/json" }));
    return new RouterPromise(answer);
  }

  async downloadImage(item: ImageData | string, opts?: CallOptions): Promise<DownloadedImage> {
    const source: ImageData | null = typeof item === "string" ? { url: item } : typeof item === "object" && item !== null ? item : null;
    if (source === null) throw new TypeError("downloadImage takes an image item ({ url } or { b64_json }) or a url string");
    if (typeof source.b64_json === "string" && source.b64_json !== "") {
      const bytes = decodeBase64(source.b64_json, "b64_json");
      return { bytes, contentType: sniffImageType(bytes).type };
    }
    const url = source.url;
    if (typeof url !== "string" || url === "") throw new TypeError("the image item has neither a url nor b64_json");
    if (/^data:/i.test(url)) return decodeDataUrl(url);
    const { ctx, path } = this.imageSource(url);
    const what = `GET ${path}`;
    const scope = this.scope(what, opts);
    try {
      const answer = await exchange(ctx, this.spec(opts, { method: "GET", path, accept: "image/*" }), scope);
      const bytes = await readAll(answer, scope, what);
      const declared = answer.headers["content-type"];
      return { bytes, contentType: typeof declared === "string" && declared !== "" ? declared : sniffImageType(bytes).type };
    } finally {
      scope.dispose();
    }
  }

  /**
   * Where an image url points: on the router (a path, or an absolute URL
   * under baseUrl) it is fetched with the data-plane key; anywhere else the
   * key must not leak, so only the user agent goes along.
   */
  private imageSource(url: string): { ctx: HttpContext; path: string } {
    if (url.startsWith("/")) return { ctx: this.http, path: url };
    let abs: URL;
    try {
      abs = new URL(url);
    } catch {
      return { ctx: this.http, path: `/${url}` };
    }
    if (abs.protocol !== "http:" && abs.protocol !== "https:") throw new TypeError(`image url must be http(s), a path on the router or a data: URL, got ${abs.protocol}`);
    if (abs.href.startsWith(`${this.baseUrl}/`)) return { ctx: this.http, path: abs.href.slice(this.baseUrl.length) };
    const foreign: HttpContext = { baseUrl: abs.origin, dispatcher: this.http.dispatcher, headers: { "user-agent": this.http.headers["user-agent"]! } };
    return { ctx: foreign, path: `${abs.pathname}${abs.search}` };
  }

  createVideo(req: VideoCreateRequest, opts?: CallOptions): RouterPromise<VideoJob> {
    return this.json(opts, { method: "POST", path: "/v1/videos", json: req, accept: "application/json" });
  }

  getVideo(id: string, opts?: CallOptions): RouterPromise<VideoJob> {
    return this.json(opts, { method: "GET", path: `/v1/videos/${checkId(id, "video id")}`, accept: "application/json" });
  }

  listVideos(query: VideoListQuery = {}, opts?: CallOptions): RouterPromise<VideoList> {
    const q = new URLSearchParams();
    if (query.after !== undefined) q.set("after", query.after);
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.order !== undefined) q.set("order", query.order);
    const qs = q.toString();
    return this.json(opts, { method: "GET", path: `/v1/videos${qs ? `?${qs}` : ""}`, accept: "application/json" });
  }

  deleteVideo(id: string, opts?: CallOptions): RouterPromise<VideoJob> {
    return this.json(opts, { method: "DELETE", path: `/v1/videos/${checkId(id, "video id")}`, accept: "application/json" });
  }

  async waitForVideo(id: string, opts: WaitForVideoOptions = {}): Promise<VideoJob> {
    checkId(id, "video id");
    const first = opts.pollIntervalMs ?? 500;
    const max = Math.max(first, opts.maxIntervalMs ?? 5000);
    if (!(first > 0)) throw new TypeError(`pollIntervalMs must be > 0, got ${first}`);
    const scope = new CallScope(`waiting for video ${id}`, opts.signal, opts.timeoutMs);
    let interval = first;
    try {
      for (;;) {
        const job = await this.getVideo(id, { signal: scope.signal });
        if (job.status === "completed") return job;
        if (job.status === "failed" || job.status === "cancelled" || job.status === "deleted") {
          const message = job.error?.message ?? `video ${id} ended ${job.status}`;
          throw new RouterClientError({ status: 200, code: "video_failed", message, body: job });
        }
        await sleep(interval, scope.signal);
        interval = Math.min(max, interval * 1.5);
      }
    } finally {
      scope.dispose();
    }
  }

  downloadVideoContent(id: string, opts?: CallOptions): Promise<VideoContent> {
    return this.stream(opts, { method: "GET", path: `/v1/videos/${checkId(id, "video id")}/content` });
  }

  rolloutGenerate(req: RolloutRequest, opts?: RolloutOptions & { as?: "bytes" }): RouterPromise<RolloutBytes>;
  rolloutGenerate(req: RolloutRequest, opts: RolloutOptions & { as: "stream" }): RouterPromise<RolloutStream>;
  rolloutGenerate(req: RolloutRequest, opts?: RolloutOptions): RouterPromise<RolloutBytes | RolloutStream>;
  rolloutGenerate(req: RolloutRequest, opts: RolloutOptions = {}): RouterPromise<RolloutBytes | RolloutStream> {
    return new RouterPromise(this.rolloutAnswer(req, opts));
  }

  private async rolloutAnswer(req: RolloutRequest, opts: RolloutOptions): Promise<WithResponse<RolloutBytes | RolloutStream>> {
    const ex = { method: "POST", path: "/rollout/generate", json: req, accept: opts.accept ?? "application/json" } as const;
    const as = opts.as ?? "bytes";
    if (as === "stream") {
      const data = await this.stream(opts, ex);
      return { data, meta: responseMeta(data.status, data.headers) };
    }
    if (as !== "bytes") throw new TypeError(`as must be "bytes" or "stream", got ${JSON.stringify(as)}`);
    const what = "POST /rollout/generate";
    const scope = this.scope(what, opts);
    try {
      const answer = await exchange(this.http, this.spec(opts, ex), scope);
      const bytes = await readAll(answer, scope, what);
      const meta = responseMeta(answer.status, answer.headers);
      const data: RolloutBytes = { status: answer.status, contentType: contentTypeOf(answer.headers), headers: answer.headers, requestId: meta.requestId, weightVersion: meta.weightVersion, workerId: meta.workerId, bytes };
      return { data, meta };
    } finally {
      scope.dispose();
    }
  }

  listModels(opts?: CallOptions): RouterPromise<ModelsList> {
    return this.json(opts, { method: "GET", path: "/v1/models", accept: "application/json" });
  }

  async health(opts?: CallOptions): Promise<Health> {
    const what = "GET /health";
    const scope = this.scope(what, opts);
    try {
      const ex = this.spec({ ...opts, retry: false }, { method: "GET", path: "/health", accept: "application/json", okStatuses: [503] });
      const answer = await exchange(this.http, ex, scope);
      const body = await readJson<Health>(answer, scope, what);
      // 503 with a health report is an answer ("unhealthy"); any other 503 (e.g. shutting down) is an error.
      if (answer.status !== 200 && typeof (body as { status?: unknown } | null)?.status !== "string") {
        throw errorFromAnswer(answer.status, contentTypeOf(answer.headers), JSON.stringify(body), answer.headers);
      }
      return body;
    } finally {
      scope.dispose();
    }
  }

  async close(): Promise<void> {
    this.closeAdmin();
    if (this.ownDispatcher) await this.ownDispatcher.close();
  }
}

/**
 * A client of one router: `admin` (the AdminService over Connect, gRPC or
 * gRPC-Web), rollout jobs and the data plane (REST). Every failure is a
 * {@link RouterClientError}.
 */
export function createRouterClient(options: RouterClientOptions): RouterClient {
  return new RouterClientImpl(options);
}
