/**
 * The simulated SGLang diffusion worker: a stand-in for `sglang serve` (no
 * GPU) speaking the real worker's HTTP API, for tests, the quick start and
 * launcher tests. docs/worker-compat.md compares it with SGLang's current
 * server route by route.
 */
export { startSimWorker } from "./server.js";
export type { SimWorker } from "./server.js";
export { TASK_TYPES, deriveTaskType, isVideoTask, resolveOptions } from "./options.js";
export type { ResolvedSimOptions, SimWorkerOptions, TaskType } from "./options.js";
export { DEFAULT_GAIN_CURVE_SPEC, MS_PER_PIXEL_STEP, OVERHEAD_MS, batchGain, batchMs, generationMs, latentFrames, parseGainCurve } from "./latency.js";
export type { CostShape, GainCurve, Work } from "./latency.js";
export { SLEEPING_MESSAGE } from "./generation.js";
/** The sha256 the sim's `/update_weights_from_tensor_checker` expects for a tensor. */
export { simTensorSha256 } from "./weights.js";
