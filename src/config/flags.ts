import { routingAlgorithms } from "../balancer/index.js";
import type { RouterOptions } from "./options.js";

/**
 * How a flag's value is read and stored:
 * - `string`, `int` (Python's `int()` spellings), `list` (zero or more words);
 * - `seconds`: a number of seconds (Python's `float()`), stored in ms;
 * - `bool`: present or not; `choice`: one of `choices`; `level`: a log level;
 * - `secret-file`: a path; the option is the file's content, read once at start
 *   and trimmed (a key given this way is not in the process's arguments).
 */
export type FlagKind = "string" | "int" | "seconds" | "list" | "bool" | "choice" | "level" | "secret-file";

/** One command-line flag: its parsing, its default (from {@link defaultRouterOptions}), its help and its README row. */
export interface FlagSpec {
  flag: `--${string}`;
  /** commander's argument syntax: `<n>`, `[url...]`; absent for a boolean flag. */
  arg?: string;
  /** The option it sets (`verbose`, `logFormat`: CLI settings that are not router options). */
  key: keyof RouterOptions | "verbose" | "logFormat";
  kind: FlagKind;
  /** One line for `--help`. */
  help: string;
  /** The README's placeholder after the flag (`N`, `URL...`). */
  metavar?: string;
  /** The README's default column. */
  readmeDefault?: string;
  /** The README's meaning column; a flag without it is not in the README (an alias). */
  doc?: string;
  choices?: readonly string[];
  env?: string;
  hidden?: boolean;
  /** `inf` (or 0) means no limit: stored as 0. */
  infinityIsNone?: boolean;
}

/**
 * Every flag of the router, in `--help` and README order: the original's
 * (same names, same defaults, same spellings accepted) and this router's
 * own. `buildCommand` (cli-options.ts) makes the commander options from it, the
 * options are read back through it, and test/cli.test.ts checks that the
 * README's flag table is exactly {@link readmeFlagTable}.
 */
