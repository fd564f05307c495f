import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseModelBody, readBody } from "./http.js";
import { peakMemoryMb, type Work } from "./latency.js";
import { DEFAULT_SEED, assertAwake, batchKeyOf, runGeneration, simHeaders } from "./generation.js";
import { isVideoTask } from "./options.js";
import { partChunks, partsLength, planJson, planMsgpack, tensorValue, type Value } from "./payload.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields } from "./validate.js";

/**
 * `POST /rollout/generate`: the RL answer, a list with one entry per sample
 * (seeds seed..seed+M-1), each carrying base64 safetensors tensors. Answers
 * are large (the tensor payload per sample is `rolloutBytesPerSample`, or the
 * request's sim-only `sim_bytes_per_sample`, counted before base64), so they
 * are streamed with backpressure and never held whole. With
 * `Accept: application/msgpack` the same list comes as MessagePack (as newer
 * workers send it; tensor `data` stays a base64 string, as in SGLang).
 */

function wantsMsgpack(accept: string | undefined): boolean {
  return /application\/(x-)?msgpack/i.test(accept ?? "");
}

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
    assertAwake(state);

    const work: Work = { width, height, steps, frames, outputs };
    const batchKey = batchKeyOf(state, "rollout", work, body, body["image_path"] != null);
    const made = await runGeneration(state, work, () => null, batchKey);
    const requestId = randomUUID();
    const elements = Math.max(1, Math.floor(bytesPerSample / 4));
    const samples: Value[] = [];
    for (let i = 0; i < outputs; i++) {
      const s = seed + i;
      const key = `${prompt}\u0000${s}\u0000${made.weights}`;
      samples.push({
        request_id: requestId,
        prompt,
        seed: s,
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

    const msgpack = wantsMsgpack(ctx.req.headers.accept);
    const parts = msgpack ? planMsgpack(samples) : planJson(samples);
    ctx.res.writeHead(200, {
      ...simHeaders(state, made.weights),
      "content-type": msgpack ? "application/msgpack" : "application/json",
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
