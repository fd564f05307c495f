import { isIntBetween, isPositiveNumber } from "../config/checks.js";
import { splitShellArgs } from "./args.js";
import { badValue, closestKey, describe, isMapping, type Mapping } from "./config-values.js";
import { LauncherConfigError } from "./errors.js";
import { backendTable, launcherBackends, type BackendSections, type LauncherBackend } from "./registry.js";

export { loadLauncherConfig } from "./config-file.js";
export { launcherBackends, type LauncherBackend } from "./registry.js";
export { slurmDefaults, slurmPrograms, type SlurmOptions, type SlurmProgram } from "./slurm/config.js";

/** What happens when a managed worker exits without being stopped: `on-failure` restarts it, `never` leaves it. */
export const restartPolicies = ["on-failure", "never"] as const;
export type RestartPolicy = (typeof restartPolicies)[number];

/**
 * The `launcher:` section of the YAML file, every default filled in. Key names
 * stay snake_case because they are the compatibility contract with the Python
 * router's YAML files.
 */
export type LauncherConfig = GenericLauncherConfig & BackendSections;

/** The keys every backend shares. */
export interface GenericLauncherConfig {
  /** Which backend runs the workers (see registry.ts). Default "local". */
  readonly backend: LauncherBackend;
  /**
   * The group's name: ScaleManagedWorkers finds the group by it, and
   * ListManagedWorkers shows it. Default null: the model is the name.
   */
  readonly name: string | null;
  /** Model path or hub id passed as `--model-path`. Required, non-empty. */
  readonly model: string;
  /** Workers to start. Default 1, >= 1. */
  readonly num_workers: number;
  /** GPUs per worker (`--num-gpus` and the CUDA_VISIBLE_DEVICES slice size). Default 1, >= 1. */
  readonly num_gpus_per_worker: number;
  /** Address workers bind to (`--host`). Default "127.0.0.1", or the backend's (registry.ts: "0.0.0.0" with backend slurm). */
  readonly worker_host: string;
  /**
   * Address workers bind to, when it is not the one the router reaches them
   * at (e.g. "0.0.0.0" to serve other clients too). Default null: bind
   * exactly where the router reaches them (local, sim: `worker_host`; Slurm:
   * the node's address on its route to the router, unless `worker_host` names one).
   */
  readonly worker_bind_host: string | null;
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
}

/**
 * The groups of a `launcher:` section, in file order: `launcher:` is one
 * mapping (the Python router's format: one group) or a list of mappings, one
 * per kind of worker (e.g. image workers and a video worker). Frozen.
 */
export type LauncherGroups = readonly LauncherConfig[];

/** Defaults of every optional key (everything but `model`). */
export const launcherConfigDefaults: Readonly<Omit<LauncherConfig, "model">> = Object.freeze({
  ...sectionDefaults(),
  backend: "local",
  name: null,
  num_workers: 1,
  num_gpus_per_worker: 1,
  worker_host: "127.0.0.1",
  worker_bind_host: null,
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
});

/** Every backend's own mapping is absent (null) until a group of that backend fills it. */
function sectionDefaults(): BackendSections {
  const sections: Record<string, null> = {};
  for (const def of Object.values(backendTable)) if (def.section !== undefined) sections[def.section.key] = null;
  return sections as BackendSections;
}

const knownKeys: readonly string[] = [
  "backend",
  "name",
  "model",
  "num_workers",
  "num_gpus_per_worker",
  "worker_host",
  "worker_bind_host",
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
  ...Object.values(backendTable).flatMap((def) => (def.section === undefined ? [] : [def.section.key])),
];

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
      const guess = closestKey(key, knownKeys);
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
  const name = v.optionalString("name");
  const model = v.model();
  const num_workers = v.integer("num_workers", 1);
  const num_gpus_per_worker = v.integer("num_gpus_per_worker", 1);
  // A backend whose workers run on other machines (Slurm) defaults to listening on the network.
  const backendHost = backendTable[backend].defaultWorkerHost;
  const worker_host = backendHost !== undefined && !Object.hasOwn(section, "worker_host") ? backendHost : v.nonEmptyString("worker_host");
  // The worker also needs port+1, hence 65534.
  const worker_base_port = v.integer("worker_base_port", 1, 65534);
  const worker_bind_host = v.optionalString("worker_bind_host");
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
  const sections = parseSections(section, backend, source, path);

  return Object.freeze({
    backend,
    name,
    model,
    num_workers,
    num_gpus_per_worker,
    worker_host,
    worker_bind_host,
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
    ...sections,
  });
}
/**
 * Each backend's own mapping (`slurm:`): parsed by its backend, allowed only
 * with that backend, so a forgotten `backend:` line does not silently start
 * local processes; null for the other backends.
 */
function parseSections(section: Mapping, backend: LauncherBackend, source: string, path: string): BackendSections {
  const sections: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(backendTable)) {
    if (def.section === undefined) continue;
    const { key } = def.section;
    const raw = section[key];
    if (name === backend) {
      sections[key] = def.section.parse(raw, { source, path: `${path}.${key}` });
    } else if (raw === undefined) {
      sections[key] = null;
    } else {
      throw new LauncherConfigError(`${path}.${key} in ${source} is only valid with ${path}.backend: ${name} (backend is "${backend}")`, {
        source,
        key: `${path}.${key}`,
      });
    }
  }
  return sections as BackendSections;
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
  const ranges = groups.map((g, index) => ({ index, usesBasePort: backendTable[g.backend].usesBasePort, first: g.worker_base_port, last: g.worker_base_port + 2 * g.num_workers - 1, model: g.model }));
  const local = ranges.filter((r) => r.usesBasePort);
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

/** Per-key checks; a missing key takes its default, `null` is a type error (as in the Python launcher's schema). */
class Validator {
  constructor(
    private readonly section: Mapping,
    private readonly source: string,
    /** How errors name the section: `launcher`, or `launcher[i]` in a list. */
    private readonly path: string,
  ) {}

  private fail(key: string, expectation: string, value: unknown): never {
    throw badValue({ source: this.source, path: this.path }, key, expectation, value);
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

  optionalString(key: "worker_bind_host" | "name"): string | null {
    const value = this.section[key];
    if (value === undefined || value === null) return null;
    if (typeof value === "string" && value.trim() !== "") return value.trim();
    return this.fail(key, "null or a non-empty string", value);
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


/** The name a group is scaled and listed by: its `name`, or its model. */
export function groupName(config: Pick<LauncherConfig, "name" | "model">): string {
  return config.name ?? config.model;
}
