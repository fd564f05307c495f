import { isIntBetween, isPositiveNumber } from "../config/checks.js";
import { readFileSync } from "node:fs";
import { load, YAMLException } from "js-yaml";
import { splitShellArgs } from "./args.js";
import { LauncherConfigError } from "./errors.js";

/**
 * Worker backends: `local` runs `sglang serve`, `sim` runs the simulated
 * worker of this repo, both as child processes; `slurm` submits one Slurm
 * job per worker (running either of them, see {@link SlurmOptions.program}).
 */
export const launcherBackends = ["local", "sim", "slurm"] as const;
export type LauncherBackend = (typeof launcherBackends)[number];
/** What happens when a managed worker exits without being stopped: `on-failure` restarts it, `never` leaves it. */
export const restartPolicies = ["on-failure", "never"] as const;
export type RestartPolicy = (typeof restartPolicies)[number];

/** What a Slurm job runs: `sglang serve`, or the simulated worker (tests, demos). */
export const slurmPrograms = ["sglang", "sim"] as const;
export type SlurmProgram = (typeof slurmPrograms)[number];

/** The `slurm:` mapping of a group with `backend: slurm`, defaults filled. */
export interface SlurmOptions {
  /** What each job runs. Default "sglang". */
  readonly program: SlurmProgram;
  /** `--partition`; null = the cluster's default partition. Default null. */
  readonly partition: string | null;
  /** `--account`. Default null. */
  readonly account: string | null;
  /** `--qos`. Default null. */
  readonly qos: string | null;
  /** `--time` (Slurm's time format, e.g. "4:00:00"). Default null (the partition's limit). */
  readonly time: string | null;
  /** `--constraint`. Default null. */
  readonly constraint: string | null;
  /** Shell-split and passed to `sbatch` before the script. Default "". */
  readonly sbatch_args: string;
  /** Exported in the job before the worker starts. Default {}. */
  readonly env: Readonly<Record<string, string>>;
  /** Shell lines run in the job before the worker (module load, venv activation). Default []. */
  readonly setup: readonly string[];
  /** Folder, visible from the compute nodes, for job scripts, logs and the files where jobs report their port. Default ".sglang-d-router/slurm" (relative to the router's working directory). */
  readonly work_dir: string;
  /** Seconds between `squeue` polls. Default 2. */
  readonly poll_interval: number;
}

export const slurmDefaults: SlurmOptions = Object.freeze({
  program: "sglang",
  partition: null,
  account: null,
  qos: null,
  time: null,
  constraint: null,
  sbatch_args: "",
  env: Object.freeze({}),
  setup: Object.freeze([]),
  work_dir: ".sglang-d-router/slurm",
  poll_interval: 2,
});

/**
 * The `launcher:` section of the YAML file, every default filled in. Key names
 * stay snake_case because they are the compatibility contract with the Python
 * router's YAML files.
 */
export interface LauncherConfig {
  /** Which program to run per worker. Default "local". */
  readonly backend: LauncherBackend;
  /** Model path or hub id passed as `--model-path`. Required, non-empty. */
  readonly model: string;
  /** Workers to start. Default 1, >= 1. */
  readonly num_workers: number;
  /** GPUs per worker (`--num-gpus` and the CUDA_VISIBLE_DEVICES slice size). Default 1, >= 1. */
  readonly num_gpus_per_worker: number;
  /** Address workers bind to (`--host`). Default "127.0.0.1" ("0.0.0.0" with backend slurm). */
  readonly worker_host: string;
  /** Worker i prefers HTTP port `worker_base_port + 2*i`. Default 10090. */
  readonly worker_base_port: number;
  /** CUDA_VISIBLE_DEVICES per worker, e.g. ["0,1","2,3"]; null = derive from env / nvidia-smi. Default null. */
  readonly worker_gpu_ids: readonly string[] | null;
  /** Shell-split and appended to every worker's command line. Default "". */
  readonly worker_extra_args: string;
  /** Seconds to wait for each worker's `/health` to answer 200. Default 600. */
  readonly wait_timeout: number;
  /** Worker i prefers `--master-port` `master_port_base + i*internal_port_stride`. Default 30005. */
  readonly master_port_base: number;
  /** Worker i prefers `--scheduler-port` `scheduler_port_base + i*internal_port_stride`. Default 5555. */
  readonly scheduler_port_base: number;
  /** Distance between consecutive workers' preferred internal ports. Default 1000. */
  readonly internal_port_stride: number;
  /** Accepted for compatibility with the Python launcher; output is tagged through the logger instead. Default "[local-launcher]". */
  readonly log_prefix: string;
  /** A worker that exits without being stopped: restarted (`on-failure`, default) or left exited (`never`). */
  readonly restart: RestartPolicy;
  /** Most restarts of one worker over its life; then it stays `failed`. Default 5. */
  readonly max_restarts: number;
  /** Seconds before the first restart, doubled for each further one in a row (at most 60 s). Default 1. */
  readonly restart_backoff: number;
  /** The `slurm:` options, defaults filled, when backend is "slurm"; null otherwise. */
  readonly slurm: SlurmOptions | null;
}

