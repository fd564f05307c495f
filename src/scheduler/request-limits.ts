/**
 * What the router refuses to forward: a generation a worker would spend
 * minutes or all its memory on because of one mistyped field
 * (`num_outputs_per_prompt: 1000000` took a worker to 100% CPU and 2 GB and
 * held the next request 600 s behind it). Real workers check none of these:
 * SGLang clamps `n` to 1..10 on its image routes but takes any
 * `num_outputs_per_prompt`, size, step or frame count. Pure: the data plane
 * calls it once per request whose JSON body it reads, before a worker is chosen.
 */
import { RouterError } from "../errors.js";

/** The largest values forwarded; 0 = no limit. */
export interface RequestLimits {
  /** `n` / `num_outputs_per_prompt` (--max-outputs-per-request). */
  readonly maxOutputs: number;
  /** `width`, `height` and each side of `size`, in pixels (--max-image-side). */
  readonly maxSide: number;
  /** `num_inference_steps` (--max-inference-steps). */
  readonly maxSteps: number;
  /** `num_frames`, or `seconds` x `fps` (--max-frames). */
  readonly maxFrames: number;
}

/** Defaults: far above any real rollout (Flow-GRPO groups are 8-24 outputs, Wan videos 81-121 frames), far below what breaks a worker. */
export const defaultRequestLimits: RequestLimits = Object.freeze({ maxOutputs: 64, maxSide: 8192, maxSteps: 1000, maxFrames: 1024 });

/** The flag that sets each limit, named in the error so the operator knows what to raise. */
const flagOf: Record<keyof RequestLimits, string> = {
  maxOutputs: "--max-outputs-per-request",
  maxSide: "--max-image-side",
  maxSteps: "--max-inference-steps",
  maxFrames: "--max-frames",
};

/**
 * The first field of `body` over its limit, as a 400 `invalid_request`
 * naming the field, the value and the limit; null when all are within.
 * Values a worker would reject or ignore anyway (strings, negatives) are
 * left to the worker: the router only guards what it would pass on.
 */
export function limitViolation(body: Readonly<Record<string, unknown>>, limits: RequestLimits): RouterError | null {
  for (const field of ["n", "num_outputs_per_prompt"]) {
    const v = over(body[field], limits.maxOutputs);
    if (v !== null) return refusal(field, v, limits, "maxOutputs");
  }
  for (const field of ["width", "height"]) {
    const v = over(body[field], limits.maxSide);
    if (v !== null) return refusal(field, v, limits, "maxSide");
  }
  if (typeof body.size === "string" && limits.maxSide > 0) {
    const m = /^\s*(\d+)\s*[x*×]\s*(\d+)\s*$/i.exec(body.size);
    if (m && Math.max(Number(m[1]), Number(m[2])) > limits.maxSide) return refusal("size", body.size, limits, "maxSide");
  }
  const steps = over(body.num_inference_steps, limits.maxSteps);
  if (steps !== null) return refusal("num_inference_steps", steps, limits, "maxSteps");
  const frames = over(body.num_frames, limits.maxFrames);
  if (frames !== null) return refusal("num_frames", frames, limits, "maxFrames");
  const seconds = numberOf(body.seconds);
  const fps = numberOf(body.fps);
  if (limits.maxFrames > 0 && seconds !== null && seconds * (fps ?? 24) > limits.maxFrames) {
    return new RouterError("invalid_request", `seconds x fps is ${seconds * (fps ?? 24)} frames, over the router's limit of ${limits.maxFrames} (${flagOf.maxFrames})`, { details: { param: "seconds" } });
  }
  return null;
}

function numberOf(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

/** The value when it is a number over `max` (max 0: no limit). */
function over(v: unknown, max: number): number | null {
  if (max === 0) return null;
  const n = numberOf(v);
  return n !== null && n > max ? n : null;
}

function refusal(field: string, value: unknown, limits: RequestLimits, limit: keyof RequestLimits): RouterError {
  return new RouterError("invalid_request", `${field} is ${String(value)}, over the router's limit of ${limits[limit]} (${flagOf[limit]})`, { details: { param: field } });
}
