import type { WorkerScheduling } from "../admission/admission.js";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { WorkerAnswer } from "../admin/broadcast.js";
import {
  ManagedWorkerSchema,
  WorkerCapabilitiesSchema,
  WorkerResultSchema,
  WorkerSchema,
  WorkerState as PbWorkerState,
  type LauncherConfig as PbLauncherConfig,
  type SlurmOptions as PbSlurmOptions,
  type ManagedWorker as PbManagedWorker,
  type Worker as PbWorker,
  type WorkerResult,
} from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import type { ManagedWorker } from "../launcher/index.js";
import { workerState, type Worker, type WorkerState } from "../registry/worker.js";
import { displayIdOf, workerIdOf } from "../registry/worker-url.js";

const stateToPb: Record<WorkerState, PbWorkerState> = {
  healthy: PbWorkerState.HEALTHY,
  suspect: PbWorkerState.SUSPECT,
  starting: PbWorkerState.STARTING,
  dead: PbWorkerState.DEAD,
  sleeping: PbWorkerState.SLEEPING,
  syncing: PbWorkerState.SYNCING,
  draining: PbWorkerState.DRAINING,
  stale: PbWorkerState.STALE,
};

/** The RPC form of a worker: the same facts as the REST payload. */
export function workerToPb(w: Worker, scheduling?: WorkerScheduling): PbWorker {
  return create(WorkerSchema, {
    url: w.url,
    workerId: w.id,
    displayId: w.displayId,
    state: stateToPb[workerState(w)],
    activeRequests: w.activeRequests,
    consecutiveFailures: w.consecutiveFailures,
    isDead: w.dead,
    isSleeping: w.sleeping,
    draining: w.draining,
    deadReason: w.deadReason ?? "",
    lastError: w.lastError ?? "",
    capabilities: create(WorkerCapabilitiesSchema, {
      taskType: w.capabilities.taskType ?? "",
      videoSupport: w.capabilities.videoSupport ?? undefined,
      models: w.capabilities.models,
    }),
    weightVersion: w.weightVersion ?? "",
    managed: w.managed,
    registeredAtUnixMs: BigInt(w.registeredAtMs),
    scheduling: scheduling && { speed: scheduling.speed, observations: scheduling.observations, speedNoise: scheduling.noise, inFlightWorkMs: scheduling.inFlightWorkMs, queuedWorkMs: scheduling.queuedWorkMs },
  });
}

/**
 * A launcher-managed worker that failed, in ListWorkers' shape (as
 * `failedWorkerJson` is in GET /workers'): no longer in the registry,
 * listed so that it does not vanish.
 */
export function failedManagedToPb(m: ManagedWorker): PbWorker {
  return create(WorkerSchema, {
    url: m.url,
    // A Slurm job that never reported has no URL: its name stands for it.
    workerId: m.url === "" ? m.name : workerIdOf(m.url),
    displayId: m.url === "" ? m.name : displayIdOf(m.url),
    state: PbWorkerState.FAILED,
    isDead: true,
    deadReason: "launcher_failed",
    lastError: m.error ?? "",
    capabilities: create(WorkerCapabilitiesSchema, { models: [m.model] }),
    managed: true,
    registeredAtUnixMs: BigInt(m.startedAtMs),
  });
}

export function resultsToPb(results: readonly WorkerAnswer[]): WorkerResult[] {
  return results.map((r) =>
    create(WorkerResultSchema, {
      workerUrl: r.workerUrl,
      statusCode: r.status,
      body: fromJson(ValueSchema, (r.body ?? null) as JsonValue),
    }),
  );
}

export function managedToPb(m: ManagedWorker): PbManagedWorker {
  return create(ManagedWorkerSchema, {
    url: m.url,
    pid: m.pid,
    backend: m.backend,
    model: m.model,
    port: m.port,
    gpus: m.gpus ?? "",
    state: m.state,
    startedAtUnixMs: BigInt(m.startedAtMs),
    exitCode: m.exitCode ?? undefined,
    exitSignal: m.exitSignal ?? undefined,
    restarts: m.restarts,
    slurmJobId: m.slurm?.jobId ?? "",
    slurmNode: m.slurm?.node ?? "",
    slurmState: m.slurm?.state ?? "",
    group: m.group,
    error: m.error ?? "",
  });
}

/**
 * An RPC launcher config as the YAML `launcher:` section: only the fields the
 * caller set, so the launcher's own defaults and checks apply unchanged.
 */
export function launcherSectionFromPb(c: PbLauncherConfig): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  if (c.backend) s.backend = c.backend;
  if (c.model) s.model = c.model;
  if (c.numWorkers !== undefined) s.num_workers = c.numWorkers;
  if (c.numGpusPerWorker !== undefined) s.num_gpus_per_worker = c.numGpusPerWorker;
  if (c.workerHost) s.worker_host = c.workerHost;
  if (c.workerBasePort !== undefined) s.worker_base_port = c.workerBasePort;
  if (c.workerGpuIds.length) s.worker_gpu_ids = c.workerGpuIds;
  if (c.workerExtraArgs) s.worker_extra_args = c.workerExtraArgs;
  if (c.waitTimeout !== undefined) s.wait_timeout = c.waitTimeout;
  if (c.masterPortBase !== undefined) s.master_port_base = c.masterPortBase;
  if (c.schedulerPortBase !== undefined) s.scheduler_port_base = c.schedulerPortBase;
  if (c.internalPortStride !== undefined) s.internal_port_stride = c.internalPortStride;
  if (c.restart) s.restart = c.restart;
  if (c.maxRestarts !== undefined) s.max_restarts = c.maxRestarts;
  if (c.restartBackoff !== undefined) s.restart_backoff = c.restartBackoff;
  if (c.slurm !== undefined) s.slurm = slurmSectionFromPb(c.slurm);
  if (c.name) s.name = c.name;
  if (c.workerBindHost) s.worker_bind_host = c.workerBindHost;
  return s;
}

/** The `slurm:` mapping, only the fields set (see launcherSectionFromPb). */
function slurmSectionFromPb(o: PbSlurmOptions): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  if (o.program) s.program = o.program;
  if (o.partition) s.partition = o.partition;
  if (o.account) s.account = o.account;
  if (o.qos) s.qos = o.qos;
  if (o.time) s.time = o.time;
  if (o.constraint) s.constraint = o.constraint;
  if (o.sbatchArgs) s.sbatch_args = o.sbatchArgs;
  if (Object.keys(o.env).length > 0) s.env = { ...o.env };
  if (o.setup.length > 0) s.setup = [...o.setup];
  if (o.workDir) s.work_dir = o.workDir;
  if (o.pollInterval !== undefined) s.poll_interval = o.pollInterval;
  // Set but empty: any free port (the YAML's null).
  if (o.portRange !== undefined) s.port_range = o.portRange === "" ? null : o.portRange;
  return s;
}
