import type { RouteSpec } from "../dispatch/context.js";
import type { TicketReader } from "../dispatch/ticket.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { JobObserver } from "./job-observer.js";
import { newRolloutId, RolloutJob, type Dispatch } from "./rollout-job.js";
import { parseSubmission, type RolloutSubmission } from "./submission.js";

export type { RolloutSubmission } from "./submission.js";

/** Options of {@link createRollouts}. */
export interface RolloutsOptions {
  registry: Registry;
  /** The dispatch core, which runs every item. */
  dispatch: Dispatch;
  /** Reads each item's ticket, refusing bodies over the request limits (the item fails with 400). */
  tickets: TicketReader;
  /** Paths an item may take, and what each is to the dispatch core. */
  routes: ReadonlyMap<string, RouteSpec>;
  /** The router's current weight version. */
  weightVersion: () => string;
  /** Told by every job as it runs (the metrics); default none. */
  observer?: JobObserver;
  /** Most items in one job; default 10,000 (the router queue's default size). */
  maxItems?: number;
  /** Ended jobs answer GET for this long; default 10 min. */
  keepEndedMs?: number;
  /** Most jobs remembered (running ones always are); default 100. */
  maxEndedJobs?: number;
}

/**
 * The rollout jobs of the router: validation of a submission (once, for REST
 * and RPC alike), the jobs running and recently ended, and cancellation
 * when the router's weights move past a job's pinned version.
 */
export function createRollouts(options: RolloutsOptions) {
  const maxItems = options.maxItems ?? 10_000;
  const keepEndedMs = options.keepEndedMs ?? 10 * 60_000;
  const maxEnded = options.maxEndedJobs ?? 100;
  const jobs = new Map<string, RolloutJob>();

  // A pinned job's items can only run on its version: once the router has
  // moved on (a refit), they never will, so they are cancelled at once.
  options.registry.on("change", (e) => {
    if (e.type === "updated" && e.reason === "load") return;
    const current = options.weightVersion();
    for (const job of jobs.values()) if (!job.ended && job.pinnedVersion !== null && job.pinnedVersion !== current) job.cancel("weight_version_mismatch");
  });

  function prune(): void {
    const now = Date.now();
    const ended = [...jobs.values()].filter((j) => j.ended);
    for (const j of ended) if (now - (j.endedAtMs ?? now) > keepEndedMs) jobs.delete(j.id);
    const left = ended.filter((j) => jobs.has(j.id));
    for (let i = 0; i < left.length - maxEnded; i++) jobs.delete(left[i]!.id);
  }

  return {
    /** Validates and starts a job (throws a RouterError naming the problem). */
    submit(s: RolloutSubmission): RolloutJob {
      const { requests, options: o } = parseSubmission(s, { maxItems, routes: options.routes, currentVersion: options.weightVersion() });
      prune();
      const job = new RolloutJob(newRolloutId(), requests, o, options.dispatch, options.tickets, options.observer);
      jobs.set(job.id, job);
      job.start();
      return job;
    },

    get(id: string): RolloutJob {
      prune();
      const job = jobs.get(id);
      if (!job) throw new RouterError("rollout_not_found", `Unknown rollout id: ${id} (never submitted, or ended more than ${Math.round(keepEndedMs / 60_000)} min ago)`, { details: { param: "id" } });
      return job;
    },

    /** Cancels a job; an ended job is left as it is. */
    cancel(id: string): RolloutJob {
      const job = this.get(id);
      job.cancel("cancelled");
      return job;
    },

    /** The jobs not ended, oldest first (the dashboard's panel, GET /v1/rollouts). */
    list(): RolloutJob[] {
      prune();
      return [...jobs.values()].filter((j) => !j.ended);
    },

    /** Jobs not ended. */
    get running(): number {
      let n = 0;
      for (const j of jobs.values()) if (!j.ended) n++;
      return n;
    },

    /** Cancels every running job (shutdown). */
    cancelAll(): void {
      for (const j of jobs.values()) j.cancel("cancelled");
    },
  };
}

export type Rollouts = ReturnType<typeof createRollouts>;
