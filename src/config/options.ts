import type { LevelWithSilent } from "pino";
import { routingAlgorithms, type RoutingAlgorithm } from "../balancer/index.js";
import { RouterError } from "../errors.js";
import { isIntBetween, isNonNegativeNumber, isPort, isPositiveNumber } from "./checks.js";
import { maxTimerMs } from "./durations.js";
import { defaultRequestLimits, type RequestLimits } from "../scheduler/request-limits.js";
import { parseEtcdUrl } from "../state/etcd-url.js";

/** Everything the router process is configured with; see {@link resolveRouterOptions}. */
export interface RouterOptions {
  /** Bind address; default "0.0.0.0" (as the original). */
  readonly host: string;
  /** Port for REST, Connect and gRPC; default 30080. 0 picks a free port. */
  readonly port: number;
  /** Workers registered at start. */
  readonly workerUrls: readonly string[];
  /** Keep-alive connections per worker; default 100. */
  readonly maxConnections: number;
  /** Idle limit (no bytes from the worker) on a proxied request; 0 = none. Default 0. */
  readonly timeoutMs: number;
  /** Active health probe period; default 10 s. */
  readonly healthCheckIntervalMs: number;
  /** Consecutive failed probes before a worker is dead; default 3. */
  readonly healthCheckFailureThreshold: number;
  /** Consecutive good probes before a dead worker takes traffic again; default 2. */
  readonly healthCheckSuccessThreshold: number;
  /** Time limit of one probe; default 5 s. */
  readonly healthCheckTimeoutMs: number;
  /** Default "earliest-finish"; "least-request", "round-robin", "random" as the original. */
  readonly routingAlgorithm: RoutingAlgorithm;
  /** Compatible requests earliest-finish sends together to one worker (the workers' --batching-max-size); default 1. */
  readonly workerBatchSize: number;
  /** Hedged tails in earliest-finish mode (admission/hedge.ts); default "on". */
  readonly hedge: "on" | "off";
  readonly logLevel: LevelWithSilent;
  /** Path prefixes left out of the access log. */
  readonly accessLogExcludePrefixes: readonly string[];
  /** YAML launcher config, or null. */
  readonly launcherConfig: string | null;
  /** Limit of admin request bodies (REST JSON and admin RPCs); default 1 MiB. */
  readonly maxAdminBodyBytes: number;
  /** Limit of a data-plane request body (generation requests, input images, tensor updates); default 100 MiB. */
  readonly maxBodyBytes: number;
  /** Largest n / num_outputs_per_prompt forwarded; 0 = no limit. Default 64. */
  readonly maxOutputsPerRequest: number;
  /** Largest width, height or side of size forwarded, in pixels; 0 = no limit. Default 8192. */
  readonly maxImageSide: number;
  /** Largest num_inference_steps forwarded; 0 = no limit. Default 1000. */
  readonly maxInferenceSteps: number;
  /** Largest num_frames (or seconds x fps) forwarded; 0 = no limit. Default 1024. */
  readonly maxFrames: number;
  /** Bearer key for admin REST routes and every RPC; null = open. */
  readonly adminApiKey: string | null;
  /** Bearer key for the data plane; null = open. */
  readonly apiKey: string | null;
  /** Most generation requests in flight per worker; 0 = unlimited (default). */
  readonly maxConcurrencyPerWorker: number;
  /** Most requests waiting in the router queue; default 10000. */
  readonly queueSize: number;
  /** Longest wait in the router queue; default 300 s. */
  readonly queueTimeoutMs: number;
  /** Further workers tried when one fails before answering; default 2. */
  readonly maxRetries: number;
  /** No retry starts later than this after the request arrived; default 300 s. */
  readonly retryBudgetMs: number;
  /** Consecutive failed requests (5xx, reset, timeout) that eject a worker; refused connections eject at once. Default 3. */
  readonly ejectAfterFailures: number;
  /** On SIGTERM/SIGINT, time in-flight requests get to finish; default 30 s. */
  readonly shutdownTimeoutMs: number;
  /** Time a refit or sleep waits for in-flight generation to finish; default 300 s. */
  readonly drainTimeoutMs: number;
  /** Time a two-phase refit may stay open before it aborts itself; default 600 s. */
  readonly refitTimeoutMs: number;
  /** File that keeps the weight version and refit state across restarts; null = none. */
  readonly stateFile: string | null;
  /** `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: the same state in etcd, shared by every router given the same prefix; null = none. */
  readonly stateStore: string | null;
  /** A client that sends no request-body byte for this long is disconnected; default 60 s, 0 = never. */
  readonly clientBodyTimeoutMs: number;
  /** Time a client may take to send its request headers; default 30 s. */
  readonly clientHeaderTimeoutMs: number;
  /** Limit of one weight load, sleep or wake call to a worker; default 600 s. */
  readonly weightCallTimeoutMs: number;
}

