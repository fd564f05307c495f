import type { Logger } from "../log.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { describeOperation, type Operations } from "./operations.js";
import type { RefitState } from "./state.js";
import { createTensorUpdate, openTensorRefit } from "./tensor-update.js";
import type { AbortResult, BeginCommand, BeginResult, CommitCommand, CommitResult } from "./types.js";
import { checkNewLabel } from "./version-label.js";

export interface TensorRefitOptions {
  registry: Registry;
  state: RefitState;
  operations: Operations;
  logger: Logger;
  drainTimeoutMs: number;
  refitTimeoutMs: number;
}

/**
 * The two-phase refit a trainer drives itself: begin (hold and drain), one
 * update_weights_from_tensor per worker (tensor-update.ts), then commit (the updated workers
 * take the version, the others leave rotation) or abort.
 */
export function createTensorRefit(options: TensorRefitOptions) {
  const { registry, state, operations, logger } = options;

  function abort(reason = "aborted by request"): AbortResult {
    const op = operations.current;
    if (op?.kind !== "tensor") {
      throw new RouterError("no_refit_in_progress", op ? `a ${describeOperation(op)} cannot be aborted; it ends by itself` : "no refit in progress to abort");
    }
    // Workers that took (or are taking) new tensors hold weights nobody
    // committed: out of rotation before the held requests are released.
    const stale = [...new Set([...op.updated, ...op.pending])];
    for (const url of stale) if (registry.get(url)) registry.weightsUnknown(url, "stale_weights", `holds uncommitted weights from an aborted refit (${reason})`);
    state.persist();
    operations.end(op);
    return { weightVersion: state.version, reason, staleWorkers: stale };
  }

  async function begin(command: BeginCommand = {}): Promise<BeginResult> {
    const timeoutMs = command.timeoutMs ?? options.refitTimeoutMs;
    const current = operations.begin("tensor", "refit");
    try {
      state.persist({ kind: "tensor", startedAtMs: current.startedAtMs });
      await operations.drain(command.drainTimeoutMs ?? options.drainTimeoutMs);
    } catch (err) {
      operations.end(current);
      state.persist();
      throw err;
    }
    current.phase = "open";
    current.timer = setTimeout(() => {
      if (operations.current !== current) return;
      logger.warn({ timeoutMs }, "two-phase refit left open past its timeout: aborting and releasing held requests");
      abort("timed out");
    }, timeoutMs);
    current.timer.unref();
    return { weightVersion: state.version, timeoutMs, workers: registry.all().filter((w) => !w.dead).map((w) => w.url) };
  }

  /** The updated workers take the new version (the command's, or the next number); the others leave rotation. */
  function commit(command: CommitCommand): CommitResult {
    const current = openTensorRefit(operations, "no open refit to commit: POST /refit/begin first");
    checkNewLabel(command.weightVersion, state.version, command.replay ?? false);
    if (current.updated.size === 0) throw new RouterError("invalid_request", "no worker was updated in this refit: POST /workers/{worker_id}/update_weights_from_tensor to each worker before committing (or /refit/abort)");
    const updated = current.updated;
    const previous = state.version;
    const version = command.weightVersion ?? state.nextVersion();
    state.advance(version, { kind: "tensor" });
    const stale: string[] = [];
    for (const w of registry.all()) {
      if (updated.has(w.url)) {
        registry.weightsLoaded(w.url, version);
        continue;
      }
      // Not updated (or still loading, or dead): its weights are not these.
      if (!w.dead) stale.push(w.url);
      registry.weightsUnknown(w.url, "stale_weights", current.pending.has(w.url) ? `its tensor update was still loading when refit ${version} was committed` : `not updated in tensor refit ${version}`);
    }
    state.persist();
    operations.end(current);
    return { weightVersion: version, previousWeightVersion: previous, updatedWorkers: [...updated], staleWorkers: stale };
  }

  return { begin, updateTensors: createTensorUpdate(registry, operations), commit, abort };
}
