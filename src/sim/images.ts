import { randomUUID } from "node:crypto";
import { detailError, discardBody, isMultipart, parseModelBody, readBody, sendBytes, sendJson, validationError } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { parseMultipart, type MultipartForm } from "./multipart.js";
import { renderPng } from "./png.js";
import { DEFAULT_SEED, assertAwake, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import type { Route, RouteContext } from "./route.js";
import { Fields, parseSize } from "./validate.js";
import type { SimState } from "./state.js";

/**
 * `/v1/images/generations`, `/v1/images/edits` and `/v1/images/{id}/content`.
 * With `response_format: url` the picture stays on this worker only (a
 * router must send the content request to the worker that made it).
 */

/** How many url-mode pictures a worker keeps; older ones are forgotten (404). */
const MAX_STORED_IMAGES = 512;

interface StoredImage {
  png: Buffer;
  weights: string;
}

interface ImageRequest {
  prompt: string;
  n: number;
  responseFormat: "url" | "b64_json";
  width: number;
  height: number;
  steps: number;
  seed: number;
}

/** Validates the fields shared by generations (JSON) and edits (form). */
function readImageRequest(body: Record<string, unknown>): ImageRequest {
  const f = new Fields(body);
  const prompt = f.requiredString("prompt");
  const n = f.int("n", { ge: 1, le: 10 }) ?? 1;
  const responseFormat = f.literal("response_format", ["url", "b64_json"] as const) ?? "url";
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
  const parsed = parseSize(size);
  if (size !== undefined && !parsed) throw detailError(400, `Invalid size '${size}': expected WIDTHxHEIGHT`);
  const [sw, sh] = parsed ?? [1024, 1024];
  return { prompt, n, responseFormat, width: width ?? sw, height: height ?? sh, steps, seed };
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
    assertAwake(state);
    const work: Work = { width: request.width, height: request.height, steps: request.steps, frames: 1, outputs: request.n };
    const batchKey = body === null ? null : batchKeyOf(state, "images", work, body, false);
    const id = randomUUID();
    // url mode answers one item; b64_json one per output (seeds seed..seed+n-1).
    const count = request.responseFormat === "url" ? 1 : request.n;
    const made = await runGeneration(state, work, () =>
      Promise.all(Array.from({ length: count }, (_, i) => renderPng(request.prompt, request.seed + i, request.width, request.height))),
      batchKey,
    );
    let data: Record<string, unknown>[];
    if (request.responseFormat === "url") {
      keep(id, { png: made.result[0]!, weights: made.weights });
      data = [{ b64_json: null, url: `/v1/images/${id}/content`, revised_prompt: null, file_path: `outputs/${id}.png` }];
    } else {
      data = made.result.map((png) => ({ b64_json: png.toString("base64"), url: null, revised_prompt: null, file_path: null }));
    }
    sendJson(
      ctx.res,
      200,
      {
        id,
        created: Math.floor(Date.now() / 1000),
        data,
        peak_memory_mb: peakMemoryMb(work),
        inference_time_s: made.inferenceTimeS,
        ...extra,
      },
      simHeaders(state, made.weights),
    );
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
    const hasImage = form.files.length > 0 || typeof form.fields["url"] === "string";
    if (!hasImage) {
      const missing = [{ type: "missing", loc: ["body", "image"], msg: "Field required", input: null }];
      if (form.fields["prompt"] === undefined) missing.push({ type: "missing", loc: ["body", "prompt"], msg: "Field required", input: null });
      throw validationError(missing);
    }
    const request = readImageRequest(form.fields);
    await generate(ctx, request, null, {
      // Sim-only facts (a real worker has no such fields; clients ignore unknown ones).
      input_bytes: form.bytes,
      input_sha256: form.sha256,
      input_files: form.files.map((f) => ({ field: f.field, filename: f.filename, bytes: f.bytes, sha256: f.sha256 })),
    });
  }

  async function content(ctx: RouteContext): Promise<void> {
    const image = store.get(ctx.params[0]!);
    if (!image) throw detailError(404, "Image not found");
    sendBytes(ctx.res, 200, "image/png", image.png, { "x-sim-weights": image.weights });
  }

  return [
    { method: "POST", pattern: /^\/v1\/images\/generations$/, name: "POST /v1/images/generations", kind: "generation", handler: generations },
    { method: "POST", pattern: /^\/v1\/images\/edits$/, name: "POST /v1/images/edits", kind: "generation", handler: edits },
    { method: "GET", pattern: /^\/v1\/images\/([^/]+)\/content$/, name: "GET /v1/images/{id}/content", kind: "control", handler: content },
  ];
}
