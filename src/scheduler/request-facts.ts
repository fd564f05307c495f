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
 * Body fields outside a worker's batch signature. SGLang batches requests
 * whose SamplingParams are equal except the `batch_sig_exclude` ones
 * (prompt, seed, request id, output names); `response_format` is read by the
 * route, `output_format` and `background` only name the output file, and
 * `model`, `user` and the router's `routing_key` are no sampling parameter.
 */
const notBatchParameters = new Set([
  "prompt", "seed", "request_id", "rid", "user", "routing_key", "output_path", "output_file_name",
  "response_format", "output_format", "background", "model",
]);
/** The shape: in the key as resolved (size or width/height, defaults filled, n clamped), not as spelt. */
const shapeFields = new Set(["size", "width", "height", "num_inference_steps", "n", "num_outputs_per_prompt", "num_frames", "seconds", "fps", "num_images"]);
/** The OpenAI image routes make 1..10 outputs whatever `n` says (SGLang image_api.py). */
const MAX_IMAGE_OUTPUTS = 10;
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
  // The image routes make one frame whatever the body says (num_frames = 1).
  const video = kind === "video" || (kind !== "image" && positive(b.num_frames) !== null) || (kind === "generation" && positive(b.fps) !== null);
  const [width, height] = dimensions(b, video);
  const stepsAsked = positive(b.num_inference_steps) ?? DEFAULT_STEPS;
  const steps = clamp(stepsAsked, MAX_STEPS);
  const frames = video ? framesOf(b) : 1;
  const outputs = kind === "image" ? imageOutputs(b.n) : clamp(positive(b.n) ?? positive(b.num_outputs_per_prompt) ?? 1, MAX_OUTPUTS);
  const inputImages = inputImageFields.reduce((n, f) => n + (b[f] !== undefined && b[f] !== null && b[f] !== "" ? 1 : 0), 0);
  const work: WorkFeatures = {
    megapixels: (clamp(width, MAX_SIDE) * clamp(height, MAX_SIDE)) / (1 << 20),
    steps,
    latentFrames: frames <= 1 ? 1 : Math.floor((frames - 1) / 4) + 1,
    outputs,
    inputImages,
  };
  // A native generation route serves both kinds: the body says which (video
  // fields), so that it never reaches a worker that cannot make it.
  const resolved: RouteKind = kind === "generation" && video ? "video_generation" : kind;
  const batchKey = inputImages > 0 || kind === "other" ? null : batchKeyOf(kind, `${width}x${height}|${stepsAsked}|${frames}|${outputs}`, b);
  return { kind: resolved, model, work, batchKey, routingKey };
}

function positive(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** SGLang's `max(1, min(int(n or 1), 10))`: 0, negative or missing is 1. */
function imageOutputs(n: unknown): number {
  const v = typeof n === "number" ? n : typeof n === "string" && /^\s*[-+]?\d+\s*$/.test(n) ? Number(n) : Number.NaN;
  return Number.isInteger(v) ? Math.max(1, Math.min(v, MAX_IMAGE_OUTPUTS)) : 1;
}

function clamp(n: number, max: number): number {
  return Math.min(Math.max(n, 1), max);
}

function dimensions(b: Record<string, unknown>, video: boolean): [number, number] {
  let width = video ? DEFAULT_VIDEO_WIDTH : DEFAULT_IMAGE_SIZE;
  let height = video ? DEFAULT_VIDEO_HEIGHT : DEFAULT_IMAGE_SIZE;
  if (typeof b.size === "string") {
    // The worker's own pattern: "WxH" or "W*H"; anything else is its default size.
    const m = /^\s*(\d+)\s*[x*]\s*(\d+)\s*$/i.exec(b.size);
    if (m) {
      width = Number(m[1]);
      height = Number(m[2]);
    }
  }
  // width/height override size, as in the worker.
  width = positive(b.width) ?? width;
  height = positive(b.height) ?? height;
  return [width, height];
}

function framesOf(b: Record<string, unknown>): number {
  const frames = positive(b.num_frames);
  if (frames !== null) return clamp(frames, MAX_FRAMES);
  const seconds = positive(b.seconds) ?? DEFAULT_SECONDS;
  const fps = positive(b.fps) ?? DEFAULT_FPS;
  return clamp(Math.round(seconds * fps), MAX_FRAMES);
}

/** JSON with object keys sorted at every level: the worker compares dicts sorted by key. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * The route, the resolved shape and every other sampling field, in a stable
 * order; a field sent as null is a field not sent (the worker's None).
 * Fields the router does not know stay in: a model's sampling contract can
 * declare extra fields (flow_shift, max_sequence_length, ...), and keeping
 * two requests apart that a worker would batch costs less than planning a
 * batch the worker splits.
 */
function batchKeyOf(kind: RouteKind, shape: string, b: Record<string, unknown>): string {
  let key = `${kind}|${shape}`;
  for (const k of Object.keys(b).sort()) {
    if (notBatchParameters.has(k) || shapeFields.has(k) || b[k] === null || b[k] === undefined) continue;
    key += `\u0000${k}=${stableJson(b[k])}`;
  }
  return key;
}
