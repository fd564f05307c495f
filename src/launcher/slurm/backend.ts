import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "../../log.js";
import type { Backend, BackendDefinition, Placement } from "../backend.js";
import type { LauncherConfig } from "../config.js";
import { withoutRouterVariables } from "../child-env.js";
import { LauncherError } from "../errors.js";
import type { WorkerRun } from "../run.js";
import { simCliPath } from "../sim/backend.js";
import { findExecutable, isWildcardHost, workerUrl } from "../worker-command.js";
import { createSlurmCli, type SlurmCli } from "./cli.js";
import { parseSlurmSection, type SlurmOptions } from "./config.js";
import { buildJobScript, sbatchArgs, type JobProgram, type JobReport } from "./job-script.js";
import { createSlurmJobs, parseSlurmHandle, type SlurmJobs } from "./jobs.js";

/**
 * Backend `slurm`: one Slurm job per worker start, running `sglang serve` or
 * the simulated worker (`slurm.program`) on whichever node Slurm picks; the
 * job chooses its ports there and reports them in a file under
 * `slurm.work_dir`.
 */
export const slurmBackend: BackendDefinition = {
  section: { key: "slurm", parse: parseSlurmSection },
  // A job runs on another machine than the router: by default it binds and is reached at the node's address facing the router (job-script.ts).
  defaultWorkerHost: "0.0.0.0",
  usesBasePort: false,
  create: (ctx) => slurmLauncherBackend(createSlurmSubmitter(ctx), ctx.env),
};

/** Until a job reports, nothing is known of where it runs. */
const unplaced: Placement = Object.freeze({ url: "", port: 0, masterPort: 0, schedulerPort: 0, gpus: null });

function slurmLauncherBackend(jobs: SlurmSubmitter, env: NodeJS.ProcessEnv): Backend {
  return {
    holdsLocalResources: false,
    check: (config) => checkSlurmBackend(config, env),
    // Each job chooses its ports on its node, and Slurm its GPUs.
    place: (_config, count) => Promise.resolve(Array.from({ length: count }, () => unplaced)),
    start: (config) => jobs.start(config),
    adopt: (config, _placement, handle) => jobs.adopt(config, handle),
    killAllSync: () => jobs.cancelAllSync(),
  };
}

/** Submits worker jobs for the launcher: one Slurm job per worker start. */
export interface SlurmSubmitter {
  /** Writes the job script and submits it; resolves once sbatch gave a job id. */
  start(config: LauncherConfig): Promise<WorkerRun>;
  /**
   * Follows the job `handle` names (submitted by an earlier router process),
   * if squeue still lists it pending or running where it ran; null otherwise.
   * Later submissions keep that router's job name, so one squeue still lists
   * every job of this router.
   */
  adopt(config: LauncherConfig, handle: string): Promise<WorkerRun | null>;
  cancelAllSync(): void;
}

/**
 * Checks, before anything is submitted, what the router itself can check:
 * `sbatch` on PATH, the simulated worker built. `sglang` lives on the
 * compute nodes, where only the job can look.
 *
 * @throws LauncherError naming what is missing.
 */
export function checkSlurmBackend(config: LauncherConfig, env: NodeJS.ProcessEnv): void {
  if (findExecutable("sbatch", env) === null) {
    throw new LauncherError(
      `launcher backend "slurm" needs the Slurm client commands (sbatch, squeue, scancel) on PATH (${env["PATH"] ?? "PATH unset"}); install them (Debian: slurm-client)`,
    );
  }
  if (config.slurm?.program === "sim") {
    try {
      accessSync(simCliPath(), constants.R_OK);
    } catch {
      throw new LauncherError(`launcher backend "slurm" with slurm.program "sim" needs the simulated worker at ${simCliPath()}; run \`npm run build\` first`);
    }
  }
}

function jobProgram(slurm: SlurmOptions): JobProgram {
  if (slurm.program === "sim") {
    // Absolute paths of this router's Node and build: the node must see them (shared filesystem).
    return { command: process.execPath, leadingArgs: [simCliPath()], picker: { kind: "node", command: process.execPath } };
  }
  return { command: "sglang", leadingArgs: ["serve"], picker: { kind: "python", command: "python3" } };
}

/** Creates the backend; its job name is unique to this launcher, so squeue lists exactly its jobs. */
export function createSlurmSubmitter(options: { env: NodeJS.ProcessEnv; logger: Logger; cli?: SlurmCli; stopWaitMs?: number }): SlurmSubmitter {
  let jobName = `sglang-d-router-${randomBytes(4).toString("hex")}`;
  // sbatch exports its own environment into the job (--export=ALL): the router's keys must not be in it.
  const cli = options.cli ?? createSlurmCli(withoutRouterVariables(options.env));
  let jobs: SlurmJobs | undefined;
  let submitted = 0;
  // Created on first use, after an adoption may have taken an earlier router's job name.
  const tracker = (): SlurmJobs =>
    (jobs ??= createSlurmJobs({ cli, logger: options.logger, jobName, ...(options.stopWaitMs === undefined ? {} : { stopWaitMs: options.stopWaitMs }) }));
  const following = (config: LauncherConfig, slurm: SlurmOptions) => ({
    workDir: resolve(slurm.work_dir),
    pollMs: slurm.poll_interval * 1000,
    // The job reports the address the router reaches it at (see job-script.ts), unless worker_host names one.
    locate: (report: JobReport) => ({
      url: workerUrl(isWildcardHost(config.worker_host) ? report.host : config.worker_host, report.port),
      port: report.port,
      gpus: report.gpus === "" ? null : report.gpus,
    }),
  });
  return {
    async start(config) {
      const slurm = config.slurm;
      if (slurm === null) throw new LauncherError(`backend slurm without slurm options (config was not validated)`);
      const workDir = resolve(slurm.work_dir);
      mkdirSync(workDir, { recursive: true });
      const scriptPath = `${workDir}/${jobName}-${++submitted}.sbatch`;
      writeFileSync(scriptPath, buildJobScript({ config, slurm, program: jobProgram(slurm), workDir, jobName }), { mode: 0o755 });
      const run = await tracker().submit({ sbatchArgs: sbatchArgs({ config, slurm, workDir, jobName }), scriptPath, ...following(config, slurm) });
      options.logger.info({ slurmJobId: run.describe().alias, model: config.model }, "submitted worker job");
      return run;
    },
    async adopt(config, handle) {
      const job = parseSlurmHandle(handle);
      if (job === undefined || config.slurm === null) return null;
      // The first job adopted names this launcher's jobs from now on (nothing was submitted yet at restart recovery).
      if (jobs === undefined && submitted === 0) jobName = job.jobName;
      const run = await tracker().adopt(job, following(config, config.slurm));
      if (run !== null) options.logger.info({ slurmJobId: job.jobId, node: job.node, model: config.model }, "adopted running worker job");
      return run;
    },
    cancelAllSync() {
      jobs?.cancelAllSync();
    },
  };
}
