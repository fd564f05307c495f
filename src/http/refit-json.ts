import type { WorkerAnswer } from "../admin/broadcast.js";
import type { AbortResult, BeginResult, CommitResult, DiskRefitResult, MemoryResult, RefitStatus, RefitSummary } from "../refit/types.js";

/*
 * The refit core's typed results in the REST shapes: the original router's
 * field names (snake_case) for what it had, ours after.
 */

export const answerJson = (a: WorkerAnswer) => ({ worker_url: a.workerUrl, status_code: a.status, body: a.body });

export const answersJson = (answers: readonly WorkerAnswer[]) => ({ results: answers.map(answerJson) });

/** A sleep or wake: the original's `{results}`, then whether anything changed (false: the pool already was so). */
export const memoryJson = (r: MemoryResult) => ({ results: r.results.map(answerJson), changed: r.changed });

function summaryJson(s: RefitSummary) {
  return { targets: s.targets, succeeded: s.succeeded, failed: s.failed, failed_workers: s.failedWorkers.map((f) => ({ worker_url: f.workerUrl, status_code: f.status, message: f.message })) };
}

export function diskRefitJson(r: DiskRefitResult) {
  return { results: r.results.map(answerJson), weight_version: r.weightVersion, previous_weight_version: r.previousWeightVersion, summary: summaryJson(r.summary) };
}

export const beginJson = (r: BeginResult) => ({ weight_version: r.weightVersion, phase: "open", timeout_s: r.timeoutMs / 1000, workers: r.workers });

export const commitJson = (r: CommitResult) => ({ weight_version: r.weightVersion, previous_weight_version: r.previousWeightVersion, updated_workers: r.updatedWorkers, stale_workers: r.staleWorkers });

export const abortJson = (r: AbortResult) => ({ weight_version: r.weightVersion, aborted: true, reason: r.reason, stale_workers: r.staleWorkers });

/** `weight_versions` (model -> version), only once a refit named a model: a single-model pool's answers stay as they were. */
export function modelVersionsJson(s: RefitStatus): { weight_versions?: Record<string, string> } {
  return Object.keys(s.modelVersions).length > 0 ? { weight_versions: s.modelVersions } : {};
}

export function refitStatusJson(s: RefitStatus) {
  return {
    weight_version: s.weightVersion,
    refits: s.refits,
    phase: s.phase,
    operation: s.operation,
    started_at_ms: s.startedAtMs,
    updated_workers: s.updatedWorkers,
    replayable: s.replayable,
    held_requests: s.heldRequests,
    in_flight: s.inFlight,
    ...modelVersionsJson(s),
  };
}
