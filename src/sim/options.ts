import { isIntBetween, isNonNegativeNumber, isPort, isPositiveNumber } from "../config/checks.js";
import type { LevelWithSilent } from "pino";
import { DEFAULT_GAIN_CURVE_SPEC, parseGainCurve, type CostShape } from "./latency.js";

/** The task types a real worker reports in `/v1/models` (`task_type`). */
export const TASK_TYPES = ["T2I", "I2I", "TI2I", "T2V", "I2V", "TI2V", "V2V", "F2V", "I2M", "VLA_ACTION"] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** Options of the simulated worker. Every field is optional. */
export interface SimWorkerOptions {
  /** Interface to listen on. Default "127.0.0.1". */
  host?: string;
  /** TCP port; 0 picks any free port. Default 0. */
  port?: number;
  /** Model the worker serves (its initial weights). Default "Qwen/Qwen-Image". */
  modelPath?: string;
  /** The card's `id` in `/v1/models` and `/server_info` `served_model_name`. Default: `modelPath`. */
  servedModelName?: string;
  /**
   * Task type reported by the worker. Default: derived from `modelPath`
   * ("T2V" when the name contains "Wan", "video" or "T2V", else "T2I").
   */
  taskType?: TaskType;
  /** GPUs reported in the model card. Default 1. */
  numGpus?: number;
  /** Latency divider: 2 makes every generation twice as fast. Default 1.0. */
  speed?: number;
  /** Fraction (0..1) of generation requests that fail with the plain-text 500. Default 0. */
  failureRate?: number;
  /** Non-health routes are held until this many ms after start (a newer worker's warm-up). Default 0. */
  warmupMs?: number;
  /** Time `update_weights_from_disk` / `update_weights_from_tensor` take. Default 200. */
  weightLoadMs?: number;
  /** Data-parallel replicas (`--dp-size`): reported in `/server_info`; that many generations run at once. Default 1. */
  dpSize?: number;
  /** How many generations (or batches) run at once; the rest wait FIFO (the real scheduler queue). Default: `dpSize`. */
  schedulerConcurrency?: number;
  /** `--batching-mode`: only "dynamic" (SGLang's queue-head batching) is simulated. Default "dynamic". */
  batchingMode?: "dynamic";
  /** Most compatible requests run as one batch (SGLang's `--batching-max-size`); 1 = off. Default 1. */
  batchingMaxSize?: number;
  /** How long the head of the queue waits for batch partners, from its arrival (`--batching-delay-ms`). Default 0. */
  batchingDelayMs?: number;
  /** Batching gain table, `SIZE=b:gain,...;SIZE=...` (see latency.ts). Default "512x512=4:2.77,8:3.14;1024x1024=2:1.0". */
  batchingGain?: string;
  /** Attention share `a` of the cost: ms grows by (1 + a × megapixels per frame). Default 0 (linear in pixels). */
  attentionFactor?: number;
  /**
   * Sim-only cost terms (no real worker has such a flag): a fixed ms per
   * output and the pixel exponent (see latency.ts CostShape). Default {}:
   * the plain formula.
   */
  costShape?: CostShape;
  /** Raw tensor bytes per sample in `/rollout/generate` answers (before base64). Default 65536. */
  rolloutBytesPerSample?: number;
  /** Make every weight update fail with 400 `success:false`. Default false. */
  failUpdates?: boolean;
  /** pino level of the sim's own log (stdout). Default "silent". */
  logLevel?: LevelWithSilent;
}

/** Options with every default filled in. */
export type ResolvedSimOptions = Required<SimWorkerOptions>;

/**
 * Video models in SGLang's registry are Wan* and *T2V* checkpoints; the
 * launcher and the quick start rely on the name alone to get video workers.
 */
export function deriveTaskType(modelPath: string): TaskType {
  return /wan|video|t2v/i.test(modelPath) ? "T2V" : "T2I";
}

export function isVideoTask(taskType: TaskType): boolean {
  return taskType === "T2V" || taskType === "I2V" || taskType === "TI2V" || taskType === "V2V" || taskType === "F2V";
}

/** Task types whose pipeline takes an image (SGLang's `accepts_image_input`). */
export function acceptsImageInput(taskType: TaskType): boolean {
  return taskType === "I2I" || taskType === "TI2I" || taskType === "I2V" || taskType === "TI2V" || taskType === "F2V" || taskType === "I2M" || taskType === "VLA_ACTION";
}

