import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { newRolloutId, RolloutJob, type RolloutOptions, type RolloutRequest, type RunItem } from "./rollout-job.js";

/** Options of {@link createRollouts}. */
export interface RolloutsOptions {
  registry: Registry;
  run: RunItem;
  /** Paths an item may take. */
  paths: readonly string[];
  /** The router's current weight version. */
  weightVersion: () => string;
  /** Most items in one job; default 10,000 (the router queue's default size). */
  maxItems?: number;
  /** Ended jobs answer GET for this long; default 10 min. */
  keepEndedMs?: number;
  /** Most jobs remembered (running ones always are); default 100. */
  maxEndedJobs?: number;
}

/** What a client submits, before validation (REST JSON or the RPC's fields). */
export interface RolloutSubmission {
  requests?: unknown;
  min_complete?: unknown;
  deadline_s?: unknown;
  routing_key?: unknown;
  weight_version?: unknown;
}

const submissionFields = new Set(["requests", "min_complete", "deadline_s", "routing_key", "weight_version"]);

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
  const paths = new Set(options.paths);

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

  function invalid(message: string, param: string): RouterError {
    return new RouterError("invalid_request", message, { details: { param } });
  }

  /** Checks a submission; every problem names its field (and item index). */
  function parse(s: RolloutSubmission): { requests: RolloutRequest[]; options: RolloutOptions } {
    const unknown = Object.keys(s).filter((k) => !submissionFields.has(k));
    if (unknown.length) throw new RouterError("unknown_field", `Unsupported fields: ${unknown.join(", ")} (supported: ${[...submissionFields].join(", ")})`, { details: { param: unknown[0] } });
    if (!Array.isArray(s.requests) || s.requests.length === 0) throw invalid("requests must be a non-empty array of {path, body}", "requests");
    if (s.requests.length > maxItems) throw invalid(`requests has ${s.requests.length} items; at most ${maxItems} per job`, "requests");
    const requests = s.requests.map((r: unknown, i): RolloutRequest => {
      if (typeof r !== "object" || r === null || Array.isArray(r)) throw invalid(`requests[${i}] must be an object {path, body}`, `requests[${i}]`);
      const { path, body, ...rest } = r as Record<string, unknown>;
      const extra = Object.keys(rest);
      if (extra.length) throw new RouterError("unknown_field", `requests[${i}] has unsupported fields: ${extra.join(", ")} (supported: path, body)`, { details: { param: `requests[${i}].${extra[0]}` } });
      if (typeof path !== "string" || !paths.has(path)) throw invalid(`requests[${i}].path must be one of ${[...paths].join(", ")}, got ${JSON.stringify(path)}`, `requests[${i}].path`);
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid(`requests[${i}].body must be a JSON object`, `requests[${i}].body`);
      return { path, body: Buffer.from(JSON.stringify(body)) };
    });
    let minComplete: number | null = null;
    if (s.min_complete !== undefined && s.min_complete !== null) {
      const k = s.min_complete;
      if (typeof k !== "number" || !Number.isInteger(k) || k < 1 || k > requests.length) throw invalid(`min_complete must be an integer 1-${requests.length} (the number of requests), got ${JSON.stringify(k)}`, "min_complete");
      minComplete = k;
    }
    let deadlineMs: number | null = null;
    if (s.deadline_s !== undefined && s.deadline_s !== null) {
      const d = s.deadline_s;
      if (typeof d !== "number" || !(d > 0) || d > 2_000_000) throw invalid(`deadline_s must be a number of seconds > 0 (at most 2000000), got ${JSON.stringify(d)}`, "deadline_s");
      deadlineMs = d * 1000;
    }
    let routingKey: string | null = null;
    // "" means none, as in the RPC (a proto string cannot be absent).
    if (s.routing_key !== undefined && s.routing_key !== null && s.routing_key !== "") {
      if (typeof s.routing_key !== "string" || s.routing_key === "" || s.routing_key.length > 200) throw invalid("routing_key must be a non-empty string of at most 200 characters", "routing_key");
      routingKey = s.routing_key;
    }
    let weightVersion: string | null = null;
    if (s.weight_version !== undefined && s.weight_version !== null && s.weight_version !== "") {
      if (typeof s.weight_version !== "string" && typeof s.weight_version !== "number") throw invalid("weight_version must be a string or a number", "weight_version");
      weightVersion = String(s.weight_version);
      const current = options.weightVersion();
      if (weightVersion !== current) {
        throw new RouterError("weight_version_mismatch", `weight_version ${JSON.stringify(weightVersion)} is not the router's current weight version ${JSON.stringify(current)}: no worker will serve it`, { details: { param: "weight_version", current_weight_version: current } });
      }
    }
    return { requests, options: { minComplete, deadlineMs, routingKey, weightVersion } };
  }

  return {
    /** Validates and starts a job (throws a RouterError naming the problem). */
    submit(s: RolloutSubmission): RolloutJob {
      const { requests, options: o } = parse(s);
      prune();
      const job = new RolloutJob(newRolloutId(), requests, o, options.run);
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
