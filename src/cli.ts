#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from "commander";
import { routingAlgorithms, type RoutingAlgorithm } from "./balancer/index.js";
import { resolveRouterOptions, type RouterOptions } from "./config/options.js";
import { RouterError } from "./errors.js";
import type { LevelWithSilent } from "pino";
import { expandAbbreviations, logLevelSpellings, normalizeLogLevel, parsePythonFloat, parsePythonInt } from "./config/argparse-compat.js";
import { createLogger, type LogFormat } from "./log.js";
import { startRouter } from "./router.js";
import { VERSION } from "./version.js";

/**
 * A numeric flag, read as the original's argparse read it (Python's `int()` /
 * `float()`: `1_000`, ` 5 `, `1e3`, `inf`). Infinity is kept for the caller
 * to judge (`--timeout inf` means no limit); NaN is refused.
 */
function num(name: string, integer = false) {
  return (v: string): number => {
    const n = integer ? parsePythonInt(v) : parsePythonFloat(v);
    if (n === null || Number.isNaN(n)) throw new InvalidArgumentError(`${name} must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(v)}`);
    return n;
  };
}

function logLevel(v: string): LevelWithSilent {
  const level = normalizeLogLevel(v);
  if (level === null) throw new InvalidArgumentError(`--log-level must be one of ${logLevelSpellings.join(", ")} (any case), got ${JSON.stringify(v)}`);
  return level;
}

/** Seconds to ms, where an infinite limit (`inf`) means none (0). */
function secondsOrNone(s: number): number {
  return s === Infinity ? 0 : s * 1000;
}

/**
 * The flags of the original `sglang-d-router` (same names, same defaults),
 * plus this router's own. Kept in one table so `--help` and the README agree.
 */
export function buildCommand(): Command {
  return new Command("sglang-d-router")
    .description("Router for SGLang diffusion workers: load balancing, health checks, refit and sleep/wake, streaming proxy.")
    .version(VERSION)
    .option("--host <host>", "bind address", "0.0.0.0")
    .option("--port <port>", "port for REST, Connect and gRPC", num("--port", true), 30080)
    // nargs="*" in the original: the flag may come with no URL at all.
    .option("--worker-urls [url...]", "worker URLs to register at start (http://host:port)", [])
    .option("--max-connections <n>", "keep-alive connections per worker", num("--max-connections", true), 100)
    .option("--timeout <seconds>", "idle limit on a proxied request: seconds without a byte from the worker (0 or inf = none; generation can take minutes)", num("--timeout"), 0)
    .option("--health-check-interval <seconds>", "seconds between active health probes", num("--health-check-interval"), 10)
    .option("--health-check-failure-threshold <n>", "consecutive failed probes before a worker is dead", num("--health-check-failure-threshold", true), 3)
    .option("--health-check-success-threshold <n>", "consecutive good probes before a dead worker takes traffic again", num("--health-check-success-threshold", true), 2)
    .option("--health-check-timeout <seconds>", "time limit of one health probe", num("--health-check-timeout"), 5)
    .addOption(new Option("--routing-algorithm <name>", "earliest-finish (router queue, largest first onto the worker that finishes earliest, learned speeds) or the original's least-request, round-robin, random").choices(routingAlgorithms as string[]).default("earliest-finish"))
    .option("--worker-batch-size <n>", "compatible requests earliest-finish sends together to one worker: the --batching-max-size the workers run with", num("--worker-batch-size", true), 1)
    .option("--verbose", "log at debug level (same as --log-level debug)", false)
    .option("--log-level <level>", "critical, error, warning, info, debug, trace (uvicorn's names, as the original) or fatal, warn, silent; any case", logLevel, "info")
    .addOption(new Option("--log-format <format>", "log lines as JSON, or pretty (coloured on a terminal); default: pretty when stdout is a terminal, else json").choices(["json", "pretty"]))
    .option("--launcher-config <file>", "YAML file with a launcher: section; the router starts and stops those workers")
    .option("--access-log-exclude-prefixes <prefix...>", "path prefixes left out of the access log (e.g. /health /metrics)", [])
    .addOption(new Option("--uvicorn-access-log-exclude-prefixes <prefix...>", "alias of --access-log-exclude-prefixes (the original's name)").hideHelp())
    .option("--max-admin-body-bytes <n>", "size limit of admin request bodies, REST and RPC (413 / resource_exhausted above)", num("--max-admin-body-bytes", true), 1 << 20)
    .option("--max-body-bytes <n>", "size limit of a data-plane request body: generation requests with their input images, tensor updates (413 above)", num("--max-body-bytes", true), 100 * 1024 * 1024)
    .addOption(new Option("--admin-api-key <key>", "require Authorization: Bearer <key> on admin REST routes and every RPC").env("SGLANG_D_ROUTER_ADMIN_API_KEY"))
    .addOption(new Option("--api-key <key>", "require Authorization: Bearer <key> on the data plane (/v1/..., /rollout/..., forwarded paths)").env("SGLANG_D_ROUTER_API_KEY"))
    .option("--max-concurrency-per-worker <n>", "most generation requests in flight on one worker; the rest wait in the router queue (0 = unlimited)", num("--max-concurrency-per-worker", true), 0)
    .option("--queue-size <n>", "most requests waiting in the router queue (503 queue_full beyond)", num("--queue-size", true), 10_000)
    .option("--queue-timeout <seconds>", "longest wait in the router queue (then 503 queue_timeout with Retry-After)", num("--queue-timeout"), 300)
    .option("--max-retries <n>", "further workers tried when one fails before sending any answer byte", num("--max-retries", true), 2)
    .option("--retry-budget <seconds>", "no retry starts later than this after the request arrived", num("--retry-budget"), 300)
    .option("--eject-after-failures <n>", "consecutive failed requests (5xx, reset, timeout) that take a worker out of rotation; a refused connection does at once", num("--eject-after-failures", true), 3)
    .option("--shutdown-timeout <seconds>", "on SIGTERM/SIGINT, time in-flight requests get to finish", num("--shutdown-timeout"), 30)
    .option("--drain-timeout <seconds>", "time a refit or sleep waits for in-flight generation to finish", num("--drain-timeout"), 300)
    .option("--refit-timeout <seconds>", "time a two-phase refit (POST /refit/begin) may stay open before it aborts", num("--refit-timeout"), 600)
    .option("--state-file <path>", "keep the weight version and refit state in this file across restarts")
    .option("--client-header-timeout <seconds>", "time a client may take to send its request headers (slow clients are disconnected)", num("--client-header-timeout"), 30)
    .option("--client-body-timeout <seconds>", "a client that sends no request-body byte for this long is disconnected (0 = never)", num("--client-body-timeout"), 60)
    .option("--weight-call-timeout <seconds>", "limit of one weight load, sleep or wake call to a worker (a worker that never answers fails the call)", num("--weight-call-timeout"), 600);
}