/**
 * The groups of a `launcher:` section, in file order: `launcher:` is one
 * mapping (the Python router's format: one group) or a list of mappings, one
 * per kind of worker (e.g. image workers and a video worker). Frozen.
 */
export type LauncherGroups = readonly LauncherConfig[];

/** Defaults of every optional key (everything but `model`). */
export const launcherConfigDefaults: Readonly<Omit<LauncherConfig, "model">> = Object.freeze({
  backend: "local",
  num_workers: 1,
  num_gpus_per_worker: 1,
  worker_host: "127.0.0.1",
  worker_base_port: 10090,
  worker_gpu_ids: null,
  worker_extra_args: "",
  wait_timeout: 600,
  master_port_base: 30005,
  scheduler_port_base: 5555,
  internal_port_stride: 1000,
  log_prefix: "[local-launcher]",
  restart: "on-failure",
  max_restarts: 5,
  restart_backoff: 1,
  slurm: null,
});

const knownKeys: readonly (keyof LauncherConfig)[] = [
  "backend",
  "model",
  "num_workers",
  "num_gpus_per_worker",
  "worker_host",
  "worker_base_port",
  "worker_gpu_ids",
  "worker_extra_args",
  "wait_timeout",
  "master_port_base",
  "scheduler_port_base",
  "internal_port_stride",
  "log_prefix",
  "restart",
  "max_restarts",
  "restart_backoff",
  "slurm",
];

const slurmKeys: readonly (keyof SlurmOptions)[] = Object.keys(slurmDefaults) as (keyof SlurmOptions)[];

/**
 * Validates a whole parsed YAML document (which must have a top-level
 * `launcher:` section; other top-level sections are left to their owners)
 * and returns its groups, each frozen with defaults filled. `launcher:` is a
 * mapping (one group) or a non-empty list of mappings; keys of list items are
 * named `launcher[i].key` in errors. Groups' worker port ranges (worker i of
 * a group prefers `worker_base_port + 2i` and the port after it) must not
 * overlap.
 *
 * @param source file path or label used in error messages.
 * @throws LauncherConfigError naming the file and the offending key.
 */
export function parseLauncherConfig(doc: unknown, source: string): LauncherGroups {
  if (!isMapping(doc) || !Object.hasOwn(doc, "launcher")) {
    throw new LauncherConfigError(`${source} must contain a top-level "launcher:" mapping`, { source, key: "launcher" });
  }
  const section = doc["launcher"];
  if (!Array.isArray(section)) return Object.freeze([parseLauncherSection(section, source)]);
  if (section.length === 0) {
    throw new LauncherConfigError(`launcher in ${source} must be a mapping of launcher options or a non-empty list of them, got an empty list`, {
      source,
      key: "launcher",
    });
  }
  const groups = section.map((group: unknown, i) => parseLauncherSection(group, source, `launcher[${i}]`));
  checkPortRanges(groups, source);
  return Object.freeze(groups);
}

/**
 * Validates one group of launcher options given inline (the LaunchWorkers
 * RPC passes an object, not a file): same keys, defaults and checks as each
 * group of {@link parseLauncherConfig}.
 *
 * @param source label used in error messages. Default "launcher config".
 * @param path how errors name the section. Default "launcher".
 */
