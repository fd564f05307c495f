import type { OutgoingHttpHeaders } from "node:http";
import { performance } from "node:perf_hooks";
import { detailError, internalError } from "./http.js";
import { batchMs, generationMs, type Work } from "./latency.js";
import type { ResolvedSimOptions } from "./options.js";
import type { SimState } from "./state.js";

/** What the scheduler raises for a generation while its memory is released. */
export const SLEEPING_MESSAGE = "Server is sleeping. Call resume_memory_occupation first.";

/** The seed SGLang's SamplingParams uses when a request has none. */
export const DEFAULT_SEED = 1024;

/**
 * A sleeping worker's scheduler raises; the OpenAI routes do not catch it,
 * so the client sees Starlette's plain-text 500 (the message stays in the
 * worker's log). `/rollout/generate` wraps it as 500 `{"detail": message}`.
 */
export function assertAwake(state: SimState, wrap: "plain" | "detail" = "plain"): void {
  if (!state.sleeping) return;
  throw wrap === "detail" ? detailError(500, SLEEPING_MESSAGE) : internalError(SLEEPING_MESSAGE);
}

export interface Generated<T> {
  result: T;
  /** The weights that made it (an update can run between arrival and turn). */
  weights: string;
  inferenceTimeS: number;
  /** The scheduler dispatch it ran in and how many requests that dispatch held (sim-only: `x-sim-batch`). */
  batch: { id: number; size: number };
}

/**
 * Body fields that stay out of the batch key. SGLang's signature is every
 * SamplingParams field except those marked `batch_sig_exclude` (prompt,
 * seed, request id, output names) plus `diffusers_kwargs`
 * (managers/scheduler.py `_build_dynamic_batch_signature`). Some body fields
 * never become sampling parameters: `response_format` is read by the route
 * after the work, `output_format` and `background` only pick the output
 * file's extension (an output name), `model` and `user` are ignored, and no
 * SGLang contract declares a router's `routing_key` (pydantic drops it).
 * The shape fields are left out too: the key carries them resolved (so
 * `size` and `width`/`height` spelling the same size match).
 */
const NOT_IN_BATCH_KEY = new Set([
  "prompt", "seed", "request_id", "rid", "output_file_name", "output_path",
  "response_format", "output_format", "background", "model", "user", "routing_key",
  "size", "width", "height", "num_inference_steps", "n", "num_outputs_per_prompt", "num_frames", "seconds", "fps", "num_images",
]);

/** JSON with object keys sorted at every level: SGLang freezes dicts sorted by key before comparing. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * The batch key of a request, or null when it may not batch: batching off,
 * an input image (edits, image-to-video, rollouts with `image_path`), or a
 * pipeline other than text-to-image / text-to-video. A field sent as null is
 * a field not sent (pydantic's None is the default).
 */
export function batchKeyOf(
  options: Pick<ResolvedSimOptions, "batchingMaxSize" | "taskType">,
  route: string,
  work: Work,
  body: Record<string, unknown>,
  hasInputImage: boolean,
): string | null {
  if (options.batchingMaxSize <= 1 || hasInputImage) return null;
  const task = options.taskType;
  if (task !== "T2I" && task !== "T2V") return null;
  const rest = Object.keys(body)
    .filter((k) => !NOT_IN_BATCH_KEY.has(k) && body[k] !== null && body[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(body[k])}`);
  return `${route}|${work.width}x${work.height}|${work.steps}|${work.frames}|${work.outputs}|${rest.join(",")}`;
}

/**
 * Runs one generation through the scheduler queue: waits its turn (alone,
 * or in a batch of compatible requests when `batchKey` is set), fails like
 * the real worker when asleep or when the dice say so (`failureRate`), then
 * takes the time of the work (of the whole batch: see latency.ts) and
 * finally draws the output with `make`.
 */
export function runGeneration<T>(
  state: SimState,
  work: Work,
  make: () => T | Promise<T>,
  batchKey: string | null = null,
  sleepingAnswer: "plain" | "detail" = "plain",
): Promise<Generated<T>> {
  return state.scheduler.run(
    async (batchSize, dispatch) => {
      assertAwake(state, sleepingAnswer);
      if (state.shouldFail()) throw internalError();
      const started = performance.now();
      const { speed } = state.config;
      const { attentionFactor: a, costShape } = state.options;
      await state.delay(batchSize > 1 ? batchMs(work, batchSize, speed, a, state.gainCurve, costShape) : generationMs(work, speed, a, costShape));
      state.stats.generationsRun++;
      const result = await make();
      return { result, weights: state.weights, inferenceTimeS: (performance.now() - started) / 1000, batch: { id: dispatch, size: batchSize } };
    },
    { batchKey },
  );
}

/**
 * Headers that let tests prove which worker and which weights made an answer,
 * and (for a generation) which scheduler dispatch ran it: `x-sim-batch` is
 * `<dispatch>/<requests in it>`, so answers with the same dispatch ran in one
 * batch. No real worker sends these; clients ignore unknown headers.
 */
export function simHeaders(state: SimState, weights = state.weights, batch?: { id: number; size: number }): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { "x-sim-weights": weights, "x-sim-worker": state.url };
  const lora = state.lora.activeNames();
  if (lora !== "") headers["x-sim-lora"] = lora;
  if (batch !== undefined) headers["x-sim-batch"] = `${batch.id}/${batch.size}`;
  return headers;
}