/** What the command line gives beside the router's options: how to write logs. */
export interface CliSettings {
  options: RouterOptions;
  /** null: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | null;
}

export function settingsFromArgv(argv: string[]): CliSettings {
  const cmd = buildCommand();
  cmd.exitOverride();
  const longFlags = cmd.options.map((o) => o.long).filter((f): f is string => f !== undefined);
  cmd.parse(expandAbbreviations(argv, [...longFlags, "--help"]), { from: "user" });
  const o = cmd.opts();
  return { options: optionsFrom(o), logFormat: (o.logFormat as LogFormat | undefined) ?? null };
}

export function optionsFromArgv(argv: string[]): RouterOptions {
  return settingsFromArgv(argv).options;
}

function optionsFrom(o: Record<string, any>): RouterOptions {
  return resolveRouterOptions({
    host: o.host,
    port: o.port,
    workerUrls: o.workerUrls === true ? [] : o.workerUrls,
    maxConnections: o.maxConnections,
    timeoutMs: secondsOrNone(o.timeout),
    healthCheckIntervalMs: o.healthCheckInterval * 1000,
    healthCheckFailureThreshold: o.healthCheckFailureThreshold,
    healthCheckSuccessThreshold: o.healthCheckSuccessThreshold,
    healthCheckTimeoutMs: o.healthCheckTimeout * 1000,
    routingAlgorithm: o.routingAlgorithm as RoutingAlgorithm,
    workerBatchSize: o.workerBatchSize,
    logLevel: o.verbose ? "debug" : o.logLevel,
    launcherConfig: o.launcherConfig ?? null,
    accessLogExcludePrefixes: [...o.accessLogExcludePrefixes, ...(o.uvicornAccessLogExcludePrefixes ?? [])],
    maxAdminBodyBytes: o.maxAdminBodyBytes,
    maxBodyBytes: o.maxBodyBytes,
    adminApiKey: o.adminApiKey ?? null,
    apiKey: o.apiKey ?? null,
    maxConcurrencyPerWorker: o.maxConcurrencyPerWorker,
    queueSize: o.queueSize,
    queueTimeoutMs: o.queueTimeout * 1000,
    maxRetries: o.maxRetries,
    retryBudgetMs: o.retryBudget * 1000,
    ejectAfterFailures: o.ejectAfterFailures,
    shutdownTimeoutMs: o.shutdownTimeout * 1000,
    drainTimeoutMs: o.drainTimeout * 1000,
    refitTimeoutMs: o.refitTimeout * 1000,
    stateFile: o.stateFile ?? null,
    clientHeaderTimeoutMs: o.clientHeaderTimeout * 1000,
    clientBodyTimeoutMs: o.clientBodyTimeout * 1000,
    weightCallTimeoutMs: o.weightCallTimeout * 1000,
  });
}

async function main(): Promise<void> {
  let options: RouterOptions;
  let logFormat: LogFormat | null;
  try {
    ({ options, logFormat } = settingsFromArgv(process.argv.slice(2)));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
    if (typeof code === "string" && code.startsWith("commander.")) process.exit(2);
    process.stderr.write(`sglang-d-router: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: options.logLevel, format: logFormat ?? (process.stdout.isTTY ? "pretty" : "json") });
  let router;
  try {
    router = await startRouter(options, logger);
  } catch (err) {
    const e = RouterError.from(err);
    logger.fatal({ code: e.code }, e.message);
    process.stderr.write(`sglang-d-router: ${e.message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    router.close().then(
      () => {
        logger.info("router stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // Launched workers run in their own process groups: if the router dies
  // without a clean shutdown, they would keep their GPUs.
  process.on("exit", () => router.launcher.killAllSync());
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

void main();
