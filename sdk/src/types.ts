/**
 * Request and answer shapes of the data plane: the OpenAI-compatible routes
 * and the SGLang diffusion worker's native ones, as the router passes them
 * through. Field names are the wire names (snake_case). Request types accept
 * extra fields: workers of different releases take different ones, and the
 * router forwards them untouched.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type { AnswerFacts } from "./headers.js";

/** Options every data-plane call takes. */
export interface CallOptions {
  /** Aborts the call (and the body stream it returned); the error's code is `aborted`. */
  signal?: AbortSignal;
  /**
   * Time limit of the whole call in ms, retries and (for streamed answers)
   * reading the body included; the error's code is `timeout`. Overrides the
   * client's `timeoutMs`; 0 = none.
   */
  timeoutMs?: number;
  /** Overrides the client's retry policy for this call (`false`: no retry). */
  retry?: RetryOptions | false;
  /** Extra request headers (e.g. `x-request-id`). */
  headers?: Record<string, string>;
}

/**
 * Opt-in retries: only when the connection failed before an answer, or on
 * 503 (no healthy worker, queue full, ...), honouring `Retry-After`. Never on
 * other statuses. Bodies are JSON or in-memory forms, so a request can always
 * be sent again.
 */
export interface RetryOptions {
  /** Total tries, the first included (1 = no retry). */
  attempts: number;
  /** First backoff; doubles per try (with jitter). Default 500 ms. */
  baseDelayMs?: number;
  /** Backoff ceiling (a longer `Retry-After` still wins). Default 10 s. */
  maxDelayMs?: number;
}

// ---------------------------------------------------------------- images

export interface ImagesRequest {
  prompt: string;
  model?: string;
  /** 1-10, default 1. */
  n?: number;
  /** Default `url` (a path on the router: `/v1/images/{id}/content`). */
  response_format?: "url" | "b64_json";
  /** `"WxH"`, default `"1024x1024"`; `width`/`height` override it. */
  size?: string;
  width?: number;
  height?: number;
  num_inference_steps?: number;
  guidance_scale?: number;
  true_cfg_scale?: number;
  negative_prompt?: string;
  seed?: number;
  output_format?: "png" | "jpeg" | "webp";
  output_quality?: string | number;
  output_compression?: number;
  generator_device?: string;
  enable_teacache?: boolean;
  diffusers_kwargs?: Record<string, unknown>;
  /** Ignored by workers; older clients send it. */
  num_images?: number;
  [field: string]: unknown;
}

export interface ImageData {
  b64_json?: string | null;
  url?: string | null;
  revised_prompt?: string | null;
  file_path?: string | null;
}

export interface ImagesResponse {
  id: string;
  created: number;
  data: ImageData[];
  peak_memory_mb?: number | null;
  inference_time_s?: number | null;
}

/**
 * A file of a multipart upload: a `Blob` or `File` (a File keeps its name),
 * raw bytes (`Buffer`, `Uint8Array`), or bytes with a name and type. Without
 * a name the SDK sends `<field>.<ext>` (the extension and type read from the
 * bytes' signature: png, jpeg, webp, else `bin`/`application/octet-stream`):
 * servers only treat a part with a file name as a file.
 */
export type Uploadable = Blob | Uint8Array | NamedUpload;

export interface NamedUpload {
  data: Blob | Uint8Array;
  filename?: string;
  /** Default: the Blob's type, else read from the bytes' signature. */
  contentType?: string;
}

/**
 * `POST /v1/images/edits` as multipart/form-data, OpenAI's shape. Fields
 * other than `image` and `mask` must be strings, numbers or booleans (sent as
 * text); `undefined` and `null` ones are left out.
 */
