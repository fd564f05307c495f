import type { Worker } from "../registry/worker.js";
import type { LoadBook } from "./loads.js";
import type { Run, Ticket } from "./ticket.js";

/** A job's creation and completion in the worker's clock (ms). */
export interface JobTimes {
  createdMs: number;
  completedMs: number;
}

/** Jobs whose end is never seen (nobody polls) stop counting after this multiple of their prediction. */
const JOB_EXPIRY_FACTOR = 3;
const JOB_EXPIRY_MIN_MS = 60_000;

/**
 * Video jobs a worker runs after its create request answered: each counts
 * as work on its worker until a poll shows it done (or it expires unseen),
 * and the worker's own timestamps of a finished job teach the cost model.
 */
export class VideoJobs {
  readonly #jobs = new Map<string, { run: Run; ticket: Ticket; expires: NodeJS.Timeout }>();
  /** Latest job completion per worker, in the worker's clock. */
  readonly #doneMs = new WeakMap<Worker, number>();

  /** `onEnded` runs after a job stopped counting (a slot may be free). */
  constructor(
    private readonly loads: LoadBook,
    private readonly onEnded: () => void,
  ) {}

  /** Jobs counted now. */
  get size(): number {
    return this.#jobs.size;
  }

  /** The jobs counted now and their workers (shutdown waits for those on workers it stops). */
  open(): { jobId: string; workerUrl: string }[] {
    return [...this.#jobs].map(([jobId, job]) => ({ jobId, workerUrl: job.run.worker.url }));
  }

  started(worker: Worker, jobId: string, ticket: Ticket): void {
    const run = this.loads.start(worker, ticket, null);
    const expires = setTimeout(() => this.ended(jobId, false), Math.max(JOB_EXPIRY_MIN_MS, JOB_EXPIRY_FACTOR * run.predictedMs));
    expires.unref();
    const old = this.#jobs.get(jobId);
    if (old) {
      clearTimeout(old.expires);
      this.loads.drop(old.run);
    }
    this.#jobs.set(jobId, { run, ticket, expires });
  }

  ended(jobId: string, ok: boolean, times?: JobTimes): void {
    const job = this.#jobs.get(jobId);
    if (!job) return;
    this.#jobs.delete(jobId);
    clearTimeout(job.expires);
    const counted = this.loads.drop(job.run);
    if (ok && times !== undefined && counted) {
      // Jobs run one after another on the worker: this one started at the
      // later of its creation and the previous job's completion.
      const { worker, model } = job.run;
      const last = this.#doneMs.get(worker) ?? 0;
      this.loads.costs.observe(worker.url, model, job.ticket.facts.work, times.completedMs - Math.max(times.createdMs, last), times.completedMs);
      if (times.completedMs > last) this.#doneMs.set(worker, times.completedMs);
    }
    this.onEnded();
  }
}
