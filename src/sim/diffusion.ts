import { randomUUID } from "node:crypto";
import { detailError, parseModelBody, readBody, sendJson } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { renderMp4 } from "./mp4.js";
import { renderPng } from "./png.js";
import { hashSeed, prng } from "./picture.js";
import { DEFAULT_SEED, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import { isVideoTask } from "./options.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields, parseSize } from "./validate.js";

/**
 * `POST /v1/diffusion/generate`, the older native route: one output inline
 * as base64 (PNG for image models, MP4 for video models) and, when asked,
 * a small trajectory (latents / log probs as base64 float32).
 */

function floats(count: number, key: string): Buffer {
  const rand = prng(hashSeed(key));
  const out = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) out.writeFloatLE(rand() * 2 - 1, i * 4);
  return out;
}

export function diffusionRoutes(state: SimState): Route[] {
  async function generate(ctx: RouteContext): Promise<void> {
    const body = parseModelBody(await readBody(ctx.req, state.stats));
    const f = new Fields(body);
    const prompt = f.requiredString("prompt");
    const video = isVideoTask(state.options.taskType);
    const size = f.string("size");
    const width = f.int("width", { ge: 1 });
    const height = f.int("height", { ge: 1 });
    const frames = video ? (f.int("num_frames", { ge: 1 }) ?? 81) : 1;
    const fps = f.int("fps", { ge: 1 }) ?? 16;
    const seed = f.int("seed") ?? DEFAULT_SEED;
    const steps = f.int("num_inference_steps", { ge: 1 }) ?? 50;
    const outputs = f.int("num_outputs_per_prompt", { ge: 1 }) ?? 1;
    const getLatents = f.bool("get_latents") ?? false;
    const getLogProbs = f.bool("get_log_probs") ?? false;
    f.done();
    const parsed = parseSize(size);
    if (size !== undefined && !parsed) throw detailError(400, `Invalid size '${size}': expected WIDTHxHEIGHT`);
    const [sw, sh] = parsed ?? (video ? [1280, 720] : [1024, 1024]);
    const w = width ?? sw;
    const h = height ?? sh;

    const work: Work = { width: w, height: h, steps, frames, outputs };
    const batchKey = batchKeyOf(state.options, "diffusion", work, body, body["image_path"] != null || body["input_reference"] != null);
    const made = await runGeneration(
      state,
      work,
      () => (video ? renderMp4({ prompt, seed, width: w, height: h, numFrames: frames, fps }) : renderPng(prompt, seed, w, h)),
      batchKey,
    );
    const id = randomUUID();
    const key = `${prompt}\u0000${seed}\u0000${made.weights}`;
    const latentShape = [1, 16, Math.max(1, Math.round(h / 8 / 16)), Math.max(1, Math.round(w / 8 / 16))];
    const latentCount = latentShape.reduce((a, b) => a * b, 1);
    const trajectory =
      getLatents || getLogProbs
        ? {
            latents: getLatents ? floats(latentCount * (steps + 1), `${key}:latents`).toString("base64") : null,
            latents_shape: getLatents ? [steps + 1, ...latentShape] : null,
            latents_dtype: getLatents ? "float32" : null,
            timesteps: Array.from({ length: steps }, (_, i) => Math.round(1000 * (1 - i / steps) * 1000) / 1000),
            log_probs: getLogProbs ? floats(steps, `${key}:log_probs`).toString("base64") : null,
            log_probs_shape: getLogProbs ? [1, steps] : null,
          }
        : null;
    sendJson(
      ctx.res,
      200,
      {
        id,
        created: Math.floor(Date.now() / 1000),
        output_b64: made.result.toString("base64"),
        output_format: video ? "mp4" : "png",
        file_path: `outputs/${id}.${video ? "mp4" : "png"}`,
        peak_memory_mb: peakMemoryMb(work),
        inference_time_s: made.inferenceTimeS,
        trajectory,
      },
      simHeaders(state, made.weights, made.batch),
    );
  }

  return [
    { method: "POST", pattern: /^\/v1\/diffusion\/generate$/, name: "POST /v1/diffusion/generate", kind: "generation", handler: generate },
  ];
}