export interface ImageEditRequest {
  /** One or several input images (several go as repeated `image` parts). */
  image: Uploadable | readonly Uploadable[];
  prompt: string;
  mask?: Uploadable;
  model?: string;
  /** 1-10, default 1. */
  n?: number;
  /** `"WxH"`. */
  size?: string;
  response_format?: "url" | "b64_json";
  negative_prompt?: string;
  seed?: number;
  num_inference_steps?: number;
  guidance_scale?: number;
  true_cfg_scale?: number;
  output_format?: "png" | "jpeg" | "webp";
  [field: string]: unknown;
}

/** An image's bytes, from {@link ImageData.url} (fetched) or {@link ImageData.b64_json} (decoded). */
export interface DownloadedImage {
  bytes: Buffer;
  /** The answer's `Content-Type`, or (for `b64_json` and untyped answers) read from the bytes' signature. */
  contentType: string;
}

// ---------------------------------------------------------------- videos

export interface VideoCreateRequest {
  prompt: string;
  /** Path or URL of a reference image (image-to-video); multipart uploads are not sent by this SDK. */
  input_reference?: string;
  model?: string;
  n?: number;
  /** Default 4. */
  seconds?: number | string;
  /** `"WxH"`. */
  size?: string;
  /** Default 24. */
  fps?: number;
  /** Default fps x seconds. */
  num_frames?: number;
  seed?: number;
  width?: number;
  height?: number;
  num_inference_steps?: number;
  guidance_scale?: number;
  guidance_scale_2?: number;
  negative_prompt?: string;
  [field: string]: unknown;
}

export type VideoStatus = "queued" | "in_progress" | "completed" | "failed" | "cancelling" | "cancelled" | "deleted" | (string & {});

export interface VideoJob {
  id: string;
  object: "video";
  model?: string;
  status: VideoStatus;
  progress?: number;
  created_at?: number;
  /** `"WxH"`. */
  size?: string;
  seconds?: string | number;
  quality?: string;
  url?: string | null;
  remixed_from_video_id?: string | null;
  completed_at?: number | null;
  expires_at?: number | null;
  error?: { message: string; code?: string } | null;
  file_path?: string | null;
  /** One path per output when the job made several (`num_outputs_per_prompt` / `n`). */
  file_paths?: string[] | null;
  /** Outputs the job makes. */
  num_outputs?: number | null;
  peak_memory_mb?: number | null;
  inference_time_s?: number | null;
}

export interface VideoListQuery {
  /** Id of the last job of the previous page. */
  after?: string;
  /** 1-100, default 20. */
  limit?: number;
  /** By `created_at`; default `desc`. */
  order?: "asc" | "desc";
}

export interface VideoList {
  object: "list";
  data: VideoJob[];
  first_id?: string | null;
  last_id?: string | null;
  has_more?: boolean;
}

