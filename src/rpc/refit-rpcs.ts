import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Control } from "../admin/control.js";
import type { WorkerAnswer } from "../admin/broadcast.js";
import { secondsToMs } from "../config/durations.js";
import { RouterError } from "../errors.js";
import { UpdateWeightsFromDiskResponseSchema, type UpdateWeightsFromDiskResponse } from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import { diskRefitCommand } from "../refit/disk-command.js";
import type { DiskRefitResult } from "../refit/types.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import { resultsToPb } from "./convert.js";

export interface RefitRpcsOptions {
  control: Control;
  refit: RefitCoordinator;
}

interface DiskRefitRequest {
  modelPath: string;
  flushCache?: boolean;
  targetModules: string[];
  extra?: Record<string, unknown>;
  drainTimeoutS?: number;
  weightVersion: string;
  replay: boolean;
  model: string;
}

/** The worker's body, as REST callers send it: extra fields first, the named ones over them. */
function diskRefitBody(req: DiskRefitRequest): Record<string, unknown> {
  const json: Record<string, unknown> = { ...req.extra, model_path: req.modelPath };
  if (req.flushCache !== undefined) json.flush_cache = req.flushCache;
  if (req.targetModules.length) json.target_modules = req.targetModules;
  if (req.weightVersion) json.weight_version = req.weightVersion;
  if (req.replay) json.replay = true;
  if (req.model) json.model = req.model;
  return json;
}

function diskRefitToPb(r: DiskRefitResult): UpdateWeightsFromDiskResponse {
  const s = r.summary;
  return create(UpdateWeightsFromDiskResponseSchema, {
    results: resultsToPb(r.results),
    weightVersion: r.weightVersion,
    previousWeightVersion: r.previousWeightVersion,
    summary: { targets: s.targets, succeeded: s.succeeded, failed: s.failed, failedWorkers: s.failedWorkers.map((f) => ({ workerUrl: f.workerUrl, statusCode: f.status, message: f.message })) },
  });
}

/** The refit and sleep/wake RPCs: the same core commands as REST, answered in protobuf. */
export function createRefitRpcs({ control, refit }: RefitRpcsOptions) {
  return {
    async updateWeightsFromDisk(req: DiskRefitRequest) {
      if (!req.modelPath) throw new RouterError("invalid_request", "model_path is required", { details: { param: "model_path" } });
      const json = diskRefitBody(req);
      const r = await refit.updateWeightsFromDisk(diskRefitCommand(Buffer.from(JSON.stringify(json)), json, secondsToMs(req.drainTimeoutS, "drain_timeout_s")));
      const response = diskRefitToPb(r);
      if (r.failure !== null) {
        // The per-worker outcome travels as an error detail (rich gRPC error).
        throw new ConnectError(r.failure, Code.Unavailable, { "x-router-error-code": "upstream_failed" }, [{ desc: UpdateWeightsFromDiskResponseSchema, value: response }]);
      }
      return response;
    },
    async releaseMemoryOccupation(req: { drainTimeoutS?: number; model: string }) {
      const { results, changed } = await refit.releaseMemory({ body: Buffer.from("{}"), drainTimeoutMs: secondsToMs(req.drainTimeoutS, "drain_timeout_s"), model: req.model || null });
      return { results: resultsToPb(results), changed };
    },
    async resumeMemoryOccupation(req: { model: string }) {
      const { results, changed } = await refit.resumeMemory({ body: Buffer.from("{}"), model: req.model || null });
      return { results: resultsToPb(results), changed };
    },
    async beginRefit(req: { drainTimeoutS?: number; timeoutS?: number }) {
      const r = await refit.begin({ drainTimeoutMs: secondsToMs(req.drainTimeoutS, "drain_timeout_s"), timeoutMs: secondsToMs(req.timeoutS, "timeout_s") });
      return { weightVersion: r.weightVersion, workers: r.workers, timeoutS: r.timeoutMs / 1000 };
    },
    async updateWeightsFromTensor(req: { url: string; body?: Record<string, unknown> }) {
      const worker = control.getWorker(decodeWorkerId(req.url));
      let result: WorkerAnswer | undefined;
      await refit.updateTensors(worker.url, async (answered) => {
        [result] = await control.broadcast("/update_weights_from_tensor", JSON.stringify(req.body ?? {}), [worker]);
        answered(result!.status, Buffer.from(JSON.stringify(result!.body)));
      });
      return { result: resultsToPb([result!])[0] };
    },
    async commitRefit(req: { weightVersion: string; replay: boolean }) {
      const r = refit.commit({ weightVersion: req.weightVersion || null, replay: req.replay });
      return { weightVersion: r.weightVersion, previousWeightVersion: r.previousWeightVersion, updatedWorkers: r.updatedWorkers, staleWorkers: r.staleWorkers };
    },
    async abortRefit() {
      const r = refit.abort();
      return { weightVersion: r.weightVersion, staleWorkers: r.staleWorkers };
    },
    async getRefitStatus() {
      const s = refit.status();
      return {
        weightVersion: s.weightVersion,
        refits: s.refits,
        phase: s.phase,
        operation: s.operation ?? "",
        updatedWorkers: s.updatedWorkers,
        replayable: s.replayable,
        heldRequests: s.heldRequests,
        inFlight: s.inFlight,
      };
    },
  };
}