export const defaultRouterOptions: RouterOptions = Object.freeze({
  host: "0.0.0.0",
  port: 30080,
  workerUrls: [],
  maxConnections: 100,
  timeoutMs: 0,
  healthCheckIntervalMs: 10_000,
  healthCheckFailureThreshold: 3,
  healthCheckSuccessThreshold: 2,
  healthCheckTimeoutMs: 5_000,
  routingAlgorithm: "earliest-finish",
  workerBatchSize: 1,
  hedge: "on",
  logLevel: "info",
  accessLogExcludePrefixes: [],
  launcherConfig: null,
  maxAdminBodyBytes: 1 << 20,
  // Generous: an edit request with several full-size input images in base64,
  // or a tensor update's payload, must fit; a runaway client must not.
  maxBodyBytes: 100 * 1024 * 1024,
  maxOutputsPerRequest: defaultRequestLimits.maxOutputs,
  maxImageSide: defaultRequestLimits.maxSide,
  maxInferenceSteps: defaultRequestLimits.maxSteps,
  maxFrames: defaultRequestLimits.maxFrames,
  adminApiKey: null,
  apiKey: null,
  maxConcurrencyPerWorker: 0,
  queueSize: 10_000,
  queueTimeoutMs: 300_000,
  maxRetries: 2,
  retryBudgetMs: 300_000,
  ejectAfterFailures: 3,
  shutdownTimeoutMs: 30_000,
  drainTimeoutMs: 300_000,
  refitTimeoutMs: 600_000,
  stateFile: null,
  stateStore: null,
  clientBodyTimeoutMs: 60_000,
  clientHeaderTimeoutMs: 30_000,
  weightCallTimeoutMs: 600_000,
});


