import type { Logger } from "../log.js";

/** A video job the router knows is open: its id and the worker running it. */
export interface OpenJob {
  readonly jobId: string;
  readonly workerUrl: string;
}

export interface VideoDrainOptions {
  /** Open jobs on the workers about to be stopped. */
  jobs: readonly OpenJob[];
  /** Epoch ms by which shutdown must go on, finished or not. */
  deadline: number;
  logger: Logger;
  /** A job seen finished (the router's job count and cost model hear of it). */
  onEnded(jobId: string, ok: boolean): void;
  /** Between polls of each job. Default 250 ms. */
  pollMs?: number;
  /** After the last job finished: a client polling the worker fetches its video now. Default 1000 ms. */
  collectMs?: number;
}

/** Worker statuses that end a job (OpenAI's video object; the sim's `deleted`). */
const finished = new Set(["completed", "failed", "deleted", "cancelled"]);

/**
 * Waits, within the deadline, for video jobs still running on workers
 * shutdown is about to stop: a video create answers at once, so "no request
 * in flight" says nothing of them, and stopping the worker loses the job.
 * Nobody else polls during shutdown, so the router asks each worker
 * (`GET /v1/videos/{id}`) itself. Every job it could not wait for is logged
 * at warn, by id and worker: lost, but not silently.
 */
export async function drainVideoJobs(options: VideoDrainOptions): Promise<void> {
  const { logger, deadline } = options;
  let pending = [...options.jobs];
  if (pending.length === 0) return;
  logger.info({ jobs: pending.map((j) => ({ videoId: j.jobId, worker: j.workerUrl })) }, "shutdown: waiting for video jobs on workers about to stop");
  let anyFinished = false;
  while (pending.length > 0 && Date.now() < deadline) {
    const statuses = await Promise.all(pending.map((j) => jobStatus(j, deadline)));
    const still: OpenJob[] = [];
    pending.forEach((job, i) => {
      const status = statuses[i];
      if (status === undefined || !finished.has(status)) return void still.push(job);
      anyFinished = true;
      options.onEnded(job.jobId, status === "completed");
      logger.info({ videoId: job.jobId, worker: job.workerUrl, status }, "shutdown: video job finished before its worker stopped");
    });
    pending = still;
    if (pending.length > 0) await sleep(Math.min(options.pollMs ?? 250, Math.max(0, deadline - Date.now())));
  }
  for (const job of pending) {
    logger.warn({ videoId: job.jobId, worker: job.workerUrl }, "shutdown: video job still running when --shutdown-timeout ran out: lost with its worker");
  }
  if (anyFinished) await sleep(Math.min(options.collectMs ?? 1000, Math.max(0, deadline - Date.now())));
}

/** The job's status on its worker; a 404 is gone (finished as far as anyone can wait); undefined when the worker did not say. */
async function jobStatus(job: OpenJob, deadline: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${job.workerUrl}/v1/videos/${encodeURIComponent(job.jobId)}`, { signal: AbortSignal.timeout(Math.max(1, Math.min(2000, deadline - Date.now()))) });
    if (res.status === 404) {
      await res.body?.cancel();
      return "deleted";
    }
    const body = (await res.json()) as { status?: unknown };
    return typeof body.status === "string" ? body.status : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
