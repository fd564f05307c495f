/**
 * What the scheduler needs to know of a generation request, read once from
 * its JSON body: which model it names, how much GPU work it is, which
 * requests a worker could batch it with, and the client's routing key.
 * Pure: no I/O, no registry.
 */

/**
 * Which worker kinds may serve a request. `video` is an async video job
 * (`POST /v1/videos`: answered at once, the work runs on); `generation` a
 * native generation route (`/rollout/generate`, `/v1/diffusion/generate`)
 * answered when done, by an image worker, or by a video worker when its
 * body asks for video (`video_generation`). `mesh` is an async 3D job
 * (`POST /v1/meshes`) for an I2M worker: answered at once, and the router
 * does not model its GPU time.
 */
export type RouteKind = "image" | "video" | "generation" | "video_generation" | "mesh" | "other";

/**
 * Kinds the plan gives no GPU slot: forwarded routes the router does not
 * know (LoRA calls, newer routes) and mesh creates (held by a refit like
 * any request, then sent at once to a worker of their kind).
 */
export function holdsNoPlanSlot(kind: RouteKind): boolean {
  return kind === "other" || kind === "mesh";
}

/** The inputs of the cost model, with the worker's defaults filled where a field is missing. */
export interface WorkFeatures {
  /** Output megapixels per frame (width × height / 2^20). */
  megapixels: number;
  /** Denoising steps. */
  steps: number;
  /** Latent frames: 1 for images, (frames - 1) / 4 + 1 for videos (the VAE's 4x temporal compression). */
  latentFrames: number;
  /** Outputs of the request (n / num_outputs_per_prompt). */
  outputs: number;
  /** Input images (edits, image-to-video, image_path): encoded before denoising, and never batched. */
  inputImages: number;
}

export interface RequestFacts {
  /** The route's kind; a native generation route whose body asks for video is `video_generation`. */
  readonly kind: RouteKind;
  /** The `model` field, or null. Real workers ignore it; the router uses it to choose among workers. */
  readonly model: string | null;
  /** null when the body could not be read (multipart, streamed, not JSON): the cost model then uses its typical cost. */
  readonly work: WorkFeatures | null;
  /** Equal keys can share one batch on a worker (every sampling parameter equal except prompt and seed); null = never batched. */
  readonly batchKey: string | null;
  /** The client's `X-Routing-Key` header or `routing_key` field: one key, one worker (bounded load). */
  readonly routingKey: string | null;
}

/** Worker defaults where a request leaves a field out (SGLang's OpenAI-style routes; Qwen-Image's 50 steps). */
const DEFAULT_IMAGE_SIZE = 1024;
const DEFAULT_VIDEO_WIDTH = 1280;
const DEFAULT_VIDEO_HEIGHT = 720;
const DEFAULT_STEPS = 50;
const DEFAULT_FPS = 24;
const DEFAULT_SECONDS = 4;
/** Largest values taken at face value: a typo of 10^9 steps must not make one request look like a year of work. */
const MAX_SIDE = 16_384;
const MAX_STEPS = 1_000;
const MAX_FRAMES = 10_000;
const MAX_OUTPUTS = 64;

/**
 * Fields that do not change how a batch runs: SGLang batches requests whose
 * sampling parameters are equal except prompt, seed, request id and output
 * names. Routing fields are the router's.
 */
const notBatchParameters = new Set(["prompt", "seed", "request_id", "user", "routing_key", "output_path", "output_file_name", "response_format", "model"]);
/** Fields that carry an input image: such requests never batch. */
const inputImageFields = ["image", "image_path", "input_reference", "image_url", "images", "mask", "input_image"];

const noFacts = (kind: RouteKind, routingKey: string | null): RequestFacts => ({ kind, model: null, work: null, batchKey: null, routingKey });

/** Facts of a request without a readable body. */
export function factsWithoutBody(kind: RouteKind, routingKeyHeader: string | null): RequestFacts {
  return noFacts(kind, routingKeyHeader);
}

/**
 * Reads the facts from a parsed JSON body. Never throws: a field of the wrong
 * type is treated as missing (the worker will answer the client's mistake;
 * the router only needs an estimate).
 */
export function readRequestFacts(kind: RouteKind, body: unknown, routingKeyHeader: string | null): RequestFacts {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return noFacts(kind, routingKeyHeader);
  const b = body as Record<string, unknown>;
  const routingKey = routingKeyHeader ?? (typeof b.routing_key === "string" && b.routing_key !== "" ? b.routing_key : null);
  const model = typeof b.model === "string" && b.model !== "" ? b.model : null;
  const video = kind === "video" || positive(b.num_frames) !== null || (kind === "generation" && positive(b.fps) !== null);
  const [width, height] = dimensions(b, video);
  const steps = clamp(positive(b.num_inference_steps) ?? DEFAULT_STEPS, MAX_STEPS);
  const frames = video ? framesOf(b) : 1;
  const outputs = clamp(positive(b.n) ?? positive(b.num_outputs_per_prompt) ?? 1, MAX_OUTPUTS);
  const inputImages = inputImageFields.reduce((n, f) => n + (b[f] !== undefined && b[f] !== null && b[f] !== "" ? 1 : 0), 0);
  const work: WorkFeatures = {
    megapixels: (width * height) / (1 << 20),
    steps,
    latentFrames: frames <= 1 ? 1 : Math.floor((frames - 1) / 4) + 1,
    outputs,
    inputImages,
  };
  // A native generation route serves both kinds: the body says which (video
  // fields), so that it never reaches a worker that cannot make it.
  const resolved: RouteKind = kind === "generation" && video ? "video_generation" : kind;
  return { kind: resolved, model, work, batchKey: inputImages > 0 || kind === "other" ? null : batchKeyOf(kind, b), routingKey };
}

function positive(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : null;
}

function clamp(n: number, max: number): number {
  return Math.min(Math.max(n, 1), max);
}

function dimensions(b: Record<string, unknown>, video: boolean): [number, number] {
  let width = video ? DEFAULT_VIDEO_WIDTH : DEFAULT_IMAGE_SIZE;
  let height = video ? DEFAULT_VIDEO_HEIGHT : DEFAULT_IMAGE_SIZE;
  if (typeof b.size === "string") {
    const m = /^\s*(\d+)\s*[x*×]\s*(\d+)\s*$/i.exec(b.size);
    if (m) {
      width = Number(m[1]);
      height = Number(m[2]);
    }
  }
  // width/height override size, as in the worker.
  width = positive(b.width) ?? width;
  height = positive(b.height) ?? height;
  return [clamp(width, MAX_SIDE), clamp(height, MAX_SIDE)];
}

function framesOf(b: Record<string, unknown>): number {
  const frames = positive(b.num_frames);
  if (frames !== null) return clamp(frames, MAX_FRAMES);
  const seconds = positive(b.seconds) ?? DEFAULT_SECONDS;
  const fps = positive(b.fps) ?? DEFAULT_FPS;
  return clamp(Math.round(seconds * fps), MAX_FRAMES);
}

/** The route and every batch-relevant field, in a stable order. */
function batchKeyOf(kind: RouteKind, b: Record<string, unknown>): string {
  const keys = Object.keys(b)
    .filter((k) => !notBatchParameters.has(k))
    .sort();
  let key = kind;
  for (const k of keys) key += `\u0000${k}=${JSON.stringify(b[k])}`;
  return key;
}