export function parseLauncherSection(section: unknown, source = "launcher config", path = "launcher"): LauncherConfig {
  if (!isMapping(section)) {
    throw new LauncherConfigError(`${path} in ${source} must be a mapping of launcher options, got ${describe(section)}`, {
      source,
      key: path,
    });
  }
  for (const key of Object.keys(section)) {
    if (!(knownKeys as readonly string[]).includes(key)) {
      const guess = closestKey(key);
      throw new LauncherConfigError(
        `unknown key ${path}.${key} in ${source}` +
          (guess === undefined ? "" : ` (did you mean ${guess}?)`) +
          `; valid keys: ${knownKeys.join(", ")}`,
        { source, key: `${path}.${key}` },
      );
    }
  }

  const v = new Validator(section, source, path);
  const backend = v.oneOf("backend", launcherBackends);
  const model = v.model();
  const num_workers = v.integer("num_workers", 1);
  const num_gpus_per_worker = v.integer("num_gpus_per_worker", 1);
  // A Slurm job runs on another machine than the router: it must listen on
  // the network, and its URL names the node (see slurm/backend.ts).
  const worker_host = backend === "slurm" && !Object.hasOwn(section, "worker_host") ? "0.0.0.0" : v.nonEmptyString("worker_host");
  // The worker also needs port+1, hence 65534.
  const worker_base_port = v.integer("worker_base_port", 1, 65534);
  const worker_gpu_ids = v.gpuIds(num_workers);
  const worker_extra_args = v.string("worker_extra_args");
  // Validate the split now, so a bad quote fails at load time, not at launch.
  splitShellArgs(worker_extra_args, { key: `${path}.worker_extra_args`, source });
  const wait_timeout = v.positiveNumber("wait_timeout");
  const master_port_base = v.integer("master_port_base", 1, 65535);
  const scheduler_port_base = v.integer("scheduler_port_base", 1, 65535);
  const internal_port_stride = v.integer("internal_port_stride", 0);
  const log_prefix = v.string("log_prefix");
  const restart = v.oneOf("restart", restartPolicies);
  const max_restarts = v.integer("max_restarts", 0, 1000);
  const restart_backoff = v.positiveNumber("restart_backoff");
  const slurm = parseSlurm(section, backend, source, path);

  return Object.freeze({
    backend,
    model,
    num_workers,
    num_gpus_per_worker,
    worker_host,
    worker_base_port,
    worker_gpu_ids,
    worker_extra_args,
    wait_timeout,
    master_port_base,
    scheduler_port_base,
    internal_port_stride,
    log_prefix,
    restart,
    max_restarts,
    restart_backoff,
    slurm,
  });
}
/**
 * The `slurm:` mapping: allowed (and defaulted) only with `backend: slurm`,
 * so a forgotten `backend:` line does not silently start local processes.
 */
function parseSlurm(section: Mapping, backend: LauncherBackend, source: string, path: string): SlurmOptions | null {
  const raw = section["slurm"];
  const key = `${path}.slurm`;
  if (backend !== "slurm") {
    if (raw === undefined) return null;
    throw new LauncherConfigError(`${key} in ${source} is only valid with ${path}.backend: slurm (backend is "${backend}")`, { source, key });
  }
  if (raw === undefined || raw === null) return slurmDefaults;
  if (!isMapping(raw)) {
    throw new LauncherConfigError(`${key} in ${source} must be a mapping of Slurm options, got ${describe(raw)}`, { source, key });
  }
  for (const k of Object.keys(raw)) {
    if (!(slurmKeys as readonly string[]).includes(k)) {
      throw new LauncherConfigError(`unknown key ${key}.${k} in ${source}; valid keys: ${slurmKeys.join(", ")}`, { source, key: `${key}.${k}` });
    }
  }
  const fail = (k: string, expectation: string): never => {
    throw new LauncherConfigError(`${key}.${k} in ${source} must be ${expectation}, got ${describe(raw[k])}`, { source, key: `${key}.${k}` });
  };
  const optionalString = (k: "partition" | "account" | "qos" | "time" | "constraint"): string | null => {
    const value = raw[k];
    if (value === undefined || value === null) return null;
    // A number is fine for time ("60" minutes) or an account id.
    if (typeof value === "number" && Number.isFinite(value)) return String(value);
    if (typeof value === "string" && value.trim() !== "") return value.trim();
    return fail(k, "a non-empty string");
  };
  const program = raw["program"] ?? slurmDefaults.program;
  if (typeof program !== "string" || !(slurmPrograms as readonly string[]).includes(program)) {
    fail("program", slurmPrograms.map((p) => JSON.stringify(p)).join(" or "));
  }
  const sbatchArgs = raw["sbatch_args"] ?? "";
  if (typeof sbatchArgs !== "string") fail("sbatch_args", "a string");
  splitShellArgs(sbatchArgs as string, { key: `${key}.sbatch_args`, source });
  const envRaw = raw["env"] ?? {};
  if (!isMapping(envRaw)) fail("env", "a mapping of variable names to values");
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(envRaw as Mapping)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail("env", `a mapping whose keys are variable names (${JSON.stringify(name)} is not)`);
    if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value)) && typeof value !== "boolean") {
      fail("env", `a mapping of variable names to strings (${name} is ${describe(value)})`);
    }
    env[name] = String(value);
  }
  const setupRaw = raw["setup"] ?? [];
  const setup = typeof setupRaw === "string" ? [setupRaw] : setupRaw;
  if (!Array.isArray(setup) || !setup.every((line) => typeof line === "string")) fail("setup", "a list of shell lines");
  const workDir = raw["work_dir"] ?? slurmDefaults.work_dir;
  if (typeof workDir !== "string" || workDir.trim() === "") fail("work_dir", "a non-empty path");
  const poll = raw["poll_interval"] ?? slurmDefaults.poll_interval;
  if (typeof poll !== "number" || !Number.isFinite(poll) || poll < 0.1) fail("poll_interval", "a number of seconds >= 0.1");
  return Object.freeze({
    program: program as SlurmProgram,
    partition: optionalString("partition"),
    account: optionalString("account"),
    qos: optionalString("qos"),
    time: optionalString("time"),
    constraint: optionalString("constraint"),
    sbatch_args: sbatchArgs as string,
    env: Object.freeze(env),
    setup: Object.freeze([...(setup as string[])]),
    work_dir: (workDir as string).trim(),
    poll_interval: poll as number,
  });
}


