import { readFile, rm } from "node:fs/promises";
import type { Logger } from "../../log.js";
import { LauncherError, WorkerExitedError } from "../errors.js";
import type { ExitInfo } from "../process.js";
import type { WorkerLocation, WorkerRun } from "../run.js";
import type { SlurmCli, SqueueRow } from "./cli.js";
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

/** How a job of this router is followed, whether it was submitted now or by an earlier router process. */
export interface JobFollowing {
  /** Absolute folder of the report file. */
  workDir: string;
  /** Seconds between squeue polls while this job lives. */
  pollMs: number;
  /** URL etc. from the job's report. */
  locate(report: JobReport): WorkerLocation;
}

/** One job to submit. */
export interface JobSubmission extends JobFollowing {
  sbatchArgs: readonly string[];
  scriptPath: string;
}

/** A job an earlier router process submitted, as its record names it. */
export interface JobToAdopt {
  readonly jobId: string;
  /** Its `--job-name` (the earlier router's). */
  readonly jobName: string;
  /** The node it ran on when recorded; "" if it was pending. */
  readonly node: string;
}

/** Submits jobs and follows them with one `squeue` poll for all of them. */
export interface SlurmJobs {
  submit(job: JobSubmission): Promise<WorkerRun>;
  /**
   * Follows a job an earlier router process submitted, found by its id and
   * name in squeue: null (nothing cancelled) when squeue no longer lists it
   * as pending or running, or it runs on another node than recorded.
   */
  adopt(job: JobToAdopt, following: JobFollowing): Promise<WorkerRun | null>;
  /** scancel of every job not known to have ended, synchronously. */
  cancelAllSync(): void;
}

/** Slurm facts about a worker's job, for ListManagedWorkers. */
export interface SlurmJobFacts {
  readonly jobId: string;
  /** Node it runs on; "" while pending. */
  readonly node: string;
  /** Last state squeue reported (PENDING, RUNNING, CANCELLED, ...). */
  readonly state: string;
}

interface Tracked {
  jobId: string;
  /** Its `--job-name`: this launcher's, or an earlier router's for an adopted job. */
  jobName: string;
  facts: { -readonly [K in keyof SlurmJobFacts]: SlurmJobFacts[K] };
  submission: JobFollowing;
  seenRunning: boolean;
  /** Polls in a row that did not list the job. */
  missing: number;
  location: WorkerLocation | undefined;
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  resolveExit(exit: ExitInfo): void;
  /** Woken on every poll, so locate() and stop() notice changes. */
  listeners: Set<() => void>;
}

/** Creates the tracker; it polls only while it has jobs that have not ended. */
export function createSlurmJobs(options: SlurmJobsOptions): SlurmJobs {
  const tracker = new JobTracker(options);
  return {
    async submit(submission) {
      const jobId = await options.cli.sbatch(submission.sbatchArgs, submission.scriptPath);
      return jobRun(tracker, tracker.follow(jobId, options.jobName, submission), options.stopWaitMs ?? 30_000);
    },
    async adopt(job, following) {
      // Errors (squeue unreachable) propagate: a job we cannot see must not be submitted a second time.
      const row = (await options.cli.squeue(job.jobName)).find((r) => r.jobId === job.jobId);
      if (row === undefined) return null;
      const running = row.state === "RUNNING";
      if (!running && !WAITING_STATES.has(row.state)) return null;
      if (running && job.node !== "" && row.node !== job.node) return null;
      const tracked = tracker.follow(job.jobId, job.jobName, following);
      tracked.facts.state = row.state;
      if (running) {
        tracked.seenRunning = true;
        tracked.facts.node = row.node;
        // Its report is on disk already: where it serves is known now, not one poll later.
        await tracker.readReport(tracked);
      }
      return jobRun(tracker, tracked, options.stopWaitMs ?? 30_000);
    },
    cancelAllSync() {
      options.cli.scancelSync(tracker.liveIds());
    },
  };
}

/** The jobs not known to have ended, followed with one `squeue` poll for all of them. */
class JobTracker {
  private readonly live = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(readonly options: SlurmJobsOptions) {}

  liveIds(): string[] {
    return [...this.live.keys()];
  }

