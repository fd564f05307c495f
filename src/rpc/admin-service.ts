import type { Worker } from "../registry/worker.js";
import type { WorkerScheduling } from "../admission/admission.js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { load as loadYaml } from "js-yaml";
import type { BroadcastResult, Control } from "../admin/control.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import { secondsToMs } from "../config/durations.js";
import { RouterError } from "../errors.js";
import {
  AdminService,
  GetRouterStatusResponseSchema,
  UpdateWeightsFromDiskResponseSchema,
  type LauncherConfig as PbLauncherConfig,
} from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import { parseLauncherConfig, parseLauncherSection, type Launcher, type LauncherConfig, type LauncherGroups } from "../launcher/index.js";
import type { Registry } from "../registry/registry.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import { VERSION } from "../version.js";
import { launcherSectionFromPb, managedToPb, resultsToPb, workerToPb } from "./convert.js";
import { toConnectError } from "./errors.js";
import { watchWorkers } from "./watch.js";
import type { LoraPool } from "../lora/lora-action.js";
import { loraMethods } from "./lora-methods.js";

export interface AdminServiceOptions {
  control: Control;
  refit: RefitCoordinator;
  registry: Registry;
  launcher: Launcher;
  routingAlgorithm: string;
  startedAtMs: number;
  /** The scheduler's view of every worker (learned speed, estimated work). */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** The pool's LoRA action (audited), for UpdateLora (rpc/lora-methods.ts). */
  lora: LoraPool;
}



/** A worker named by URL (any accepted spelling) or by its REST worker_id. */
function workerUrlOf(raw: string): string {
  return decodeWorkerId(raw);
}

type LauncherSource = { case: "config"; value: PbLauncherConfig } | { case: "yaml"; value: string } | { case: undefined; value?: undefined };

/** The groups a request's config (one) or yaml (a launcher: mapping or list) describes. */
function launcherConfigOf(source: LauncherSource, rpc: string): LauncherGroups {
  if (source.case === "config") return [parseLauncherSection(launcherSectionFromPb(source.value), `${rpc} request`)];
  if (source.case === "yaml") {
    let doc: unknown;
    try {
      doc = loadYaml(source.value);
    } catch (err) {
      throw new RouterError("invalid_request", `${rpc}: yaml is not valid YAML: ${(err as Error).message}`, { details: { param: "yaml" } });
    }
    return parseLauncherConfig(doc, `${rpc} request yaml`);
  }
  throw new RouterError("invalid_request", `${rpc} needs a launcher config: set config or yaml`, { details: { param: "source" } });
}

/**
 * Scaling acts on one group (found by its name, see Launcher.scale); a yaml
 * listing several groups is refused rather than guessing which one is meant.
 */
function scaleGroupOf(source: LauncherSource): LauncherConfig {
  const groups = launcherConfigOf(source, "ScaleManagedWorkers");
  if (groups.length !== 1) {
    throw new RouterError(
      "invalid_request",
      `ScaleManagedWorkers scales one group of workers, but the yaml lists ${groups.length} launcher groups; send the group to scale alone (a launcher: mapping, or config)`,
      { details: { param: "yaml" } },
    );
  }
  return groups[0]!;
}

/**
 * wraps each handler so that a RouterError becomes the matching Connect code
 * (one mapping, in rpc/errors.ts) instead of an opaque internal error.
 */