export interface WaitForVideoOptions {
  /** First poll interval; default 500 ms. */
  pollIntervalMs?: number;
  /** The interval grows x1.5 per poll up to this; default 5000 ms. */
  maxIntervalMs?: number;
  /** Overall limit; default none. Each poll also obeys the client's `timeoutMs`. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A streamed answer body: read it to the end or destroy it. `requestId`,
 * `weightVersion` and `workerId` are the router's `X-Request-Id`,
 * `X-Weight-Version` and `X-Worker-Id` (null when absent).
 */
export interface StreamedBody extends AnswerFacts {
  status: number;
  contentType: string;
  /** From `Content-Length`, null when the answer is chunked. */
  contentLength: number | null;
  headers: IncomingHttpHeaders;
  body: Readable;
}

export type VideoContent = StreamedBody;

// ---------------------------------------------------------------- rollout

export interface RolloutRequest {
  prompt: string;
  negative_prompt?: string;
  /** The worker expands it to seed..seed+M-1 for M outputs. */
  seed?: number;
  width?: number;
  height?: number;
  num_inference_steps?: number;
  /** M, the group size (8-16 typical). */
  num_outputs_per_prompt?: number;
  guidance_scale?: number;
  true_cfg_scale?: number;
  num_frames?: number;
  fps?: number;
  rollout?: boolean;
  rollout_sde_type?: string;
  rollout_noise_level?: number;
  rollout_return_denoising_env?: boolean;
  rollout_return_dit_trajectory?: boolean;
  rollout_sde_step_indices?: number[];
  image_path?: string;
  [field: string]: unknown;
}

export interface RolloutOptions extends CallOptions {
  /** Sent as `Accept`; newer workers answer MessagePack for `application/msgpack`. Default JSON. */
  accept?: "application/json" | "application/msgpack";
  /** `bytes` (default): the whole body as one Buffer. `stream`: the body as a Node Readable. */
  as?: "bytes" | "stream";
}

/** A whole rollout answer; `requestId`, `weightVersion`, `workerId` as in {@link StreamedBody}. */
export interface RolloutBytes extends AnswerFacts {
  status: number;
  /** As the worker sent it (e.g. `application/json`, `application/msgpack`). */
  contentType: string;
  headers: IncomingHttpHeaders;
  /** The raw answer, never parsed: a list of {@link RolloutSample} in JSON or MessagePack. */
  bytes: Buffer;
}

export type RolloutStream = StreamedBody;

/** A tensor as SGLang serializes it: base64 of a safetensors file. */
export interface TensorPayload {
  __tensor__: true;
  data: string;
  shape: number[];
  dtype: string;
}

/** One entry of a `/rollout/generate` answer, for callers that decode it. */
export interface RolloutSample {
  request_id: string;
  prompt: string;
  seed: number;
  generated_output: TensorPayload | null;
  rollout_log_probs: TensorPayload | null;
  denoising_env: Record<string, unknown> | null;
  dit_trajectory: Record<string, unknown> | null;
  inference_time_s: number;
  peak_memory_mb: number;
  [field: string]: unknown;
}

// ---------------------------------------------------------------- models, health

export interface ModelCard {
  id: string;
  object: "model";
  created?: number;
  owned_by?: string;
  root?: string | null;
  parent?: string | null;
  max_model_len?: number | null;
  num_gpus?: number;
  /** T2I, I2I, TI2I, T2V, I2V, TI2V, I2M. */
  task_type?: string;
  dit_precision?: string;
  vae_precision?: string;
  pipeline_name?: string;
  pipeline_class?: string;
  [field: string]: unknown;
}

export interface ModelsList {
  object: "list";
  data: ModelCard[];
}

/** What the pool's refit is doing (`refit_phase` of `GET /health`). */
export type RefitPhase = "idle" | "draining" | "updating" | "open" | "sleeping";

/** `GET /health`, the router's own answer: 200 (healthy, or degraded) or 503 (unhealthy); both resolve. */
export interface Health {
  /**
   * `degraded`: some worker is healthy, but a launcher-managed worker failed
   * (see `failed_workers`); `sleeping`: no worker is awake because the pool
   * was put to sleep on purpose (200, like the others but `unhealthy`).
   */
  status: "healthy" | "degraded" | "sleeping" | "unhealthy";
  /** Neither dead nor sleeping. */
  healthy_workers: number;
  total_workers: number;
  dead_workers: number;
  /** Launcher-managed workers the launcher gave up on (past `max_restarts`, or never healthy); counted in `total_workers`. */
  failed_workers: number;
  sleeping_workers: number;
  /** Workers a request can be sent to now. */
  routable_workers: number;
  /** The pool's weight version: `"0"` (base weights) until the first refit. */
  weight_version: string;
  /** `idle` unless a refit or sleep is under way. */
  refit_phase: RefitPhase;
  /** Model -> version, only once a refit named a model (a pool serving several models). */
  weight_versions?: Record<string, string>;
  /** Where the router keeps its state: `--state-file`, `--state-store etcd://...` (shared with other routers), or nowhere. */
  state_store: "file" | "etcd" | "none";
  /** True while this router runs a refit or sleep/wake under the lock shared through etcd. */
  holds_refit_lock: boolean;
}
