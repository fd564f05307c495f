import { randomUUID } from "node:crypto";
import { detailError, discardBody, isMultipart, parseModelBody, readBody, sendBytes, sendJson, validationError } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { parseMultipart, type MultipartForm } from "./multipart.js";
import { renderPng } from "./png.js";
import { DEFAULT_SEED, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import type { Route, RouteContext } from "./route.js";
import { Fields, parseSize } from "./validate.js";
import type { ResolvedSimOptions } from "./options.js";
import type { SimState } from "./state.js";

/**
 * `/v1/images/generations`, `/v1/images/edits` and `/v1/images/{id}/content`,
 * as SGLang's image_api.py: `n` is clamped to 1..10, a malformed `size` is
 * ignored, `response_format` is looked at only after the GPU work, and every
 * output gets its own item (`revised_prompt` = the prompt, an absolute
 * `file_path`). In url mode each item's `url` is
 * `/v1/images/{id}/content` (`?variant=i` when n > 1): the file stays on
 * this worker only, so a router must send the content request there.
 */

/** How many url-mode pictures a worker keeps; older ones are forgotten (404). */
const MAX_STORED_IMAGES = 512;

interface StoredImage {
  pngs: Buffer[];
  weights: string;
}

interface ImageRequest {
  prompt: string;
  n: number;
  responseFormat: string;
  width: number;
  height: number;
  steps: number;
  seed: number;
}

/** Validates the fields shared by generations (JSON) and edits (form). */
function readImageRequest(body: Record<string, unknown>): ImageRequest {
  const f = new Fields(body);
  const prompt = f.requiredString("prompt");
  const n = Math.max(1, Math.min(f.int("n") ?? 1, 10));
  const responseFormat = (f.string("response_format") ?? "url").toLowerCase();
  const size = f.string("size");
  const width = f.int("width", { ge: 1 });
  const height = f.int("height", { ge: 1 });
  const steps = f.int("num_inference_steps", { ge: 1 }) ?? 50; // Qwen-Image's default
  const seed = f.int("seed") ?? DEFAULT_SEED;
  f.string("model");
  f.string("negative_prompt");
  f.number("guidance_scale");
  f.number("true_cfg_scale");
  f.literal("output_format", ["png", "jpeg", "webp"] as const);
  f.done();
  const [sw, sh] = parseSize(size) ?? [1024, 1024];
  return { prompt, n, responseFormat, width: width ?? sw, height: height ?? sh, steps, seed };
}

function workOf(request: ImageRequest): Work {
  return { width: request.width, height: request.height, steps: request.steps, frames: 1, outputs: request.n };
}

/**
 * The batch key `/v1/images/generations` gives a JSON body, or the 422 a bad
 * body gets (it never reaches the queue). Exported for the differential
 * test of the router's key against this worker's rule.
 */
export function imageGenerationBatchKey(options: Pick<ResolvedSimOptions, "batchingMaxSize" | "taskType">, body: Record<string, unknown>): string | null {
  return batchKeyOf(options, "images", workOf(readImageRequest(body)), body, false);
}

function outputPath(id: string, n: number, i: number): string {
  return `/sim/outputs/${id}${n > 1 ? `_${i}` : ""}.png`;
}

/** The answer's items, one per output, once the pictures exist. */
function items(id: string, request: ImageRequest, pngs: Buffer[]): Record<string, unknown>[] {
  const { prompt, n, responseFormat } = request;
  if (responseFormat !== "url" && responseFormat !== "b64_json") {
    throw detailError(400, `response_format=${responseFormat} is not supported`);
  }
  return pngs.map((png, i) => ({
    b64_json: responseFormat === "b64_json" ? png.toString("base64") : null,
    url: responseFormat === "url" ? `/v1/images/${id}/content${n > 1 ? `?variant=${i}` : ""}` : null,
    revised_prompt: prompt,
    file_path: outputPath(id, n, i),
  }));
}

function variantOf(url: URL, count: number): number {
  const variant = url.searchParams.get("variant");
  const index = variant === null ? 0 : /^-?\d+$/.test(variant.trim()) ? Number(variant) : NaN;
  if (!(index >= 0 && index < count)) throw detailError(404, `Image variant ${variant} not found`);
  return index;
}

export function imageRoutes(state: SimState): Route[] {
  const store = new Map<string, StoredImage>();

  function keep(id: string, image: StoredImage): void {
    store.set(id, image);
    // Map iterates in insertion order: the first key is the oldest.
    while (store.size > MAX_STORED_IMAGES) store.delete(store.keys().next().value!);
  }

  /** `body` is null for edits: a request with an input image never batches. */
  async function generate(ctx: RouteContext, request: ImageRequest, body: Record<string, unknown> | null, extra: Record<string, unknown>): Promise<void> {
    const work = workOf(request);
    const batchKey = body === null ? null : batchKeyOf(state.options, "images", work, body, false);
    const id = randomUUID();
    const made = await runGeneration(state, work, () =>
      Promise.all(Array.from({ length: request.n }, (_, i) => renderPng(request.prompt, request.seed + i, request.width, request.height))),
      batchKey,
    );
    keep(id, { pngs: made.result, weights: made.weights });
    const answer = { id, created: Math.floor(Date.now() / 1000), data: items(id, request, made.result), peak_memory_mb: peakMemoryMb(work), inference_time_s: made.inferenceTimeS };
    sendJson(ctx.res, 200, { ...answer, ...extra }, simHeaders(state, made.weights, made.batch));
  }

  async function generations(ctx: RouteContext): Promise<void> {
    const body = parseModelBody(await readBody(ctx.req, state.stats));
    await generate(ctx, readImageRequest(body), body, {});
  }

  async function edits(ctx: RouteContext): Promise<void> {
    // The real route declares Form/File parameters: a JSON body is simply a
    // form with every required field missing.
    let form: MultipartForm = { fields: {}, files: [], bytes: 0, sha256: "" };
    if (isMultipart(ctx.req)) form = await parseMultipart(ctx.req, state.stats);
    else await discardBody(ctx.req, state.stats);
    if (form.fields["prompt"] === undefined) throw validationError([{ type: "missing", loc: ["body", "prompt"], msg: "Field required", input: null }]);
    if (form.files.length === 0 && form.fields["url"] === undefined && form.fields["url[]"] === undefined) {
      throw detailError(422, "Field 'image' or 'url' is required");
    }
    await generate(ctx, readImageRequest(form.fields), null, {
      // Sim-only facts (a real worker has no such fields; clients ignore unknown ones).
      input_bytes: form.bytes,
      input_sha256: form.sha256,
      input_files: form.files.map((f) => ({ field: f.field, filename: f.filename, bytes: f.bytes, sha256: f.sha256 })),
    });
  }

  async function content(ctx: RouteContext): Promise<void> {
    const image = store.get(ctx.params[0]!);
    if (!image) throw detailError(404, "Image not found");
    const png = image.pngs[variantOf(ctx.url, image.pngs.length)]!;
    sendBytes(ctx.res, 200, "image/png", png, { "x-sim-weights": image.weights });
  }

  return [
    { method: "POST", pattern: /^\/v1\/images\/generations$/, name: "POST /v1/images/generations", kind: "generation", handler: generations },
    { method: "POST", pattern: /^\/v1\/images\/edits$/, name: "POST /v1/images/edits", kind: "generation", handler: edits },
    { method: "GET", pattern: /^\/v1\/images\/([^/]+)\/content$/, name: "GET /v1/images/{id}/content", kind: "control", handler: content },
  ];
}