/**
 * Reads and validates a launcher YAML file (js-yaml `load`, which only builds
 * plain data: no custom tags that could run code) into its groups, as
 * {@link parseLauncherConfig}.
 *
 * @throws LauncherConfigError if the file is missing or unreadable, is not
 *   valid YAML (message gives line and column), or fails validation.
 */
export function loadLauncherConfig(path: string): LauncherGroups {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "not found" : `cannot be read (${code ?? String(error)})`;
    throw new LauncherConfigError(`launcher config file ${path} ${why}`, { source: path, cause: error });
  }
  // js-yaml refuses an empty stream; report it as the missing section it is.
  if (text.trim() === "") return parseLauncherConfig(undefined, path);
  let doc: unknown;
  try {
    doc = load(text, { filename: path });
  } catch (error) {
    if (error instanceof YAMLException) {
      const where = error.mark === undefined ? "" : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
      throw new LauncherConfigError(`YAML syntax error in ${path}${where}: ${error.reason}`, { source: path, cause: error });
    }
    throw error;
  }
  return parseLauncherConfig(doc, path);
}

/**
 * Groups whose preferred worker ports overlap would push each other's
 * workers to other ports than the file says; refuse that at load time.
 * Internal ports (master/scheduler) are not checked: they have the same
 * defaults in every group and the launcher moves later groups' ones up.
 */
function checkPortRanges(groups: LauncherGroups, source: string): void {
  // Worker i of a group binds base + 2i and the port after it. Slurm jobs
  // choose their ports on their node: they take no range here.
  const ranges = groups.map((g, index) => ({ index, slurm: g.backend === "slurm", first: g.worker_base_port, last: g.worker_base_port + 2 * g.num_workers - 1, model: g.model }));
  const local = ranges.filter((r) => !r.slurm);
  local.forEach((r, k) => {
    const j = r.index;
    for (const other of local.slice(0, k)) {
      const i = other.index;
      if (r.first > other.last || other.first > r.last) continue;
      const below = other.first - (r.last - r.first + 1);
      throw new LauncherConfigError(
        `launcher[${j}].worker_base_port in ${source}: the ports of its workers, ${r.first}-${r.last} (${r.model}), overlap ` +
          `${other.first}-${other.last} of launcher[${i}] (${other.model}); worker i of a group takes worker_base_port + 2i and the ` +
          `port after it, so launcher[${j}].worker_base_port must be >= ${other.last + 1}${below >= 1 ? ` or <= ${below}` : ""}`,
        { source, key: `launcher[${j}].worker_base_port` },
      );
    }
  });
}

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Renders a bad value for an error message, short and unambiguous. */
function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return `a list ${truncate(safeJson(value))}`;
  if (isMapping(value)) return `a mapping ${truncate(safeJson(value))}`;
  return truncate(safeJson(value));
}

