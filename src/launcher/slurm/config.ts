import { splitShellArgs } from "../args.js";
import { badValue, describe, isMapping, type ConfigContext, type Mapping } from "../config-values.js";
import { LauncherConfigError } from "../errors.js";

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
  /**
   * Ports a job may give its worker, "FIRST-LAST" (the worker takes a port
   * and the one after it, both in the range), so a firewall between router
   * and nodes can be opened for exactly these. null: any free port. Default
   * "30000-30999".
   */
  readonly port_range: string | null;
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
  port_range: "30000-30999",
});

const slurmKeys = Object.keys(slurmDefaults);

/**
 * The `slurm:` mapping of a group (`ctx.path` names it, e.g.
 * `launcher.slurm`); absent or null means every default.
 *
 * @throws LauncherConfigError naming the offending key.
 */
export function parseSlurmSection(raw: unknown, ctx: ConfigContext): SlurmOptions {
  const { source, path: key } = ctx;
  if (raw === undefined || raw === null) return slurmDefaults;
  if (!isMapping(raw)) {
    throw new LauncherConfigError(`${key} in ${source} must be a mapping of Slurm options, got ${describe(raw)}`, { source, key });
  }
  for (const k of Object.keys(raw)) {
    if (!slurmKeys.includes(k)) {
      throw new LauncherConfigError(`unknown key ${key}.${k} in ${source}; valid keys: ${slurmKeys.join(", ")}`, { source, key: `${key}.${k}` });
    }
  }
  const fail = (k: string, expectation: string): never => {
    throw badValue(ctx, k, expectation, raw[k]);
  };
  const program = raw["program"] ?? slurmDefaults.program;
  if (typeof program !== "string" || !(slurmPrograms as readonly string[]).includes(program)) {
    fail("program", slurmPrograms.map((p) => JSON.stringify(p)).join(" or "));
  }
  const sbatchArgs = raw["sbatch_args"] ?? "";
  if (typeof sbatchArgs !== "string") fail("sbatch_args", "a string");
  splitShellArgs(sbatchArgs as string, { key: `${key}.sbatch_args`, source });
  const env = parseEnv(raw["env"] ?? {}, fail);
  const setupRaw = raw["setup"] ?? [];
  const setup = typeof setupRaw === "string" ? [setupRaw] : setupRaw;
  if (!Array.isArray(setup) || !setup.every((line) => typeof line === "string")) fail("setup", "a list of shell lines");
  const workDir = raw["work_dir"] ?? slurmDefaults.work_dir;
  if (typeof workDir !== "string" || workDir.trim() === "") fail("work_dir", "a non-empty path");
  const poll = raw["poll_interval"] ?? slurmDefaults.poll_interval;
  if (typeof poll !== "number" || !Number.isFinite(poll) || poll < 0.1) fail("poll_interval", "a number of seconds >= 0.1");
  const optional = (k: "partition" | "account" | "qos" | "time" | "constraint"): string | null => optionalString(raw, k, fail);
  return Object.freeze({
    program: program as SlurmProgram,
    partition: optional("partition"),
    account: optional("account"),
    qos: optional("qos"),
    time: optional("time"),
    constraint: optional("constraint"),
    sbatch_args: sbatchArgs as string,
    env: Object.freeze(env),
    setup: Object.freeze([...(setup as string[])]),
    work_dir: (workDir as string).trim(),
    poll_interval: poll as number,
    port_range: parsePortRange(raw, fail),
  });
}

type Fail = (k: string, expectation: string) => never;

function optionalString(raw: Mapping, k: string, fail: Fail): string | null {
  const value = raw[k];
  if (value === undefined || value === null) return null;
  // A number is fine for time ("60" minutes) or an account id.
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  return fail(k, "a non-empty string");
}

function parseEnv(envRaw: unknown, fail: Fail): Record<string, string> {
  if (!isMapping(envRaw)) fail("env", "a mapping of variable names to values");
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(envRaw as Mapping)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail("env", `a mapping whose keys are variable names (${JSON.stringify(name)} is not)`);
    if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value)) && typeof value !== "boolean") {
      fail("env", `a mapping of variable names to strings (${name} is ${describe(value)})`);
    }
    env[name] = String(value);
  }
  return env;
}

/** `port_range`: "FIRST-LAST" with room for a port and the one after it, or null for any free port. */
function parsePortRange(raw: Mapping, fail: Fail): string | null {
  if (!Object.hasOwn(raw, "port_range")) return slurmDefaults.port_range;
  const value = raw["port_range"];
  if (value === null) return null;
  const m = typeof value === "string" ? /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value) : null;
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (m === null || first < 1 || last > 65535 || last <= first) {
    return fail("port_range", 'null or "FIRST-LAST" with 1 <= FIRST < LAST <= 65535 (e.g. "30000-30999")');
  }
  return `${first}-${last}`;
}