export const routerFlags: readonly FlagSpec[] = [
  {
    flag: "--host",
    arg: "<host>",
    key: "host",
    kind: "string",
    help: "bind address",
    readmeDefault: "`0.0.0.0`",
    doc: "bind address",
  },
  {
    flag: "--port",
    arg: "<port>",
    key: "port",
    kind: "int",
    help: "port for REST, Connect and gRPC",
    readmeDefault: "`30080`",
    doc: "one port for REST, Connect, gRPC and gRPC-Web (`0` picks a free port)",
  },
  {
    flag: "--worker-urls",
    arg: "[url...]",
    key: "workerUrls",
    kind: "list",
    help: "worker URLs to register at start (http://host:port)",
    metavar: "URL...",
    readmeDefault: "none",
    doc: "workers registered at start; a refused URL stops the start with its reason",
  },
  {
    flag: "--max-connections",
    arg: "<n>",
    key: "maxConnections",
    kind: "int",
    help: "keep-alive connections per worker",
    readmeDefault: "`100`",
    doc: "connections per worker at most (more requests wait for a free one, FIFO); idle ones close after 4 s",
  },
  {
    flag: "--timeout",
    arg: "<seconds>",
    key: "timeoutMs",
    kind: "seconds",
    help: "idle limit on a proxied request: seconds without a byte from the worker (0 or inf = none; generation can take minutes)",
    readmeDefault: "`0` (none)",
    doc: "idle limit on a proxied request: seconds without a byte from the worker (not counted while the router waits for its own client: a slow reader, or a body still being sent). Workers send headers only when the picture or video is done, so a total time limit would cut off long videos; the original's 120 s total is gone",
    infinityIsNone: true,
  },
  {
    flag: "--health-check-interval",
    arg: "<seconds>",
    key: "healthCheckIntervalMs",
    kind: "seconds",
    help: "seconds between active health probes",
    readmeDefault: "`10`",
    doc: "seconds between active probes (`GET /health` and `GET /v1/models` of every worker)",
  },
  {
    flag: "--health-check-failure-threshold",
    arg: "<n>",
    key: "healthCheckFailureThreshold",
    kind: "int",
    help: "consecutive failed probes before a worker is dead",
    readmeDefault: "`3`",
    doc: "failed probes in a row before a worker is dead (RL recipes for video models raise it, e.g. 30)",
  },
  {
    flag: "--health-check-success-threshold",
    arg: "<n>",
    key: "healthCheckSuccessThreshold",
    kind: "int",
    help: "consecutive good probes before a dead worker takes traffic again",
    readmeDefault: "`2`",
    doc: "good probes in a row before a dead worker takes traffic again",
  },
  {
    flag: "--health-check-timeout",
    arg: "<seconds>",
    key: "healthCheckTimeoutMs",
    kind: "seconds",
    help: "time limit of one health probe",
    readmeDefault: "`5`",
    doc: "time limit of one probe",
  },
  {
    flag: "--routing-algorithm",
    arg: "<name>",
    key: "routingAlgorithm",
    kind: "choice",
    help: "earliest-finish (router queue, largest first onto the worker that finishes earliest, learned speeds) or the original's least-request, round-robin, random",
    readmeDefault: "`earliest-finish`",
    doc: "`earliest-finish` (see [Scheduling](#scheduling)), or the original's `least-request`, `round-robin`, `random`",
    choices: routingAlgorithms,
  },
  {
    flag: "--worker-batch-size",
    arg: "<n>",
    key: "workerBatchSize",
    kind: "int",
    help: "compatible requests earliest-finish sends together to one worker: the --batching-max-size the workers run with",
    metavar: "N",
    readmeDefault: "`1`",
    doc: "with `earliest-finish`: how many compatible requests (same parameters but prompt and seed) go to one worker together; set it to the `--batching-max-size` your workers run with. Above 1, a worker also gets its next batch while one runs",
  },
  {
    flag: "--verbose",
    key: "verbose",
    kind: "bool",
    help: "log at debug level (same as --log-level debug)",
    readmeDefault: "off",
    doc: "same as `--log-level debug`",
  },
  {
    flag: "--log-level",
    arg: "<level>",
    key: "logLevel",
    kind: "level",
    help: "critical, error, warning, info, debug, trace (uvicorn's names, as the original) or fatal, warn, silent; any case",
    readmeDefault: "`info`",
    doc: "uvicorn's names as the original took them (`critical`, `error`, `warning` (of the access log, only refusals: 401, 413, `queue_full`), `info` (access log on), `debug`, `trace`) or pino's (`fatal`, `warn`, `silent`), in any case",
  },
  {
    flag: "--log-format",
    arg: "<format>",
    key: "logFormat",
    kind: "choice",
    help: "log lines as JSON, or pretty (coloured on a terminal); default: pretty when stdout is a terminal, else json",
    readmeDefault: "`pretty` on a terminal, else `json`",
    doc: "`json`: one JSON object per line (for log collectors); `pretty`: one readable line per event, coloured on a terminal (`NO_COLOR` turns colour off). The access log line (`msg: \"request\"`) carries `requestId`, status, `remote` (the client's address:port), duration, worker, retries and, for a router error, its `code`; refusals (401, 413, `queue_full`) are at warn, the rest at info",
    choices: ["json", "pretty"],
  },
  {
    flag: "--launcher-config",
    arg: "<file>",
    key: "launcherConfig",
    kind: "string",
    help: "YAML file with a launcher: section; the router starts and stops those workers",
    metavar: "FILE",
    readmeDefault: "none",
    doc: "YAML with a `launcher:` section (one group of workers, or a list of groups); the router starts, registers and on exit stops those workers",
  },
  {
    flag: "--access-log-exclude-prefixes",
    arg: "<prefix...>",
    key: "accessLogExcludePrefixes",
    kind: "list",
    help: "path prefixes left out of the access log (e.g. /health /metrics)",
    metavar: "P...",
    readmeDefault: "none",
    doc: "path prefixes left out of the access log; `--uvicorn-access-log-exclude-prefixes` (the original's name) is an alias",
  },
  {
    flag: "--uvicorn-access-log-exclude-prefixes",
    arg: "<prefix...>",
    key: "accessLogExcludePrefixes",
    kind: "list",
    help: "alias of --access-log-exclude-prefixes (the original's name)",
    hidden: true,
  },
  {
    flag: "--max-admin-body-bytes",
    arg: "<n>",
    key: "maxAdminBodyBytes",
    kind: "int",
    help: "size limit of admin request bodies, REST and RPC (413 / resource_exhausted above)",
    readmeDefault: "`1048576`",
    doc: "size limit of admin request bodies: REST (413 `body_too_large` above) and admin RPCs (`resource_exhausted`, HTTP 429 in the Connect protocol), refused from the declared length before the body is read. RPC tensor updates are read whole, so they are under this limit",
  },
  {
    flag: "--max-body-bytes",
    arg: "<n>",
    key: "maxBodyBytes",
    kind: "int",
    help: "size limit of a data-plane request body: generation requests with their input images, tensor updates (413 above)",
    readmeDefault: "`104857600` (100 MiB)",
    doc: "size limit of a data-plane request body (generation requests with their input images, per-worker tensor updates over REST, any forwarded body): 413 `body_too_large` naming the limit, the connection closed. A declared length over it is refused before a worker is chosen; a body without one (chunked, HTTP/2) is counted as it streams and cut at the limit. Rollout submissions (`POST /v1/rollouts`, `RolloutService.Run`) have their own 64 MiB limit",
  },
  {
    flag: "--max-outputs-per-request",
    arg: "<n>",
    key: "maxOutputsPerRequest",
    kind: "int",
    help: "largest n / num_outputs_per_prompt forwarded to a worker (400 above; 0 = no limit)",
    readmeDefault: "`64`",
    doc: "largest `n` / `num_outputs_per_prompt` of a generation request forwarded to a worker: above it, 400 `invalid_request` naming the field and this flag, and no worker sees the request. Real workers take any `num_outputs_per_prompt` (SGLang clamps only `n`, to 10), so one typo can hold a GPU for hours. `0`: no limit",
  },
  {
    flag: "--max-image-side",
    arg: "<px>",
    key: "maxImageSide",
    kind: "int",
    help: "largest width / height / side of size forwarded to a worker, in pixels (400 above; 0 = no limit)",
    readmeDefault: "`8192`",
    doc: "largest `width`, `height` or side of `size` (images and videos) forwarded to a worker, in pixels: above it, 400 `invalid_request`. `0`: no limit",
  },
  {
    flag: "--max-inference-steps",
    arg: "<n>",
    key: "maxInferenceSteps",
    kind: "int",
    help: "largest num_inference_steps forwarded to a worker (400 above; 0 = no limit)",
    readmeDefault: "`1000`",
    doc: "largest `num_inference_steps` forwarded to a worker: above it, 400 `invalid_request`. `0`: no limit",
  },
  {
    flag: "--max-frames",
    arg: "<n>",
    key: "maxFrames",
    kind: "int",
    help: "largest num_frames (or seconds x fps) forwarded to a worker (400 above; 0 = no limit)",
    readmeDefault: "`1024`",
    doc: "largest `num_frames`, or `seconds` x `fps` (fps 24 when missing), of a video forwarded to a worker: above it, 400 `invalid_request`. `0`: no limit",
  },
  {
    flag: "--admin-api-key",
    arg: "<key>",
    key: "adminApiKey",
    kind: "string",
    help: "require Authorization: Bearer <key> on admin REST routes and every RPC",
    metavar: "KEY",
    readmeDefault: "none",
    doc: "bearer key for admin REST routes and every RPC (env `SGLANG_D_ROUTER_ADMIN_API_KEY`)",
    env: "SGLANG_D_ROUTER_ADMIN_API_KEY",
  },
  {
    flag: "--api-key",
    arg: "<key>",
    key: "apiKey",
    kind: "string",
    help: "require Authorization: Bearer <key> on the data plane (/v1/..., /rollout/..., forwarded paths)",
    metavar: "KEY",
    readmeDefault: "none",
    doc: "bearer key for the data plane (env `SGLANG_D_ROUTER_API_KEY`)",
    env: "SGLANG_D_ROUTER_API_KEY",
  },
  {
    flag: "--admin-api-key-file",
    arg: "<path>",
    key: "adminApiKey",
    kind: "secret-file",
    help: "read the admin key from a file (once, at start; trimmed), so it is not in the command line",
    metavar: "PATH",
    readmeDefault: "none",
    doc: "`--admin-api-key` read from a file once at start (surrounding whitespace trimmed), so the key is not visible in `ps`; a missing or empty file stops the start (exit 2); not together with `--admin-api-key` or its env",
  },
  {
    flag: "--api-key-file",
    arg: "<path>",
    key: "apiKey",
    kind: "secret-file",
    help: "read the data-plane key from a file (once, at start; trimmed), so it is not in the command line",
    metavar: "PATH",
    readmeDefault: "none",
    doc: "`--api-key` read from a file, as `--admin-api-key-file`",
  },
  {
    flag: "--max-concurrency-per-worker",
    arg: "<n>",
    key: "maxConcurrencyPerWorker",
    kind: "int",
    help: "most generation requests in flight on one worker; the rest wait in the router queue (0 = the algorithm's own: unlimited for least-request/round-robin/random, one at a time for earliest-finish, 2 x --worker-batch-size when batching)",
    metavar: "N",
    readmeDefault: "`0` (the algorithm's own)",
    doc: "most generation requests in flight on one worker; the rest wait in the router queue. `0`: unlimited under `least-request`, `round-robin` and `random` (the queue is then FIFO); under `earliest-finish` one at a time per worker (two batches of `--worker-batch-size` for a batching worker), the queue ordered by the plan",
  },
  {
    flag: "--queue-size",
    arg: "<n>",
    key: "queueSize",
    kind: "int",
    help: "most requests waiting in the router queue (503 queue_full beyond)",
    metavar: "N",
    readmeDefault: "`10000`",
    doc: "most requests waiting in the router (503 `queue_full` beyond)",
  },
  {
    flag: "--queue-timeout",
    arg: "<seconds>",
    key: "queueTimeoutMs",
    kind: "seconds",
    help: "longest wait in the router queue (then 503 queue_timeout with Retry-After)",
    readmeDefault: "`300`",
    doc: "longest wait in the queue (then 503 `queue_timeout` with `Retry-After`)",
  },
  {
    flag: "--max-retries",
    arg: "<n>",
    key: "maxRetries",
    kind: "int",
    help: "further workers tried when one fails before sending any answer byte",
    metavar: "N",
    readmeDefault: "`2`",
    doc: "further workers tried when one fails before sending any answer byte",
  },
  {
    flag: "--retry-budget",
    arg: "<seconds>",
    key: "retryBudgetMs",
    kind: "seconds",
    help: "no retry starts later than this after the request arrived",
    readmeDefault: "`300`",
    doc: "no retry starts later than this after the request arrived",
  },
  {
    flag: "--eject-after-failures",
    arg: "<n>",
    key: "ejectAfterFailures",
    kind: "int",
    help: "consecutive failed requests (5xx, reset, timeout) that take a worker out of rotation; a refused connection does at once",
    metavar: "N",
    readmeDefault: "`3`",
    doc: "failed requests in a row (5xx, reset, timeout) that take a worker out of rotation; a refused connection does at once",
  },
  {
    flag: "--shutdown-timeout",
    arg: "<seconds>",
    key: "shutdownTimeoutMs",
    kind: "seconds",
    help: "on SIGTERM/SIGINT, time in-flight requests get to finish",
    readmeDefault: "`30`",
    doc: "on SIGTERM/SIGINT, time in-flight requests get to finish",
  },
  {
    flag: "--drain-timeout",
    arg: "<seconds>",
    key: "drainTimeoutMs",
    kind: "seconds",
    help: "time a refit or sleep waits for in-flight generation to finish",
    readmeDefault: "`300`",
    doc: "time a refit or a sleep waits for in-flight generation to finish (per call: `?drain_timeout_s=`)",
  },
  {
    flag: "--refit-timeout",
    arg: "<seconds>",
    key: "refitTimeoutMs",
    kind: "seconds",
    help: "time a two-phase refit (POST /refit/begin) may stay open before it aborts",
    readmeDefault: "`600`",
    doc: "time a two-phase refit may stay open before it aborts itself",
  },
  {
    flag: "--state-file",
    arg: "<path>",
    key: "stateFile",
    kind: "string",
    help: "keep the weight version, refit state and worker set in this file across restarts",
    metavar: "PATH",
    readmeDefault: "none",
    doc: "keeps the weight version, any refit in progress and the registered workers (with quarantine, draining and sleep) across router restarts: a restarted router registers them again at once and brings each to the pool's weights before it takes traffic. Launcher-managed workers are not in it (the launcher starts its own)",
  },
  {
    flag: "--client-header-timeout",
    arg: "<seconds>",
    key: "clientHeaderTimeoutMs",
    kind: "seconds",
    help: "time a client may take to send its request headers (slow clients are disconnected)",
    readmeDefault: "`30`",
    doc: "time a client may take to send its request headers; slow clients are disconnected",
  },
  {
    flag: "--client-body-timeout",
    arg: "<seconds>",
    key: "clientBodyTimeoutMs",
    kind: "seconds",
    help: "a client that sends no request-body byte for this long is disconnected (0 = never)",
    readmeDefault: "`60`",
    doc: "a client that sends no request-body byte for this long is disconnected (`0` = never); waiting for an answer is not limited",
  },
  {
    flag: "--weight-call-timeout",
    arg: "<seconds>",
    key: "weightCallTimeoutMs",
    kind: "seconds",
    help: "limit of one weight load, sleep or wake call to a worker (a worker that never answers fails the call)",
    readmeDefault: "`600`",
    doc: "limit of one weight load, sleep or wake call to a worker; a worker that never answers fails the call (and leaves rotation) instead of keeping the refit open",
  },];

/** The README's flag table, as it must read (test/cli.test.ts compares it). */
export function readmeFlagTable(): string {
  const rows = routerFlags
    .filter((f) => f.doc !== undefined && !f.hidden)
    .map((f) => `| \`${f.flag}${f.metavar ? ` ${f.metavar}` : ""}\` | ${f.readmeDefault ?? "none"} | ${f.doc} |`);
  return ["| flag | default | meaning |", "|---|---|---|", ...rows].join("\n");
}