function mapErrors<T extends Record<string, (...args: never[]) => unknown>>(impl: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl)) {
    out[name] = async function (this: unknown, ...args: never[]) {
      try {
        return await fn.apply(this, args);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  }
  return out as T;
}

/**
 * The AdminService: thin adapters over the same Control, Registry and
 * Launcher as the REST admin API.
 */
export function createAdminServiceImpl(options: AdminServiceOptions): ServiceImpl<typeof AdminService> {
  const { control, registry, launcher, refit } = options;
  const unary = mapErrors({
    async listWorkers() {
      const view = options.scheduling();
      return { workers: control.listWorkers().map((w) => workerToPb(w, view.get(w))) };
    },
    async getWorker(req: { url: string }) {
      const worker = control.getWorker(workerUrlOf(req.url));
      return { worker: workerToPb(worker, options.scheduling().get(worker)) };
    },
    async addWorker(req: { url: string }) {
      const { worker, created } = await control.addWorker(req.url);
      return { worker: workerToPb(worker), created };
    },
    async updateWorker(req: { url: string; isDead?: boolean; refreshCapabilities: boolean; draining?: boolean }) {
      const worker = await control.updateWorker(workerUrlOf(req.url), { isDead: req.isDead, draining: req.draining, refreshVideoSupport: req.refreshCapabilities });
      return { worker: workerToPb(worker) };
    },
    async removeWorker(req: { url: string }) {
      return { worker: workerToPb(control.removeWorker(workerUrlOf(req.url))) };
    },
    async updateWeightsFromDisk(req: { modelPath: string; flushCache?: boolean; targetModules: string[]; extra?: Record<string, unknown>; drainTimeoutS?: number; weightVersion: string }) {
      if (!req.modelPath) throw new RouterError("invalid_request", "model_path is required", { details: { param: "model_path" } });
      const json: Record<string, unknown> = { ...req.extra, model_path: req.modelPath };
      if (req.flushCache !== undefined) json.flush_cache = req.flushCache;
      if (req.targetModules.length) json.target_modules = req.targetModules;
      if (req.weightVersion) json.weight_version = req.weightVersion;
      const b = await refit.updateWeightsFromDisk(Buffer.from(JSON.stringify(json)), json, secondsToMs(req.drainTimeoutS, "drain_timeout_s"));
      const response = create(UpdateWeightsFromDiskResponseSchema, {
        results: resultsToPb(b.results),
        weightVersion: b.weight_version,
        previousWeightVersion: b.previous_weight_version,
        summary: {
          targets: b.summary.targets,
          succeeded: b.summary.succeeded,
          failed: b.summary.failed,
          failedWorkers: b.summary.failed_workers.map((f) => ({ workerUrl: f.worker_url, statusCode: f.status_code, message: f.message })),
        },
      });
      if (b.failure !== null) {
        // The per-worker outcome travels as an error detail (rich gRPC error).
        throw new ConnectError(b.failure, Code.Unavailable, { "x-router-error-code": "upstream_failed" }, [{ desc: UpdateWeightsFromDiskResponseSchema, value: response }]);
      }
      return response;
    },
    async releaseMemoryOccupation(req: { drainTimeoutS?: number }) {
      const { results } = await refit.releaseMemory(Buffer.from("{}"), secondsToMs(req.drainTimeoutS, "drain_timeout_s"));
      return { results: resultsToPb(results) };
    },
    async resumeMemoryOccupation() {
      const { results } = await refit.resumeMemory(Buffer.from("{}"));
      return { results: resultsToPb(results) };
    },
    async beginRefit(req: { drainTimeoutS?: number; timeoutS?: number }) {
      const r = await refit.begin(secondsToMs(req.drainTimeoutS, "drain_timeout_s"), secondsToMs(req.timeoutS, "timeout_s"));
      return { weightVersion: r.weight_version, workers: r.workers, timeoutS: r.timeout_s };
    },
    async updateWeightsFromTensor(req: { url: string; body?: Record<string, unknown> }) {
      const worker = control.getWorker(workerUrlOf(req.url));
      let result: BroadcastResult | undefined;
      await refit.updateTensors(worker.url, async (answered) => {
        [result] = await control.broadcast("/update_weights_from_tensor", JSON.stringify(req.body ?? {}), [worker]);
        answered(result!.status_code, Buffer.from(JSON.stringify(result!.body)));
      });
      return { result: resultsToPb([result!])[0] };
    },
    async commitRefit(req: { weightVersion: string }) {
      const r = refit.commit(req.weightVersion || undefined);
      return { weightVersion: r.weight_version, previousWeightVersion: r.previous_weight_version, updatedWorkers: r.updated_workers, staleWorkers: r.stale_workers };
    },
    async abortRefit() {
      const r = refit.abort();
      return { weightVersion: r.weight_version, staleWorkers: r.stale_workers };
    },
    async getRefitStatus() {
      const s = refit.status();
      return {
        weightVersion: s.weight_version,
        refits: s.refits,
        phase: s.phase,
        operation: s.operation ?? "",
        updatedWorkers: s.updated_workers,
        replayable: s.replayable,
        heldRequests: s.held_requests,
        inFlight: s.in_flight,
      };
    },
    async launchWorkers(req: { source: LauncherSource }) {
      const result = await launcher.launch(launcherConfigOf(req.source, "LaunchWorkers"));
      return { workers: result.workers.map(managedToPb) };
    },
    async listManagedWorkers() {
      return { workers: launcher.list().map(managedToPb) };
    },
    async stopManagedWorkers(req: { urls: string[] }) {
      // A bare number is a Slurm job id: a job names its worker before it has a URL.
      const urls = req.urls.map((u) => (/^\d+$/.test(u.trim()) ? u.trim() : workerUrlOf(u)));
      const before = launcher.list().filter((m) => urls.length === 0 || urls.includes(m.url) || (m.slurm !== undefined && urls.includes(m.slurm.jobId)));
      await launcher.stop(urls.length ? urls : undefined);
      return { workers: before.map((m) => managedToPb({ ...m, state: "exited" })) };
    },
    async scaleManagedWorkers(req: { source: LauncherSource; count: number; create: boolean }) {
      const before = new Map(launcher.list().map((m) => [m.url, m]));
      // Scale-down of Slurm workers that never reported a URL: stopped[] names them by job id.
      for (const m of launcher.list()) if (m.slurm !== undefined) before.set(m.slurm.jobId, m);
      const result = await launcher.scale(scaleGroupOf(req.source), req.count, { create: req.create });
      return {
        started: result.started.map(managedToPb),
        stopped: result.stopped.flatMap((u) => {
          const m = before.get(u);
          return m ? [managedToPb({ ...m, state: "exited" })] : [];
        }),
        workers: launcher.list().map(managedToPb),
      };
    },
    async getRouterStatus() {
      const s = control.status();
      return create(GetRouterStatusResponseSchema, {
        version: VERSION,
        uptimeMs: BigInt(Date.now() - options.startedAtMs),
        routingAlgorithm: options.routingAlgorithm,
        totalWorkers: s.total,
        healthyWorkers: s.healthy,
        deadWorkers: s.dead,
        sleepingWorkers: s.sleeping,
        routableWorkers: s.routable,
        inFlightRequests: s.inFlight,
        managedWorkers: launcher.list().length,
        weightVersion: refit.version,
      });
    },
  });
  // Typed against the service: a handler whose request or answer does not
  // match the proto is a compile error here, not a cast.
  const impl: ServiceImpl<typeof AdminService> = {
    ...unary,
    ...loraMethods(options.lora),
    watchWorkers(req, context) {
      return watchWorkers(registry, { excludeLoad: req.excludeLoad, signal: context.signal });
    },
  };
  return impl;
}