export function isTaskType(value: string): value is TaskType {
  return (TASK_TYPES as readonly string[]).includes(value);
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(message);
}

/** Fills defaults and rejects nonsense early, so a bad flag fails at start, not mid-test. */
export function resolveOptions(options: SimWorkerOptions = {}): ResolvedSimOptions {
  const modelPath = options.modelPath ?? "Qwen/Qwen-Image";
  const resolved: ResolvedSimOptions = {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    modelPath,
    servedModelName: options.servedModelName ?? modelPath,
    taskType: options.taskType ?? deriveTaskType(modelPath),
    numGpus: options.numGpus ?? 1,
    speed: options.speed ?? 1,
    failureRate: options.failureRate ?? 0,
    warmupMs: options.warmupMs ?? 0,
    weightLoadMs: options.weightLoadMs ?? 200,
    dpSize: options.dpSize ?? 1,
    schedulerConcurrency: options.schedulerConcurrency ?? options.dpSize ?? 1,
    batchingMode: options.batchingMode ?? "dynamic",
    batchingMaxSize: options.batchingMaxSize ?? 1,
    batchingDelayMs: options.batchingDelayMs ?? 0,
    batchingGain: options.batchingGain ?? DEFAULT_GAIN_CURVE_SPEC,
    attentionFactor: options.attentionFactor ?? 0,
    costShape: options.costShape ?? {},
    rolloutBytesPerSample: options.rolloutBytesPerSample ?? 64 * 1024,
    failUpdates: options.failUpdates ?? false,
    logLevel: options.logLevel ?? "silent",
  };
  check(isPort(resolved.port), `port must be 0..65535, got ${resolved.port}`);
  check(modelPath.length > 0, "modelPath must not be empty");
  check(resolved.servedModelName.length > 0, "servedModelName must not be empty");
  check(isIntBetween(resolved.dpSize, 1), `dpSize must be an integer >= 1, got ${resolved.dpSize}`);
  check(resolved.batchingMode === "dynamic", `batchingMode must be "dynamic" (the only one simulated), got ${String(resolved.batchingMode)}`);
  check(isTaskType(resolved.taskType), `taskType must be one of ${TASK_TYPES.join(" ")}, got ${resolved.taskType}`);
  check(isIntBetween(resolved.numGpus, 1), `numGpus must be an integer >= 1, got ${resolved.numGpus}`);
  check(isPositiveNumber(resolved.speed), `speed must be > 0, got ${resolved.speed}`);
  check(resolved.failureRate >= 0 && resolved.failureRate <= 1, `failureRate must be 0..1, got ${resolved.failureRate}`);
  check(isNonNegativeNumber(resolved.warmupMs), `warmupMs must be >= 0, got ${resolved.warmupMs}`);
  check(isNonNegativeNumber(resolved.weightLoadMs), `weightLoadMs must be >= 0, got ${resolved.weightLoadMs}`);
  check(
    isIntBetween(resolved.schedulerConcurrency, 1),
    `schedulerConcurrency must be an integer >= 1, got ${resolved.schedulerConcurrency}`,
  );
  check(
    isIntBetween(resolved.batchingMaxSize, 1),
    `batchingMaxSize must be an integer >= 1, got ${resolved.batchingMaxSize}`,
  );
  check(isNonNegativeNumber(resolved.batchingDelayMs), `batchingDelayMs must be >= 0, got ${resolved.batchingDelayMs}`);
  parseGainCurve(resolved.batchingGain); // throws a RangeError naming the bad part
  check(isNonNegativeNumber(resolved.attentionFactor), `attentionFactor must be >= 0, got ${resolved.attentionFactor}`);
  const { outputMs, pixelExponent } = resolved.costShape;
  check(outputMs === undefined || isNonNegativeNumber(outputMs), `costShape.outputMs must be >= 0, got ${outputMs}`);
  check(pixelExponent === undefined || (isPositiveNumber(pixelExponent) && pixelExponent <= 3), `costShape.pixelExponent must be > 0 and <= 3, got ${pixelExponent}`);
  check(
    isIntBetween(resolved.rolloutBytesPerSample, 0),
    `rolloutBytesPerSample must be an integer >= 0, got ${resolved.rolloutBytesPerSample}`,
  );
  return resolved;
}
