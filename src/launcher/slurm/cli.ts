import { execFile, execFileSync } from "node:child_process";
import { LauncherConfigError, LauncherError } from "../errors.js";

/** One line of `squeue`: a job of this router. */
export interface SqueueRow {
  readonly jobId: string;
  /** Long state name: PENDING, RUNNING, COMPLETING, CANCELLED, PREEMPTED, ... */
  readonly state: string;
  /** Node list; "" while pending. */
  readonly node: string;
  /** Why it is pending or ended (squeue's %r). */
  readonly reason: string;
}

/**
 * The Slurm commands the launcher uses, run with execFile (no shell: job
 * names and paths are arguments, never parsed). One object so a test can
 * count calls, and so the environment (SLURM_CONF) is set in one place.
 */
export interface SlurmCli {
  /** `sbatch --parsable <args> <script>`: the new job's id. */
  sbatch(args: readonly string[], scriptPath: string): Promise<string>;
  /** Every job named `jobName` (or any of a comma-separated list of names) that squeue still knows, in any state. */
  squeue(jobName: string): Promise<SqueueRow[]>;
  /** `scancel <ids>`; an id Slurm no longer knows is not an error. */
  scancel(jobIds: readonly string[]): Promise<void>;
  /** The same, synchronously, for `process.on("exit")`. Never throws. */
  scancelSync(jobIds: readonly string[]): void;
}

// squeue's format: fields that never contain "|".
const SQUEUE_FORMAT = "%i|%T|%N|%r";
const TIMEOUT_MS = 30_000;

/** A {@link SlurmCli} over the real commands found on `env.PATH`, talking to the cluster `env.SLURM_CONF` names (or the default). */
export function createSlurmCli(env: NodeJS.ProcessEnv): SlurmCli {
  const runCommand = (command: string, args: readonly string[], refused?: (stderr: string) => Error): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(command, [...args], { env, timeout: TIMEOUT_MS, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const code = (error as NodeJS.ErrnoException).code;
        // The command ran and said no (exit code, message on stderr): the caller may know whose fault that is.
        if (refused !== undefined && typeof code === "number" && String(stderr).trim() !== "") return reject(refused(String(stderr).trim()));
        const why =
          code === "ENOENT"
            ? `${command} not found on PATH: backend slurm needs the Slurm client commands (Debian: slurm-client)`
            : `${command} ${args.join(" ")} failed: ${String(stderr).trim() || error.message}`;
        reject(new LauncherError(why, { cause: error }));
      });
    });

  return {
    async sbatch(args, scriptPath) {
      // sbatch refusing a job (unknown partition, account or QOS, more GPUs than a node has, a bad
      // sbatch_args option) is a problem of the launcher config: a 400 naming launcher.slurm.
      const out = await runCommand("sbatch", ["--parsable", ...args, scriptPath], (stderr) =>
        new LauncherConfigError(`sbatch refused the worker job (check launcher.slurm): ${stderr}`, { source: "launch request", key: "launcher.slurm" }),
      );
      // --parsable prints "<id>" or "<id>;<cluster>".
      const jobId = out.trim().split(";")[0] ?? "";
      if (!/^\d+$/.test(jobId)) throw new LauncherError(`sbatch printed no job id: ${JSON.stringify(out)}`);
      return jobId;
    },
    async squeue(jobName) {
      const out = await runCommand("squeue", ["--noheader", "--states=all", `--name=${jobName}`, `--format=${SQUEUE_FORMAT}`]);
      return parseSqueue(out);
    },
    async scancel(jobIds) {
      if (jobIds.length === 0) return;
      // scancel of an already finished job only warns (exit 0 in 22.05); other errors are real.
      await runCommand("scancel", [...jobIds]);
    },
    scancelSync(jobIds) {
      if (jobIds.length === 0) return;
      try {
        execFileSync("scancel", [...jobIds], { env, timeout: 10_000, stdio: "ignore" });
      } catch {
        // Nothing more can be done while the process exits.
      }
    },
  };
}

/** Rows of `squeue --format=%i|%T|%N|%r` output. Pure. */
export function parseSqueue(out: string): SqueueRow[] {
  const rows: SqueueRow[] = [];
  for (const line of out.split("\n")) {
    const fields = line.trim().split("|");
    if (fields.length < 4 || !/^\d+/.test(fields[0]!)) continue;
    rows.push({ jobId: fields[0]!, state: fields[1]!, node: fields[2]!, reason: fields.slice(3).join("|") });
  }
  return rows;
}
