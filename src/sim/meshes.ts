import { randomUUID } from "node:crypto";
import { detailError, isMultipart, readBody, sendJson } from "./http.js";
import { JobStore, type Job } from "./jobs.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { parseMultipart } from "./multipart.js";
import { DEFAULT_SEED, runGeneration, simHeaders } from "./generation.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields } from "./validate.js";

/**
 * `/v1/meshes`, as SGLang's mesh_api.py: image-to-3D jobs, asynchronous like
 * videos (jobs.ts). A create needs an input image (a multipart `image`/`url`
 * field, or JSON `input_image`); the job's `format` is glb (default) or obj,
 * and its content is a small valid glTF binary or OBJ text. Only an I2M
 * worker can make meshes: on any other, the job fails when its turn comes.
 */

interface MeshRequest {
  prompt: string;
  model: string;
  format: "glb" | "obj";
  seed: number;
  steps: number;
}

function normalizeFormat(value: unknown): "glb" | "obj" {
  const fmt = typeof value === "string" ? value.toLowerCase() : "glb";
  return fmt === "obj" ? "obj" : "glb";
}

function readMeshRequest(fields: Record<string, unknown>): MeshRequest {
  const f = new Fields(fields);
  const prompt = f.string("prompt") ?? "generate 3d mesh";
  const model = f.string("model") ?? "";
  const seed = f.int("seed") ?? DEFAULT_SEED;
  const steps = f.int("num_inference_steps", { ge: 1 }) ?? 50;
  f.number("guidance_scale");
  f.string("negative_prompt");
  f.done();
  return { prompt, model, format: normalizeFormat(fields["output_format"]), seed, steps };
}

/** A minimal glTF 2.0 binary: the header and one JSON chunk naming what made it. */
export function renderGlb(prompt: string, seed: number): Buffer {
  let json = JSON.stringify({ asset: { version: "2.0", generator: "sglang-d-sim-worker" }, extras: { prompt, seed } });
  while (Buffer.byteLength(json) % 4 !== 0) json += " ";
  const chunk = Buffer.from(json);
  const header = Buffer.alloc(20);
  header.write("glTF", 0, "ascii");
  header.writeUInt32LE(2, 4);
  header.writeUInt32LE(20 + chunk.length, 8);
  header.writeUInt32LE(chunk.length, 12);
  header.write("JSON", 16, "ascii");
  return Buffer.concat([header, chunk]);
}

function renderObj(prompt: string, seed: number): Buffer {
  return Buffer.from(`# sglang-d-sim-worker mesh: ${JSON.stringify(prompt)} seed ${seed}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n`);
}

async function parseCreate(ctx: RouteContext): Promise<MeshRequest> {
  if (isMultipart(ctx.req)) {
    const form = await parseMultipart(ctx.req, ctx.state.stats);
    const hasImage = form.files.length > 0 || form.fields["url"] !== undefined || form.fields["url[]"] !== undefined;
    if (!hasImage) throw detailError(422, "Field 'image' or 'url' is required for mesh generation");
    return readMeshRequest(form.fields);
  }
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse((await readBody(ctx.req, ctx.state.stats)).toString("utf8"));
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    body = {};
  }
  if (!body["input_image"]) throw detailError(422, "An input image is required for mesh generation");
  return readMeshRequest(body);
}

export function meshRoutes(state: SimState): Route[] {
  const store = new JobStore(state, {
    plural: "meshes",
    notFound: "Mesh not found",
    contentType: (job) => (job["format"] === "obj" ? "text/plain" : "model/gltf-binary"),
  });

  async function create(ctx: RouteContext): Promise<void> {
    const request = await parseCreate(ctx);
    const id = randomUUID();
    const job: Job = {
      id,
      object: "mesh",
      model: request.model,
      status: "queued",
      progress: 0,
      created_at: Math.floor(Date.now() / 1000),
      format: request.format,
      file_path: `/sim/outputs/${id}.${request.format}`,
      url: null,
      completed_at: null,
      error: null,
      file_size_bytes: null,
    };
    store.add(job);
    const spec: Work = { width: 512, height: 512, steps: request.steps, frames: 1, outputs: 1 };
    void store.run(job, async () => {
      const made = await runGeneration(state, spec, () => {
        if (state.options.taskType !== "I2M") throw new Error(`Task type ${state.options.taskType} of model ${state.options.modelPath} does not support mesh generation`);
        return request.format === "obj" ? renderObj(request.prompt, request.seed) : renderGlb(request.prompt, request.seed);
      });
      const fields = { file_size_bytes: made.result.length, peak_memory_mb: peakMemoryMb(spec), inference_time_s: made.inferenceTimeS };
      return { bytes: made.result, weights: made.weights, fields };
    });
    sendJson(ctx.res, 200, job, simHeaders(state));
  }

  return store.routes(create);
}
