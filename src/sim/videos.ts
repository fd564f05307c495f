import { randomUUID } from "node:crypto";
import { HttpError, detailError, isMultipart, readBody, sendBytes, sendJson } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { renderMp4 } from "./mp4.js";
import { parseMultipart } from "./multipart.js";
import { DEFAULT_SEED, assertAwake, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import { isVideoTask } from "./options.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields, parseSize } from "./validate.js";

/**
 * `/v1/videos`: asynchronous jobs kept in this worker's memory, as in
 * SGLang's video_api.py. A job is answered `queued` at once, then becomes
 * `completed` (progress 100, completed_at, file ready) or `failed`
 * (`error: {message}`); there is no `in_progress`. Deleting a finished job
 * removes it (answer: status `deleted`); deleting a queued one marks it
 * `cancelling`, and it ends `cancelled`. Like the real worker, `url` stays
 * null (it is set only when a job was uploaded to cloud storage) and the
 * bytes come from `GET /v1/videos/{id}/content`.
 */

/** The job fields a real worker answers (VideoResponse). */
interface VideoJob {
  id: string;
  object: "video";
  model: string;
  status: "queued" | "completed" | "failed" | "cancelling" | "cancelled" | "deleted";
  progress: number;
  created_at: number;
  size: string;
  seconds: string;
  quality: string;
  url: string | null;
  remixed_from_video_id: string | null;
  completed_at: number | null;
  expires_at: number | null;
  error: { message: string } | null;
  file_path: string | null;
  peak_memory_mb: number | null;
  inference_time_s: number | null;
}

interface JobEntry {
  job: VideoJob;
  mp4?: Buffer;
  weights?: string;
  cancel: boolean;
}

/** Jobs kept per worker; beyond that the oldest finished ones are dropped. */
const MAX_JOBS = 1000;
const TERMINAL = new Set(["completed", "failed", "deleted", "cancelled"]);

interface VideoRequest {
  prompt: string;
  model: string | undefined;
  width: number;
  height: number;
  fps: number;
  numFrames: number;
  steps: number;
  seed: number;
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
  f.number("guidance_scale");
  f.number("guidance_scale_2");
  f.string("negative_prompt");
  f.done();
  const parsed = parseSize(size);
  if (size !== undefined && !parsed) throw detailError(400, `Invalid size '${size}': expected WIDTHxHEIGHT`);
  const [sw, sh] = parsed ?? [1280, 720];
  const hasInputImage = uploadedImage || body["input_reference"] != null || body["reference_url"] != null;
  return { prompt, model, width: width ?? sw, height: height ?? sh, fps, numFrames, steps, seed, body, hasInputImage };
}

/** pydantic's text for a failed model, as the JSON branch embeds it in a 400. */
function pydanticText(error: HttpError): string {
  const items = ((error.body as { detail?: { loc: unknown[]; msg: string; type: string; input: unknown }[] }).detail ?? []);
  const lines = items.map((i) => `${String(i.loc.at(-1))}\n  ${i.msg} [type=${i.type}, input_value=${JSON.stringify(i.input)}]`);
  return `${items.length} validation error${items.length === 1 ? "" : "s"} for VideoGenerationsRequest\n${lines.join("\n")}`;
}

export function videoRoutes(state: SimState): Route[] {
  const jobs = new Map<string, JobEntry>();

  function prune(): void {
    if (jobs.size <= MAX_JOBS) return;
    for (const [id, entry] of jobs) {
      if (jobs.size <= MAX_JOBS) break;
      if (TERMINAL.has(entry.job.status)) jobs.delete(id);
    }
  }

  async function parseCreate(ctx: RouteContext): Promise<VideoRequest> {
    const taskType = state.options.taskType;
    const needsImage = taskType === "I2V";
    if (isMultipart(ctx.req)) {
      const form = await parseMultipart(ctx.req, state.stats);
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
    // The JSON branch swallows bad JSON (body = {}) and reports any
    // validation problem as a 400 "Invalid request body: ...".
    const raw = await readBody(ctx.req, state.stats);
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

  async function work(entry: JobEntry, request: VideoRequest): Promise<void> {
    const { job } = entry;
    const spec: Work = { width: request.width, height: request.height, steps: request.steps, frames: request.numFrames, outputs: 1 };
    try {
      // Cancelled jobs and image pipelines end at once when their turn comes.
      const quick = entry.cancel || !isVideoTask(state.options.taskType);
      const batchKey = quick ? null : batchKeyOf(state, "videos", spec, request.body, request.hasInputImage);
      const made = await runGeneration(state, quick ? { ...spec, steps: 0 } : spec, () => {
        if (entry.cancel) return undefined;
        if (!isVideoTask(state.options.taskType)) {
          // An image pipeline cannot make frames: the job fails, it is not refused.
          throw new Error(
            `Task type ${state.options.taskType} of model ${state.options.modelPath} does not support video generation`,
          );
        }
        return renderMp4({ prompt: request.prompt, seed: request.seed, width: request.width, height: request.height, numFrames: request.numFrames, fps: request.fps });
      }, batchKey);
      const cancelled = entry.cancel || made.result === undefined;
      Object.assign(job, {
        status: cancelled ? "cancelled" : "completed",
        progress: 100,
        completed_at: Math.floor(Date.now() / 1000),
        url: null,
        file_path: cancelled ? null : job.file_path,
        peak_memory_mb: peakMemoryMb(spec),
        inference_time_s: made.inferenceTimeS,
      });
      if (!cancelled) {
        entry.mp4 = made.result;
        entry.weights = made.weights;
      }
    } catch (error) {
      if (state.closeSignal.aborted) return;
      let message = error instanceof Error ? error.message : String(error);
      if (error instanceof HttpError) {
        const body = error.body as { detail?: { message?: string } } | string;
        message = typeof body === "string" ? body : (body.detail?.message ?? JSON.stringify(body));
      }
      Object.assign(job, { status: "failed", error: { message } });
    }
  }

  async function create(ctx: RouteContext): Promise<void> {
    const request = await parseCreate(ctx);
    assertAwake(state);
    const id = `video_${randomUUID().replaceAll("-", "")}`;
    const job: VideoJob = {
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
      file_path: `/sim/outputs/${id}.mp4`,
      peak_memory_mb: null,
      inference_time_s: null,
    };
    const entry: JobEntry = { job, cancel: false };
    jobs.set(id, entry);
    prune();
    void work(entry, request);
    sendJson(ctx.res, 200, job, simHeaders(state));
  }

  async function list(ctx: RouteContext): Promise<void> {
    const query = Object.fromEntries(ctx.url.searchParams);
    const f = new Fields(query, "query");
    const limit = f.int("limit", { ge: 1, le: 100 });
    f.done();
    const after = ctx.url.searchParams.get("after");
    const order = (ctx.url.searchParams.get("order") ?? "desc").toLowerCase() === "asc" ? "asc" : "desc";
    // Python's sort(reverse=True) is stable: equal created_at keep insertion order.
    let data = [...jobs.values()].map((e) => e.job);
    data.sort((a, b) => (order === "asc" ? a.created_at - b.created_at : b.created_at - a.created_at));
    if (after !== null) {
      const index = data.findIndex((j) => j.id === after);
      data = index < 0 ? [] : data.slice(index + 1);
    }
    if (limit !== undefined) data = data.slice(0, limit);
    sendJson(ctx.res, 200, { object: "list", data });
  }

  function find(id: string): JobEntry {
    const entry = jobs.get(id);
    if (!entry) throw detailError(404, "Video not found");
    return entry;
  }

  async function retrieve(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, find(ctx.params[0]!).job);
  }

  async function remove(ctx: RouteContext): Promise<void> {
    const entry = find(ctx.params[0]!);
    if (TERMINAL.has(entry.job.status)) {
      jobs.delete(entry.job.id);
      sendJson(ctx.res, 200, { ...entry.job, status: "deleted" });
      return;
    }
    entry.cancel = true;
    entry.job.status = "cancelling";
    sendJson(ctx.res, 200, entry.job);
  }

  async function content(ctx: RouteContext): Promise<void> {
    const entry = find(ctx.params[0]!);
    if (!entry.mp4) throw detailError(404, "Generation is still in-progress");
    sendBytes(ctx.res, 200, "video/mp4", entry.mp4, {
      "content-disposition": `attachment; filename="${entry.job.id}.mp4"`,
      "x-sim-weights": entry.weights ?? state.weights,
    });
  }

  return [
    { method: "POST", pattern: /^\/v1\/videos$/, name: "POST /v1/videos", kind: "generation", handler: create },
    { method: "GET", pattern: /^\/v1\/videos$/, name: "GET /v1/videos", kind: "control", handler: list },
    { method: "GET", pattern: /^\/v1\/videos\/([^/]+)$/, name: "GET /v1/videos/{id}", kind: "control", handler: retrieve },
    { method: "DELETE", pattern: /^\/v1\/videos\/([^/]+)$/, name: "DELETE /v1/videos/{id}", kind: "control", handler: remove },
    { method: "GET", pattern: /^\/v1\/videos\/([^/]+)\/content$/, name: "GET /v1/videos/{id}/content", kind: "control", handler: content },
  ];
}
