import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseModelBody, readBody } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { DEFAULT_SEED, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import { isVideoTask } from "./options.js";
import { partChunks, partsLength, planMsgpack, tensorValue, type Value } from "./payload.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields } from "./validate.js";

/**
 * `POST /rollout/generate` (post_training/rollout_api.py): the RL answer, a
 * list with one entry per sample, each carrying base64 safetensors tensors,
 * always as `application/msgpack` whatever `Accept` says (the route builds
 * its Response itself). Every sample reports the request's seed (the
 * pipeline draws seed..seed+M-1, but the answer echoes the request). Answers
 * are large (the tensor payload per sample is `rolloutBytesPerSample`, or the
 * request's sim-only `sim_bytes_per_sample`, counted before base64), so they
 * are streamed with backpressure and never held whole. Asleep, the route
 * answers 500 `{"detail": message}`.
 */

export function rolloutRoutes(state: SimState): Route[] {
  async function generate(ctx: RouteContext): Promise<void> {
    const body = parseModelBody(await readBody(ctx.req, state.stats));
    const f = new Fields(body);
    const prompt = f.requiredString("prompt");
    const seed = f.int("seed") ?? DEFAULT_SEED;
    const video = isVideoTask(state.options.taskType);
    const width = f.int("width", { ge: 1 }) ?? (video ? 1280 : 1024);
    const height = f.int("height", { ge: 1 }) ?? (video ? 720 : 1024);
    const steps = f.int("num_inference_steps", { ge: 1 }) ?? 50;
    const outputs = f.int("num_outputs_per_prompt", { ge: 1 }) ?? 1;
    const frames = video ? (f.int("num_frames", { ge: 1 }) ?? 81) : 1;
    const rollout = f.bool("rollout") ?? true;
    const returnEnv = f.bool("rollout_return_denoising_env") ?? false;
    const returnTrajectory = f.bool("rollout_return_dit_trajectory") ?? false;
    const bytesPerSample = f.int("sim_bytes_per_sample", { ge: 0 }) ?? state.options.rolloutBytesPerSample;
    f.string("negative_prompt");
    f.number("guidance_scale");
    f.number("true_cfg_scale");
    f.done();

    const work: Work = { width, height, steps, frames, outputs };
    const batchKey = batchKeyOf(state.options, "rollout", work, body, body["image_path"] != null);
    const made = await runGeneration(state, work, () => null, batchKey, "detail");
    const requestId = randomUUID();
    const elements = Math.max(1, Math.floor(bytesPerSample / 4));
    const samples: Value[] = [];
    for (let i = 0; i < outputs; i++) {
      // The sample's content depends on the seed the pipeline drew for it.
      const key = `${prompt}\u0000${seed + i}\u0000${made.weights}`;
      samples.push({
        request_id: requestId,
        prompt,
        seed,
        generated_output: tensorValue([elements], `${key}:output`),
        rollout_log_probs: rollout ? tensorValue([steps], `${key}:log_probs`) : null,
        rollout_debug_tensors: null,
        denoising_env:
          rollout && returnEnv
            ? { image_kwargs: null, pos_cond_kwargs: { prompt_embeds: tensorValue([16, 64], `${key}:embeds`) }, neg_cond_kwargs: null, guidance: null }
            : null,
        dit_trajectory:
          rollout && returnTrajectory
            ? {
                latents: tensorValue([steps + 1, 16], `${key}:latents`),
                timesteps: tensorValue([steps], `${key}:timesteps`),
                sigmas: tensorValue([steps + 1], `${key}:sigmas`),
              }
            : null,
        inference_time_s: made.inferenceTimeS,
        peak_memory_mb: peakMemoryMb(work),
      });
    }

    const parts = planMsgpack(samples);
    ctx.res.writeHead(200, {
      ...simHeaders(state, made.weights, made.batch),
      "content-type": "application/msgpack",
      "content-length": partsLength(parts),
    });
    try {
      // pipeline waits for 'drain' between chunks and stops if the client leaves.
      await pipeline(Readable.from(partChunks(parts), { objectMode: false }), ctx.res);
    } catch (error) {
      state.log.debug({ err: error }, "rollout answer not fully sent (client went away)");
    }
  }

  return [{ method: "POST", pattern: /^\/rollout\/generate$/, name: "POST /rollout/generate", kind: "generation", handler: generate }];
}
