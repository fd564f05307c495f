import { answerMessage, answerSucceeded, type Broadcast, type WorkerAnswer } from "../admin/broadcast.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Operations } from "./operations.js";
import type { Reconciler } from "./reconcile.js";
import type { RefitState } from "./state.js";
import type { DiskRefitCommand, DiskRefitResult, RefitSummary } from "./types.js";
import { drainScope, modelOf, targetModel } from "./targets.js";
import { checkNewLabel } from "./version-label.js";

export interface DiskRefitOptions {
  registry: Registry;
  state: RefitState;
  operations: Operations;
  reconciler: Reconciler;
  broadcast: Broadcast;
  drainTimeoutMs: number;
}

/**
 * `update_weights_from_disk`: hold, drain, broadcast, then move the version
 * if any worker loaded the weights. Workers that failed leave rotation
 * (`stale`) rather than serve the old weights.
 */
export function createDiskRefit(options: DiskRefitOptions): (command: DiskRefitCommand) => Promise<DiskRefitResult> {
  const { registry, state, operations, reconciler, broadcast } = options;

  function summaryOf(results: WorkerAnswer[]): RefitSummary {
    const failed = results
      .filter((r) => !answerSucceeded(r))
      .map((r) => {
        // A sleeping worker refuses to load weights: say so, with the way out.
        const asleep = registry.get(r.workerUrl)?.sleeping === true;
        return { workerUrl: r.workerUrl, status: r.status, message: asleep ? `worker is sleeping (call /resume_memory_occupation first): ${answerMessage(r)}` : answerMessage(r) };
      });
    return { targets: results.length, succeeded: results.length - failed.length, failed: failed.length, failedWorkers: failed };
  }

  /** The pool (or `model`) moves to `version`; a worker that failed is kept away from traffic (half loaded or rolled back) until a replay. */
  function advance(version: string, body: string, results: WorkerAnswer[], model: string | null): void {
    state.advance(version, { kind: "disk", body }, model);
    for (const r of results) {
      if (answerSucceeded(r)) {
        registry.weightsLoaded(r.workerUrl, version);
        continue;
      }
      reconciler.failedToLoad(r.workerUrl);
      registry.weightsUnknown(r.workerUrl, "refit_failed", `update_weights_from_disk to ${version} failed: ${answerMessage(r)}`);
    }
  }

  function failureOf(summary: RefitSummary, version: string): string | null {
    if (summary.failed === 0) return null;
    const what = summary.succeeded === 0 ? `no worker loaded the weights; the pool stays on ${version}` : `${summary.failed} of ${summary.targets} worker(s) failed and left rotation until they hold ${version}`;
    return `update_weights_from_disk: ${what}`;
  }

  return async function updateWeightsFromDisk(command) {
    const model = targetModel(registry, command.model, true);
    const current = operations.begin("disk", "refit", model === null);
    try {
      const previous = state.weightsOfModel(model).version;
      checkNewLabel(command.weightVersion, previous, command.replay);
      const targetVersion = command.weightVersion ?? state.nextVersion();
      const body = command.body.toString("utf8");
      state.persist({ kind: "disk", body, targetVersion, startedAtMs: current.startedAtMs, ...(model === null ? {} : { model }) });
      await drainScope(registry, operations, model, command.drainTimeoutMs ?? options.drainTimeoutMs);
      current.phase = "updating";
      const targets = registry.all().filter((w) => !w.dead && (model === null || modelOf(w) === model));
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
      const results = await broadcast("/update_weights_from_disk", command.body, targets);
      const summary = summaryOf(results);
      if (summary.succeeded > 0) advance(targetVersion, body, results, model);
      state.persist();
      const version = state.weightsOfModel(model).version;
      return { results, weightVersion: version, previousWeightVersion: previous, summary, failure: failureOf(summary, version) };
    } catch (err) {
      state.persist();
      throw err;
    } finally {
      operations.end(current);
    }
  };
}
