import type { WorkerScheduling } from "../admission/admission.js";
import type { Control } from "../admin/control.js";
import type { ManagedView } from "../launcher/managed-view.js";
import type { Audit } from "../audit/audit.js";
import { RouterError } from "../errors.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { DataPlane } from "./data-plane.js";
import { modelVersionsJson } from "./refit-json.js";
import { createRefitRoutes } from "./refit-routes.js";
import { sendJson, type Res } from "./respond.js";
import { createWorkerRoutes } from "./worker-routes.js";
import type { StateKind } from "../state/router-state.js";

export interface AdminRoutesOptions {
  control: Control;
  registry: Registry;
  refit: RefitCoordinator;
  audit: Audit;
  data: DataPlane;
  maxBodyBytes: number;
  /** The scheduler's view of every worker, shown in worker payloads. */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** The launcher's workers: failed ones stay visible in /workers and /health. */
  managed: ManagedView;
  /** The LoRA each worker holds (src/lora), shown in worker payloads. */
  lora?: (w: Worker) => unknown;
  /** Where this router keeps its state (routers sharing a pool should all say etcd). */
  stateStore: StateKind;
  /** True while this router holds the refit lock shared through etcd. */
  holdsRefitLock: () => boolean;
}

/**
 * The original router's REST admin API (and the aliases RL frameworks call),
 * as thin adapters over Control and the refit coordinator: workers in
 * worker-routes.ts, refit and sleep/wake in refit-routes.ts. Shapes follow
 * the original exactly; fields this router adds come after.
 */
export function createAdminRoutes(options: AdminRoutesOptions) {
  const { audit } = options;
  return {
    ...createWorkerRoutes(options),
    ...createRefitRoutes(options),

    health: healthRoute(options),

    /** `GET /audit?limit=N`: the latest control actions, newest first (default 100, at most 500). */
    auditTrail(res: Res, query: URLSearchParams): void {
      const raw = query.get("limit");
      const limit = raw === null ? 100 : Number(raw);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new RouterError("invalid_request", `limit must be an integer 1-500, got ${JSON.stringify(raw)}`, { details: { param: "limit" } });
      sendJson(res, 200, { events: audit.recent(limit) });
    },
  };
}

export type AdminRoutes = ReturnType<typeof createAdminRoutes>;

/**
 * `GET /health`: 200 while a worker can serve (`degraded` when a
 * launcher-managed worker gave up: it serves, but someone should look), and
 * while the pool sleeps on purpose (`sleeping`: a probe must not restart the
 * router at every training phase); 503 when no worker is up and none was put
 * to sleep. Failed managed workers count in `total_workers` and `failed_workers`.
 */
function healthRoute(options: AdminRoutesOptions): (res: Res) => void {
  const { control, refit, managed } = options;
  return (res) => {
    const s = control.status();
    const failed = managed.failed().length;
    const status = s.healthy > 0 ? (failed > 0 ? "degraded" : "healthy") : s.sleeping > 0 ? "sleeping" : "unhealthy";
    const refitStatus = refit.status();
    sendJson(res, status === "unhealthy" ? 503 : 200, {
      status,
      healthy_workers: s.healthy,
      total_workers: s.total + failed,
      dead_workers: s.dead,
      failed_workers: failed,
      sleeping_workers: s.sleeping,
      routable_workers: s.routable,
      weight_version: refit.version,
      refit_phase: refitStatus.phase,
      state_store: options.stateStore,
      holds_refit_lock: options.holdsRefitLock(),
      ...modelVersionsJson(refitStatus),
    });
  };
}
