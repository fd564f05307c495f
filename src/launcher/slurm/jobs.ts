import { readFile, rm } from "node:fs/promises";
import type { Logger } from "../../log.js";
import { LauncherError, WorkerExitedError } from "../errors.js";
import type { ExitInfo } from "../process.js";
import type { SlurmJobFacts, WorkerLocation, WorkerRun } from "../run.js";
import type { SlurmCli } from "./cli.js";
import { parseJobReport, reportPath, type JobReport } from "./job-script.js";

/** States in which a job has not ended (before it ran, or running). */
const WAITING_STATES = new Set(["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING"]);

/** Options of {@link createSlurmJobs}. */
export interface SlurmJobsOptions {
  cli: SlurmCli;
  logger: Logger;
  /** `--job-name` of every job of this launcher: one squeue call lists them all. */
  jobName: string;
  /** After scancel, how long to wait for the job to end before giving up on it. Default 30000. */
  stopWaitMs?: number;
}

/** One job to submit. */
export interface JobSubmission {
  sbatchArgs: readonly string[];
  scriptPath: string;
  /** Absolute folder of the report file. */
  workDir: string;
  /** Seconds between squeue polls while this job lives. */
  pollMs: number;
  /** URL etc. from the job's report. */
  locate(report: JobReport): WorkerLocation;
}

/** Submits jobs and follows them with one `squeue` poll for all of them. */
export interface SlurmJobs {
  submit(job: JobSubmission): Promise<WorkerRun>;
  /** scancel of every job not known to have ended, synchronously. */
  cancelAllSync(): void;
}

interface Tracked {
  jobId: string;
  facts: { -readonly [K in keyof SlurmJobFacts]: SlurmJobFacts[K] };
  submission: JobSubmission;
  seenRunning: boolean;
  /** Polls in a row that did not list the job. */
  missing: number;
  location: WorkerLocation | undefined;
  exit: ExitInfo | undefined;
  resolveExit(exit: ExitInfo): void;
  /** Woken on every poll, so locate() and stop() notice changes. */
  listeners: Set<() => void>;
}

/** Creates the tracker; it polls only while it has jobs that have not ended. */
export function createSlurmJobs(options: SlurmJobsOptions): SlurmJobs {
  const { cli, logger, jobName } = options;
  const stopWaitMs = options.stopWaitMs ?? 30_000;
  const live = new Map<string, Tracked>();
  let timer: NodeJS.Timeout | null = null;
  let polling = false;

  const end = (job: Tracked, state: string, reason: string): void => {
    if (job.exit !== undefined) return;
    job.facts.state = state;
    const why = reason !== "" && reason !== "None" ? ` (${reason})` : "";
    job.exit = { code: state === "COMPLETED" ? 0 : null, signal: null, reason: `as Slurm job ${job.jobId} ${state}${why}` };
    live.delete(job.jobId);
    job.resolveExit(job.exit);
    void rm(reportPath(job.submission.workDir, jobName, job.jobId), { force: true }).catch(() => undefined);
    logger.info({ slurmJobId: job.jobId, slurmState: state, node: job.facts.node }, "slurm job ended");
  };

  const poll = async (): Promise<void> => {
    let rows;
    try {
      rows = await cli.squeue(jobName);
    } catch (err) {
      // A slurmctld restart or a slow controller: keep the jobs, try again next time.
      logger.warn({ err }, "squeue failed; keeping the last known job states");
      return;
    }
    const byId = new Map(rows.map((r) => [r.jobId, r]));
    for (const job of [...live.values()]) {
      const row = byId.get(job.jobId);
      if (row === undefined) {
        // Purged after it ended (MinJobAge). Right after sbatch it is always listed; allow a slow first listing.
        job.missing += 1;
        if (job.seenRunning || job.missing >= 3) end(job, "GONE", "no longer listed by squeue");
      } else {
        job.missing = 0;
        if (row.node !== "" && row.node !== "(null)") job.facts.node = row.node;
        job.facts.state = row.state;
        if (row.state === "RUNNING") {
          job.seenRunning = true;
          if (job.location === undefined) await readReport(job);
        } else if (job.seenRunning || !WAITING_STATES.has(row.state)) {
          // Leaving RUNNING (COMPLETING, CANCELLED, PREEMPTED, SUSPENDED, ...) ends it for the router at once.
          end(job, row.state, row.reason);
        }
      }
      for (const wake of job.listeners) wake();
    }
  };

  const readReport = async (job: Tracked): Promise<void> => {
    let text: string;
    try {
      text = await readFile(reportPath(job.submission.workDir, jobName, job.jobId), "utf8");
    } catch {
      return; // not written yet
    }
    const report = parseJobReport(text);
    if (report !== undefined) job.location = job.submission.locate(report);
  };

  const schedule = (): void => {
    if (timer !== null || polling || live.size === 0) return;
    const pollMs = Math.min(...[...live.values()].map((j) => j.submission.pollMs));
    timer = setTimeout(() => {
      timer = null;
      polling = true;
      void poll().finally(() => {
        polling = false;
        schedule();
      });
    }, pollMs);
    // The router's server keeps the process alive; a finished test must not wait for a poll.
    timer.unref();
  };

  /** Resolves when `done()` holds after a poll, or false after `timeoutMs`. */
  const waitFor = (job: Tracked, done: () => boolean, timeoutMs: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (done()) return resolve(true);
      const finish = (ok: boolean): void => {
        clearTimeout(t);
        job.listeners.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (done()) finish(true);
      };
      const t = setTimeout(() => finish(done()), timeoutMs);
      job.listeners.add(check);
    });

  return {
    async submit(submission) {
      const jobId = await cli.sbatch(submission.sbatchArgs, submission.scriptPath);
      let resolveExit!: (exit: ExitInfo) => void;
      const exited = new Promise<ExitInfo>((r) => (resolveExit = r));
      const job: Tracked = {
        jobId,
        facts: { jobId, node: "", state: "PENDING" },
        submission,
        seenRunning: false,
        missing: 0,
        location: undefined,
        exit: undefined,
        resolveExit,
        listeners: new Set(),
      };
      live.set(jobId, job);
      schedule();
      let stopping: Promise<void> | undefined;
      return {
        pid: 0,
        exited,
        exitInfo: () => job.exit,
        slurm: () => Object.freeze({ ...job.facts }),
        async locate(timeoutMs) {
          await waitFor(job, () => job.location !== undefined || job.exit !== undefined, timeoutMs);
          if (job.location !== undefined) return job.location;
          if (job.exit !== undefined) throw new WorkerExitedError(`Slurm job ${jobId} ended ${job.exit.reason ?? ""} before it reported its port`, job.exit);
          throw new LauncherError(
            `Slurm job ${jobId} did not report its port within ${timeoutMs} ms (state ${job.facts.state}${job.facts.node ? ` on ${job.facts.node}` : ""})`,
          );
        },
        stop() {
          stopping ??= (async () => {
            if (job.exit !== undefined) return;
            await cli.scancel([jobId]).catch((err: unknown) => logger.warn({ err, slurmJobId: jobId }, "scancel failed"));
            const ended = await waitFor(job, () => job.exit !== undefined, stopWaitMs);
            if (!ended) logger.warn({ slurmJobId: jobId, state: job.facts.state }, "Slurm job still listed after scancel; no longer following it");
            end(job, "CANCELLED", "cancelled by the router");
          })();
          return stopping;
        },
        killSync() {
          if (job.exit === undefined) cli.scancelSync([jobId]);
        },
      };
    },
    cancelAllSync() {
      cli.scancelSync([...live.keys()]);
    },
  };
}