/** JSON for messages; YAML aliases can make a value refer to itself. */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === "object" && v !== null) {
          if (seen.has(v)) return "[circular]";
          seen.add(v);
        }
        return typeof v === "bigint" || typeof v === "symbol" ? String(v) : v;
      }) ?? String(value)
    );
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Per-key checks; a missing key takes its default, `null` is a type error (as in the Python launcher's schema). */
class Validator {
  constructor(
    private readonly section: Mapping,
    private readonly source: string,
    /** How errors name the section: `launcher`, or `launcher[i]` in a list. */
    private readonly path: string,
  ) {}

  private fail(key: string, expectation: string, value: unknown): never {
    throw new LauncherConfigError(`${this.path}.${key} in ${this.source} must be ${expectation}, got ${describe(value)}`, {
      source: this.source,
      key: `${this.path}.${key}`,
    });
  }

  private has(key: keyof LauncherConfig): boolean {
    return Object.hasOwn(this.section, key);
  }

  oneOf<T extends string>(key: "backend" | "restart", allowed: readonly T[]): T {
    if (!this.has(key)) return launcherConfigDefaults[key] as T;
    const value = this.section[key];
    if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
    return this.fail(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`, value);
  }

  model(): string {
    const value = this.section["model"];
    if (!this.has("model") || value === null) {
      throw new LauncherConfigError(`${this.path}.model in ${this.source} is required (a model path or hub id, e.g. Qwen/Qwen-Image)`, {
        source: this.source,
        key: `${this.path}.model`,
      });
    }
    if (typeof value !== "string" || value.trim() === "") return this.fail("model", "a non-empty string", value);
    return value.trim();
  }

  integer(key: keyof typeof launcherConfigDefaults, min: number, max?: number): number {
    if (!this.has(key)) return launcherConfigDefaults[key] as number;
    const value = this.section[key];
    if (isIntBetween(value, min, max)) return value;
    return this.fail(key, max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value);
  }

  positiveNumber(key: "wait_timeout" | "restart_backoff"): number {
    if (!this.has(key)) return launcherConfigDefaults[key];
    const value = this.section[key];
    if (isPositiveNumber(value)) return value;
    return this.fail(key, "a number of seconds > 0", value);
  }

  string(key: "worker_extra_args" | "log_prefix"): string {
    if (!this.has(key)) return launcherConfigDefaults[key];
    const value = this.section[key];
    if (typeof value === "string") return value;
    return this.fail(key, "a string", value);
  }

  nonEmptyString(key: "worker_host"): string {
    if (!this.has(key)) return launcherConfigDefaults[key];
    const value = this.section[key];
    if (typeof value === "string" && value.trim() !== "") return value.trim();
    return this.fail(key, "a non-empty string", value);
  }

  gpuIds(numWorkers: number): readonly string[] | null {
    const key = "worker_gpu_ids";
    const value = this.section[key];
    // An empty list means "not given", as in the Python launcher (`if worker_gpu_ids:`).
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) return null;
    const expectation = 'null or a list of CUDA_VISIBLE_DEVICES strings, one per worker (e.g. ["0,1", "2,3"])';
    if (!Array.isArray(value)) return this.fail(key, expectation, value);
    const ids = value.map((item: unknown) => {
      // YAML `[0, 1]` yields numbers; the Python launcher str()-ed them.
      if (typeof item === "number" && Number.isInteger(item) && item >= 0) return String(item);
      if (typeof item === "string" && item.trim() !== "") return item.trim();
      return this.fail(key, expectation, value);
    });
    if (ids.length !== numWorkers) {
      throw new LauncherConfigError(
        `${this.path}.worker_gpu_ids in ${this.source} has ${ids.length} entries but ${this.path}.num_workers is ${numWorkers}; they must match`,
        { source: this.source, key: `${this.path}.worker_gpu_ids` },
      );
    }
    return Object.freeze(ids);
  }
}

/** The known key within edit distance 2 of `key` (or sharing its first 6+ characters), if any. */
function closestKey(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of knownKeys) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (bestDistance <= 2) return best;
  const prefixMatch = knownKeys.find((k) => key.length >= 6 && (k.startsWith(key) || key.startsWith(k)));
  return prefixMatch;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