/** A value for an error message; never throws (a Symbol or an odd object may be passed in from code). */
function show(v: unknown): string {
  try {
    return typeof v === "string" ? JSON.stringify(v) : String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

const logLevels = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

function check(ok: boolean, key: string, message: string): void {
  if (!ok) throw new RouterError("invalid_request", `option ${key} ${message}`, { details: { param: key } });
}

/**
 * Fills defaults, checks every value once and freezes the result, so the rest
 * of the router never re-validates or guesses a default.
 */
export function resolveRouterOptions(input: Partial<RouterOptions>): RouterOptions {
  const known = new Set(Object.keys(defaultRouterOptions));
  for (const key of Object.keys(input)) check(known.has(key), key, "is unknown");
  const o: RouterOptions = { ...defaultRouterOptions, ...stripUndefined(input) };
  check(isPort(o.port), "port", `must be an integer 0-65535, got ${show(o.port)}`);
  check(isIntBetween(o.maxConnections, 1), "max-connections", `must be an integer >= 1, got ${show(o.maxConnections)}`);
  check(isNonNegativeNumber(o.timeoutMs), "timeout", `must be >= 0 seconds, got ${show(o.timeoutMs)} ms`);
  check(isPositiveNumber(o.healthCheckIntervalMs), "health-check-interval", "must be > 0 seconds");
  check(isIntBetween(o.healthCheckFailureThreshold, 1), "health-check-failure-threshold", "must be an integer >= 1");
  check(isIntBetween(o.healthCheckSuccessThreshold, 1), "health-check-success-threshold", "must be an integer >= 1");
  check(isPositiveNumber(o.healthCheckTimeoutMs), "health-check-timeout", "must be > 0 seconds");
  check(routingAlgorithms.includes(o.routingAlgorithm), "routing-algorithm", `must be one of ${routingAlgorithms.join(", ")}, got ${show(o.routingAlgorithm)}`);
  check(isIntBetween(o.workerBatchSize, 1, 64), "worker-batch-size", `must be an integer 1-64, got ${show(o.workerBatchSize)}`);
  check(o.hedge === "on" || o.hedge === "off", "hedge", `must be on or off, got ${show(o.hedge)}`);
  check(logLevels.has(o.logLevel), "log-level", `must be one of ${[...logLevels].join(", ")}`);
  check(isIntBetween(o.maxAdminBodyBytes, 1), "max-admin-body-bytes", "must be a positive integer");
  check(isIntBetween(o.maxBodyBytes, 1), "max-body-bytes", "must be a positive integer");
  check(isIntBetween(o.maxOutputsPerRequest, 0), "max-outputs-per-request", "must be an integer >= 0 (0 = no limit)");
  check(isIntBetween(o.maxImageSide, 0), "max-image-side", "must be an integer >= 0 (0 = no limit)");
  check(isIntBetween(o.maxInferenceSteps, 0), "max-inference-steps", "must be an integer >= 0 (0 = no limit)");
  check(isIntBetween(o.maxFrames, 0), "max-frames", "must be an integer >= 0 (0 = no limit)");
  check(o.adminApiKey === null || (typeof o.adminApiKey === "string" && o.adminApiKey.length > 0), "admin-api-key", "must not be empty");
  check(o.apiKey === null || (typeof o.apiKey === "string" && o.apiKey.length > 0), "api-key", "must not be empty");
  check(isIntBetween(o.maxConcurrencyPerWorker, 0), "max-concurrency-per-worker", "must be an integer >= 0 (0 = unlimited)");
  check(isIntBetween(o.queueSize, 0), "queue-size", "must be an integer >= 0");
  check(isPositiveNumber(o.queueTimeoutMs), "queue-timeout", "must be > 0 seconds");
  check(isIntBetween(o.maxRetries, 0), "max-retries", "must be an integer >= 0");
  check(isNonNegativeNumber(o.retryBudgetMs), "retry-budget", "must be >= 0 seconds");
  check(isIntBetween(o.ejectAfterFailures, 1), "eject-after-failures", "must be an integer >= 1");
  check(isNonNegativeNumber(o.shutdownTimeoutMs), "shutdown-timeout", "must be >= 0 seconds");
  check(isPositiveNumber(o.drainTimeoutMs), "drain-timeout", "must be > 0 seconds");
  check(isPositiveNumber(o.refitTimeoutMs), "refit-timeout", "must be > 0 seconds");
  check(o.stateFile === null || o.stateStore === null, "state-store", "cannot be combined with --state-file: give one place for the router's state");
  if (o.stateStore !== null) parseEtcdUrl(o.stateStore);
  check(isNonNegativeNumber(o.clientBodyTimeoutMs), "client-body-timeout", "must be >= 0 seconds");
  check(isPositiveNumber(o.clientHeaderTimeoutMs), "client-header-timeout", "must be > 0 seconds");
  check(isPositiveNumber(o.weightCallTimeoutMs), "weight-call-timeout", "must be > 0 seconds");
  const timers: [keyof RouterOptions, string][] = [
    ["timeoutMs", "timeout"],
    ["healthCheckIntervalMs", "health-check-interval"],
    ["healthCheckTimeoutMs", "health-check-timeout"],
    ["queueTimeoutMs", "queue-timeout"],
    ["retryBudgetMs", "retry-budget"],
    ["shutdownTimeoutMs", "shutdown-timeout"],
    ["drainTimeoutMs", "drain-timeout"],
    ["refitTimeoutMs", "refit-timeout"],
    ["clientBodyTimeoutMs", "client-body-timeout"],
    ["clientHeaderTimeoutMs", "client-header-timeout"],
    ["weightCallTimeoutMs", "weight-call-timeout"],
  ];
  for (const [key, flag] of timers) {
    check((o[key] as number) <= maxTimerMs, flag, `must be at most ${Math.floor(maxTimerMs / 1000)} seconds (about 24.8 days, the longest Node timer), got ${show((o[key] as number) / 1000)}`);
  }
  return Object.freeze({ ...o, workerUrls: Object.freeze([...o.workerUrls]), accessLogExcludePrefixes: Object.freeze([...o.accessLogExcludePrefixes]) });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The request limits of the options, as the data plane checks them. */
export function requestLimitsOf(o: RouterOptions): RequestLimits {
  return { maxOutputs: o.maxOutputsPerRequest, maxSide: o.maxImageSide, maxSteps: o.maxInferenceSteps, maxFrames: o.maxFrames };
}
