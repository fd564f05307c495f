import { routingAlgorithms } from "../balancer/index.js";
import type { RouterOptions } from "./options.js";
import { limitFlags } from "./flags-limits.js";
import { operationFlags } from "./flags-operations.js";

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
 * Every flag of the router, in `--help` and README order (the limits and
 * operations rows live in flags-limits.ts and flags-operations.ts): the original's
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
    flag: "--hedge",
    arg: "<mode>",
    key: "hedge",
    kind: "choice",
    help: "on: with earliest-finish, a running seeded generation may get one copy on an idle worker when the queue is empty, first answer wins; off: never",
    readmeDefault: "`on`",
    doc: "`on`: with `earliest-finish`, while no request waits in the router queue, a running image or native generation whose body names its `seed` may get one copy on an idle worker at the same weight version when the copy is predicted to finish at least 0.5 s sooner than the original's predicted remaining time, or once the original is overdue (1.25x its prediction and 0.5 s past it) when the copy is predicted to finish before the original would on a GPU 3x slower than predicted; the first answer is the client's, the other is cut (see [Hedged tails](#hedged-tails)). `off`: never",
    choices: ["on", "off"],
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
    doc: "`json`: one JSON object per line (for log collectors); `pretty`: one readable line per event, coloured on a terminal (`NO_COLOR` turns colour off). The access log line (`msg: \"request\"`) carries `requestId`, status, `remote` (the client's address:port), duration, worker, retries, for a hedged request `hedge` (whose answer the client got: `original`, `copy` or `none`) and `hedgeWorker` (the copy's worker), and for a router error its `code`; refusals (401, 413, `queue_full`) are at warn, the rest at info",
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
  ...limitFlags,
  ...operationFlags,
];

/** The README's flag table, as it must read (test/cli.test.ts compares it). */
export function readmeFlagTable(): string {
  const rows = routerFlags
    .filter((f) => f.doc !== undefined && !f.hidden)
    .map((f) => `| \`${f.flag}${f.metavar ? ` ${f.metavar}` : ""}\` | ${f.readmeDefault ?? "none"} | ${f.doc} |`);
  return ["| flag | default | meaning |", "|---|---|---|", ...rows].join("\n");
}
