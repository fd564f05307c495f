import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { WorkerScheduling } from "../admission/admission.js";
import type { Control } from "../admin/control.js";
import { AdminService, GetRouterStatusResponseSchema } from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import type { Launcher, ManagedWorker } from "../launcher/index.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { VERSION } from "../version.js";
import { createLauncherRpcs } from "./launcher-rpcs.js";
import { mapErrors } from "./map-errors.js";
import { createRefitRpcs } from "./refit-rpcs.js";
import { watchWorkers } from "./watch.js";
import { createWorkerRpcs } from "./worker-rpcs.js";
import type { LoraPool } from "../lora/lora-action.js";
import { loraMethods } from "./lora-methods.js";
import type { StateKind } from "../state/router-state.js";

export interface AdminServiceOptions {
  control: Control;
  refit: RefitCoordinator;
  registry: Registry;
  launcher: Launcher;
  routingAlgorithm: string;
  startedAtMs: number;
  /** The scheduler's view of every worker (learned speed, estimated work). */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** Launcher-managed workers that failed (ListWorkers lists them, as GET /workers does). */
  failedManaged: () => ManagedWorker[];
  /** The pool's LoRA action (audited), for UpdateLora (rpc/lora-methods.ts). */
  lora: LoraPool;
  /** Where this router keeps its state (routers sharing a pool should all say etcd). */
  stateStore: StateKind;
  /** True while this router holds the refit lock shared through etcd. */
  holdsRefitLock: () => boolean;
}

/**
 * The AdminService: thin adapters over the same Control, refit coordinator
 * and Launcher as the REST admin API (workers in worker-rpcs.ts, refit and
 * sleep/wake in refit-rpcs.ts, managed workers in launcher-rpcs.ts).
 */
export function createAdminServiceImpl(options: AdminServiceOptions): ServiceImpl<typeof AdminService> {
  const { control, registry, launcher, refit } = options;
  const unary = mapErrors({
    ...createWorkerRpcs(options),
    ...createRefitRpcs(options),
    ...createLauncherRpcs(launcher),
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
        stateStore: options.stateStore,
        holdsRefitLock: options.holdsRefitLock(),
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