  follow(jobId: string, jobName: string, submission: JobFollowing): Tracked {
    let resolveExit!: (exit: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((r) => (resolveExit = r));
    const job: Tracked = {
      jobId,
      jobName,
      facts: { jobId, node: "", state: "PENDING" },
      submission,
      seenRunning: false,
      missing: 0,
      location: undefined,
      exit: undefined,
      exited,
      resolveExit,
      listeners: new Set(),
    };
    this.live.set(jobId, job);
    this.schedule();
    return job;
  }

  end(job: Tracked, state: string, reason: string): void {
    if (job.exit !== undefined) return;
    job.facts.state = state;
    const why = reason !== "" && reason !== "None" ? ` (${reason})` : "";
    job.exit = { code: state === "COMPLETED" ? 0 : null, signal: null, reason: `as Slurm job ${job.jobId} ${state}${why}` };
    this.live.delete(job.jobId);
    job.resolveExit(job.exit);
    void rm(reportPath(job.submission.workDir, job.jobName, job.jobId), { force: true }).catch(() => undefined);
    this.options.logger.info({ slurmJobId: job.jobId, slurmState: state, node: job.facts.node }, "slurm job ended");
  }

  private async poll(): Promise<void> {
    let rows;
    try {
      // Usually one name; an adopted job of an earlier router process may add its own (squeue takes a list).
      rows = await this.options.cli.squeue([...new Set([...this.live.values()].map((j) => j.jobName))].join(","));
    } catch (err) {
      // A slurmctld restart or a slow controller: keep the jobs, try again next time.
      this.options.logger.warn({ err }, "squeue failed; keeping the last known job states");
      return;
    }
    const byId = new Map(rows.map((r) => [r.jobId, r]));
    for (const job of [...this.live.values()]) {
      await this.update(job, byId.get(job.jobId));
      for (const wake of job.listeners) wake();
    }
  }

  private async update(job: Tracked, row: SqueueRow | undefined): Promise<void> {
    if (row === undefined) {
      // Purged after it ended (MinJobAge). Right after sbatch it is always listed; allow a slow first listing.
      job.missing += 1;
      if (job.seenRunning || job.missing >= 3) this.end(job, "GONE", "no longer listed by squeue");
      return;
    }
    job.missing = 0;
    if (row.node !== "" && row.node !== "(null)") job.facts.node = row.node;
    job.facts.state = row.state;
    if (row.state === "RUNNING") {
      job.seenRunning = true;
      if (job.location === undefined) await this.readReport(job);
    } else if (job.seenRunning || !WAITING_STATES.has(row.state)) {
      // Leaving RUNNING (COMPLETING, CANCELLED, PREEMPTED, SUSPENDED, ...) ends it for the router at once.
      this.end(job, row.state, row.reason);
    }
  }

  async readReport(job: Tracked): Promise<void> {
    let text: string;
    try {
      text = await readFile(reportPath(job.submission.workDir, job.jobName, job.jobId), "utf8");
    } catch {
      return; // not written yet
    }
    const report = parseJobReport(text);
    if (report !== undefined) job.location = job.submission.locate(report);
  }

  private schedule(): void {
    if (this.timer !== null || this.polling || this.live.size === 0) return;
    const pollMs = Math.min(...[...this.live.values()].map((j) => j.submission.pollMs));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.polling = true;
      void this.poll().finally(() => {
        this.polling = false;
        this.schedule();
      });
    }, pollMs);
    // The router's server keeps the process alive; a finished test must not wait for a poll.
    this.timer.unref();
  }
}

/** Resolves when `done()` holds after a poll, or false after `timeoutMs`. */
function waitFor(job: Tracked, done: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
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
}

/** A followed job as a {@link WorkerRun}. */
function jobRun(tracker: JobTracker, job: Tracked, stopWaitMs: number): WorkerRun {
  const { jobId } = job;
  const { cli, logger } = tracker.options;
  let stopping: Promise<void> | undefined;
  return {
    pid: 0,
    exited: job.exited,
    exitInfo: () => job.exit,
    describe: () => ({
      facts: { slurm: Object.freeze({ ...job.facts }) },
      log: { slurmJobId: jobId, node: job.facts.node },
      handle: slurmHandle({ jobId, jobName: job.jobName, node: job.facts.node }),
      alias: jobId,
    }),
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
        tracker.end(job, "CANCELLED", "cancelled by the router");
      })();
      return stopping;
    },
    killSync() {
      if (job.exit === undefined) cli.scancelSync([jobId]);
    },
  };
}

/** A job's {@link RunDescription.handle}: what {@link SlurmJobs.adopt} needs, as JSON. */
export function slurmHandle(job: JobToAdopt): string {
  return JSON.stringify({ job: job.jobId, name: job.jobName, node: job.node });
}

/** The job a handle names, or undefined for anything else (a handle of another backend, a damaged file). */
export function parseSlurmHandle(handle: string): JobToAdopt | undefined {
  let v: unknown;
  try {
    v = JSON.parse(handle);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const { job, name, node } = v as Record<string, unknown>;
  if (typeof job !== "string" || !/^\d+$/.test(job) || typeof name !== "string" || !/^[\w.-]+$/.test(name) || typeof node !== "string") return undefined;
  return { jobId: job, jobName: name, node };
}
