import { randomUUID } from "node:crypto";
import { HttpError, detailError, isMultipart, readBody, sendJson } from "./http.js";
import { JobStore, type Job } from "./jobs.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { renderMp4 } from "./mp4.js";
import { parseMultipart } from "./multipart.js";
import { DEFAULT_SEED, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import { isVideoTask } from "./options.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields, parseSize } from "./validate.js";

/**
 * `/v1/videos`, as SGLang's video_api.py: a create answers a `queued` job at
 * once (even on a sleeping or image-only worker: the job then fails), and
 * the job store (jobs.ts) answers list, poll, delete and content. Like the
 * real worker, `url` stays null (set only with cloud storage) and the bytes
 * come from `GET /v1/videos/{id}/content`.
 */

/** The model's own size when a request names none (or a malformed one). */
const DEFAULT_SIZE: [number, number] = [1280, 720];

interface VideoRequest {
  prompt: string;
  model: string | undefined;
  width: number;
  height: number;
  fps: number;
  numFrames: number;
  steps: number;
  seed: number;
  outputs: number;
  /** The fields as sent, for the batch key. */
  body: Record<string, unknown>;
  /** An input image (image-to-video): never batched. */
  hasInputImage: boolean;
}

function readVideoRequest(body: Record<string, unknown>, uploadedImage = false): VideoRequest {
  const f = new Fields(body);
  const prompt = f.requiredString("prompt");
  const model = f.string("model");
  const seconds = f.int("seconds", { ge: 1 }) ?? 4;
  const fps = f.int("fps", { ge: 1 }) ?? 24;
  const numFrames = f.int("num_frames", { ge: 1 }) ?? fps * seconds;
  const size = f.string("size");
  const width = f.int("width", { ge: 1 });
  const height = f.int("height", { ge: 1 });
  const steps = f.int("num_inference_steps", { ge: 1 }) ?? 50;
  const seed = f.int("seed") ?? DEFAULT_SEED;
  // num_outputs_per_prompt wins over n.
  const outputs = f.int("num_outputs_per_prompt", { ge: 1 }) ?? f.int("n", { ge: 1 }) ?? 1;
  f.number("guidance_scale");
  f.number("guidance_scale_2");
  f.string("negative_prompt");
  f.done();
  // `_parse_size` gives (None, None) for a malformed size: the model default applies.
  const [sw, sh] = parseSize(size) ?? DEFAULT_SIZE;
  const hasInputImage = uploadedImage || body["input_reference"] != null || body["reference_url"] != null;
  return { prompt, model, width: width ?? sw, height: height ?? sh, fps, numFrames, steps, seed, outputs, body, hasInputImage };
}

/** pydantic's text for a failed model, as the JSON branch embeds it in a 400. */
function pydanticText(error: HttpError): string {
  const items = (error.body as { detail?: { loc: unknown[]; msg: string; type: string; input: unknown }[] }).detail ?? [];
  const lines = items.map((i) => `${String(i.loc.at(-1))}\n  ${i.msg} [type=${i.type}, input_value=${JSON.stringify(i.input)}]`);
  return `${items.length} validation error${items.length === 1 ? "" : "s"} for VideoGenerationsRequest\n${lines.join("\n")}`;
}

async function parseMultipartCreate(ctx: RouteContext, needsImage: boolean): Promise<VideoRequest> {
  const form = await parseMultipart(ctx.req, ctx.state.stats);
  if (!form.fields["prompt"]) throw detailError(400, "prompt is required");
  if (needsImage && form.files.length === 0 && !form.fields["reference_url"]) {
    throw detailError(400, "input_reference or reference_url is required for image-to-video generation");
  }
  let fields: Record<string, unknown> = { ...form.fields };
  // Form-encoded extra_body JSON may carry fps / num_frames.
  if (typeof form.fields["extra_body"] === "string") {
    try {
      const extra = JSON.parse(form.fields["extra_body"]) as Record<string, unknown>;
      fields = { fps: extra["fps"], num_frames: extra["num_frames"], ...fields };
    } catch {
      // ignored, as by the real worker
    }
  }
  return readVideoRequest(fields, form.files.length > 0);
}

/** The JSON branch swallows bad JSON (body = {}) and reports any validation problem as a 400. */
async function parseJsonCreate(ctx: RouteContext, needsImage: boolean): Promise<VideoRequest> {
  const raw = await readBody(ctx.req, ctx.state.stats);
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(raw.toString("utf8"));
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    body = {};
  }
  for (const key of ["extra_body", "extra_json"]) {
    const extra = body[key];
    delete body[key];
    if (extra && typeof extra === "object" && !Array.isArray(extra)) body = { ...body, ...(extra as Record<string, unknown>) };
  }
  if (needsImage && !body["reference_url"] && !body["input_reference"]) {
    throw detailError(400, "input_reference or reference_url is required for image-to-video generation");
  }
  try {
    return readVideoRequest(body);
  } catch (error) {
    if (error instanceof HttpError && error.status === 422) throw detailError(400, `Invalid request body: ${pydanticText(error)}`);
    throw error;
  }
}

function newJob(request: VideoRequest): Job {
  const id = `video_${randomUUID().replaceAll("-", "")}`;
  const filePaths = Array.from({ length: request.outputs }, (_, i) => `/sim/outputs/${id}${request.outputs > 1 ? `_${i}` : ""}.mp4`);
  return {
    id,
    object: "video",
    model: request.model ?? "sora-2", // what video_api.py puts when the request names no model
    status: "queued",
    progress: 0,
    created_at: Math.floor(Date.now() / 1000),
    size: `${request.width}x${request.height}`,
    seconds: String(Math.round(request.numFrames / request.fps)),
    quality: "standard",
    url: null,
    remixed_from_video_id: null,
    completed_at: null,
    expires_at: null,
    error: null,
    file_path: filePaths[0]!,
    file_paths: filePaths,
    num_outputs: request.outputs,
    peak_memory_mb: null,
    inference_time_s: null,
  };
}

export function videoRoutes(state: SimState): Route[] {
  const store = new JobStore(state, { plural: "videos", notFound: "Video not found", contentType: () => "video/mp4" });

  async function work(request: VideoRequest): Promise<{ bytes: Buffer; weights: string; fields: Record<string, unknown> }> {
    const video = isVideoTask(state.options.taskType);
    const spec: Work = { width: request.width, height: request.height, steps: request.steps, frames: request.numFrames, outputs: request.outputs };
    const batchKey = video ? batchKeyOf(state.options, "videos", spec, request.body, request.hasInputImage) : null;
    // An image pipeline cannot make frames: the job fails when its turn comes, it is not refused.
    const made = await runGeneration(state, video ? spec : { ...spec, steps: 0 }, () => {
      if (!video) throw new Error(`Task type ${state.options.taskType} of model ${state.options.modelPath} does not support video generation`);
      return renderMp4({ prompt: request.prompt, seed: request.seed, width: request.width, height: request.height, numFrames: request.numFrames, fps: request.fps });
    }, batchKey);
    return { bytes: made.result, weights: made.weights, fields: { peak_memory_mb: peakMemoryMb(spec), inference_time_s: made.inferenceTimeS } };
  }

  async function create(ctx: RouteContext): Promise<void> {
    const needsImage = state.options.taskType === "I2V";
    const request = isMultipart(ctx.req) ? await parseMultipartCreate(ctx, needsImage) : await parseJsonCreate(ctx, needsImage);
    const job = newJob(request);
    store.add(job);
    void store.run(job, () => work(request));
    sendJson(ctx.res, 200, job, simHeaders(state));
  }

  return store.routes(create);
}
