import type { Worker } from "../registry/worker.js";
import type { WorkerScheduling } from "../admission/admission.js";
import type { Control, WorkerPatch } from "../admin/control.js";
import { workerJson } from "../admin/worker-json.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import type { Audit } from "../audit/audit.js";
import { readJsonObject, type Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import { createRefitRoutes } from "./refit-routes.js";
import { sendJson, type Res } from "./respond.js";

export interface AdminRoutesOptions {
  control: Control;
  registry: Registry;
  refit: RefitCoordinator;
  audit: Audit;
  data: DataPlane;
  maxBodyBytes: number;
  /** The scheduler's view of every worker, shown in worker payloads. */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** The LoRA each worker holds (src/lora), shown in worker payloads. */
  lora?: (w: Worker) => unknown;
}


const patchFields: Record<string, keyof WorkerPatch> = {
  is_dead: "isDead",
  refresh_video_support: "refreshVideoSupport",
  draining: "draining",
};

/** `?url=` / `?worker_url=`, else JSON `url` / `worker_url`, as the original. */
async function workerUrlFrom(req: Req, query: URLSearchParams, maxBodyBytes: number): Promise<unknown> {
  const fromQuery = query.get("url") ?? query.get("worker_url");
  if (fromQuery) return fromQuery;
  const { json } = await readJsonObject(req, maxBodyBytes);
  const url = json.url ?? json.worker_url;
  if (url === undefined || url === null || url === "") {
    throw new RouterError("invalid_request", "worker_url is required (use query ?url=... or JSON body {\"url\": ...})", { details: { param: "url" } });
  }
  return url;
}

function parsePatch(json: Record<string, unknown>): WorkerPatch {
  const unknown = Object.keys(json).filter((k) => !(k in patchFields)).sort();
  if (unknown.length) {
    throw new RouterError("unknown_field", `Unsupported fields: ${unknown.join(", ")} (supported: ${Object.keys(patchFields).join(", ")})`, { details: { param: unknown[0] } });
  }
  if (Object.keys(json).length === 0) {
    throw new RouterError("invalid_request", `At least one field is required: ${Object.keys(patchFields).join(", ")}`);
  }
  const patch: WorkerPatch = {};
  for (const [field, key] of Object.entries(patchFields)) {
    if (!(field in json)) continue;
    const v = json[field];
    if (typeof v !== "boolean") throw new RouterError("invalid_request", `${field} must be a boolean, got ${JSON.stringify(v)}`, { details: { param: field } });
    patch[key] = v;
  }
  return patch;
}

/**
 * The original router's REST admin API (and the aliases RL frameworks call),
 * as thin adapters over {@link Control}; the refit and weight routes are
 * in refit-routes.ts. Shapes follow the original exactly; fields this router
 * adds come after.
 */
export function createAdminRoutes(options: AdminRoutesOptions) {
  return { ...createWorkerRoutes(options), ...createRefitRoutes(options) };
}

/** Health, the worker list and its aliases, the audit trail. */
function createWorkerRoutes(options: AdminRoutesOptions) {
  const { control, refit, audit, maxBodyBytes, scheduling } = options;
  const workerUrlOf = (req: Req, query: URLSearchParams) => workerUrlFrom(req, query, maxBodyBytes);

  return {
    health(res: Res): void {
      const s = control.status();
      sendJson(res, s.healthy > 0 ? 200 : 503, {
        status: s.healthy > 0 ? "healthy" : "unhealthy",
        healthy_workers: s.healthy,
        total_workers: s.total,
        dead_workers: s.dead,
        sleeping_workers: s.sleeping,
        routable_workers: s.routable,
        weight_version: refit.version,
        refit_phase: refit.status().phase,
      });
    },

    async createWorker(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const { worker } = await control.addWorker(await workerUrlOf(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker) });
    },

    listWorkers(res: Res): void {
      const view = scheduling();
      sendJson(res, 200, { workers: control.listWorkers().map((w) => workerJson(w, view.get(w), options.lora)) });
    },

    getWorker(res: Res, id: string): void {
      const worker = control.getWorker(decodeWorkerId(id));
      sendJson(res, 200, { worker: workerJson(worker, scheduling().get(worker), options.lora) });
    },

    async updateWorker(req: Req, res: Res, id: string): Promise<void> {
      const url = decodeWorkerId(id);
      control.getWorker(url); // 404 before reading the body
      const { json } = await readJsonObject(req, maxBodyBytes);
      const worker = await control.updateWorker(url, parsePatch(json));
      sendJson(res, 200, { status: "success", worker: workerJson(worker) });
    },

    deleteWorker(res: Res, id: string): void {
      control.removeWorker(decodeWorkerId(id));
      sendJson(res, 200, { status: "success", worker_id: id });
    },

    /** `POST /add_worker?url=`: the older alias RL frameworks call. */
    async addWorkerAlias(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const { worker } = await control.addWorker(await workerUrlOf(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker), worker_urls: control.listWorkers().map((w) => w.url) });
    },

    async removeWorkerAlias(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const url = await workerUrlOf(req, query);
      if (typeof url !== "string") throw new RouterError("invalid_worker_url", "worker_url must be a string", { details: { param: "url" } });
      const removed = control.removeWorker(url);
      sendJson(res, 200, { status: "success", removed: removed.url, worker_urls: control.listWorkers().map((w) => w.url) });
    },

    listWorkersAlias(res: Res): void {
      sendJson(res, 200, { urls: control.listWorkers().map((w) => w.url) });
    },

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
