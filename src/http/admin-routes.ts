import type { Worker } from "../registry/worker.js";
import type { WorkerScheduling } from "../admission/admission.js";
import type { Control, WorkerPatch } from "../admin/control.js";
import { workerJson } from "../admin/worker-json.js";
import { secondsToMs } from "../config/durations.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import type { DiskRefitResult, RefitCoordinator } from "../refit/coordinator.js";
import type { Audit } from "../audit/audit.js";
import { readBody, readJsonObject, type Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import type { RestCall } from "./rest-call.js";
import { hookedSpec } from "../dispatch/route-specs.js";
import { sendJson, type Res } from "./respond.js";

/**
 * A disk refit's REST answer, the original's shape: 200 with the results,
 * or 502 `upstream_failed` with the same results when some worker failed
 * (error code in the body and the header).
 */
function sendDiskRefit(res: Res, r: DiskRefitResult): void {
  const body = { results: r.results, weight_version: r.weight_version, previous_weight_version: r.previous_weight_version, summary: r.summary };
  if (r.failure === null) sendJson(res, 200, body);
  else sendJson(res, 502, { ...body, error: r.failure, code: "upstream_failed" }, { "x-router-error-code": "upstream_failed" });
}

export interface AdminRoutesOptions {
  control: Control;
  registry: Registry;
  refit: RefitCoordinator;
  audit: Audit;
  data: DataPlane;
  maxBodyBytes: number;
  /** The scheduler's view of every worker, shown in worker payloads. */
  scheduling: () => Map<Worker, WorkerScheduling>;
}


const patchFields: Record<string, keyof WorkerPatch> = {
  is_dead: "isDead",
  refresh_video_support: "refreshVideoSupport",
  draining: "draining",
};

/**
 * The original router's REST admin API (and the aliases RL frameworks call),
 * as thin adapters over {@link Control}. Shapes follow the original exactly;
 * fields this router adds come after.
 */
export function createAdminRoutes(options: AdminRoutesOptions) {
  const { control, registry, refit, audit, data, maxBodyBytes, scheduling } = options;

  /** `?url=` / `?worker_url=`, else JSON `url` / `worker_url`, as the original. */
  async function workerUrlFrom(req: Req, query: URLSearchParams): Promise<unknown> {
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
      const { worker } = await control.addWorker(await workerUrlFrom(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker) });
    },

    listWorkers(res: Res): void {
      const view = scheduling();
      sendJson(res, 200, { workers: control.listWorkers().map((w) => workerJson(w, view.get(w))) });
    },

    getWorker(res: Res, id: string): void {
      const worker = control.getWorker(decodeWorkerId(id));
      sendJson(res, 200, { worker: workerJson(worker, scheduling().get(worker)) });
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
      const { worker } = await control.addWorker(await workerUrlFrom(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker), worker_urls: control.listWorkers().map((w) => w.url) });
    },

    async removeWorkerAlias(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const url = await workerUrlFrom(req, query);
      if (typeof url !== "string") throw new RouterError("invalid_worker_url", "worker_url must be a string", { details: { param: "url" } });
      const removed = control.removeWorker(url);
      sendJson(res, 200, { status: "success", removed: removed.url, worker_urls: control.listWorkers().map((w) => w.url) });
    },

    listWorkersAlias(res: Res): void {
      sendJson(res, 200, { urls: control.listWorkers().map((w) => w.url) });
    },

    /** `POST /update_weights_from_disk`: the coordinated refit (hold, drain, broadcast, version). */
    async updateWeightsFromDisk(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const drainMs = secondsToMs(query.get("drain_timeout_s"), "drain_timeout_s");
      const { raw, json } = await readJsonObject(req, maxBodyBytes);
      if (typeof json.model_path !== "string" || json.model_path === "") {
        throw new RouterError("invalid_request", "model_path is required and must be a non-empty string", { details: { param: "model_path" } });
      }
      sendDiskRefit(res, await refit.updateWeightsFromDisk(raw, json, drainMs));
    },

    async releaseMemory(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const drainMs = secondsToMs(query.get("drain_timeout_s"), "drain_timeout_s");
      const raw = await readBody(req, maxBodyBytes);
      sendJson(res, 200, await refit.releaseMemory(raw, drainMs));
    },

    async resumeMemory(req: Req, res: Res): Promise<void> {
      const raw = await readBody(req, maxBodyBytes);
      sendJson(res, 200, await refit.resumeMemory(raw));
    },

    /** `POST /refit/begin {drain_timeout_s?, timeout_s?}`: hold and drain; returns once nothing is in flight. */
    async refitBegin(req: Req, res: Res): Promise<void> {
      const { json } = await readJsonObject(req, maxBodyBytes);
      const unknown = Object.keys(json).filter((k) => k !== "drain_timeout_s" && k !== "timeout_s");
      if (unknown.length) throw new RouterError("unknown_field", `Unsupported fields: ${unknown.join(", ")} (supported: drain_timeout_s, timeout_s)`, { details: { param: unknown[0] } });
      sendJson(res, 200, await refit.begin(secondsToMs(json.drain_timeout_s, "drain_timeout_s"), secondsToMs(json.timeout_s, "timeout_s")));
    },

    /** `POST /refit/commit {weight_version}`. */
    async refitCommit(req: Req, res: Res): Promise<void> {
      const { json } = await readJsonObject(req, maxBodyBytes);
      const v = json.weight_version;
      if (v !== undefined && v !== null && typeof v !== "string" && typeof v !== "number") {
        throw new RouterError("invalid_request", "weight_version must be a string or a number", { details: { param: "weight_version" } });
      }
      sendJson(res, 200, refit.commit(v));
    },

    async refitAbort(req: Req, res: Res): Promise<void> {
      await readBody(req, maxBodyBytes);
      sendJson(res, 200, refit.abort());
    },

    /** `GET /audit?limit=N`: the latest control actions, newest first (default 100, at most 500). */
    auditTrail(res: Res, query: URLSearchParams): void {
      const raw = query.get("limit");
      const limit = raw === null ? 100 : Number(raw);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new RouterError("invalid_request", `limit must be an integer 1-500, got ${JSON.stringify(raw)}`, { details: { param: "limit" } });
      sendJson(res, 200, { events: audit.recent(limit) });
    },

    refitStatus(res: Res): void {
      sendJson(res, 200, refit.status());
    },

    /** `POST /workers/{id}/update_weights_from_tensor`: this worker's own payload, inside an open refit. */
    async tensorUpdate(call: RestCall, id: string, path: string): Promise<void> {
      const worker = control.getWorker(decodeWorkerId(id));
      // The client's body streams through to the worker; its answer streams back.
      await refit.updateTensors(worker.url, (answered) => data.toWorker(call, worker, path, hookedSpec((_origin, status, captured) => answered(status, captured))));
    },

    /** `POST /get_weights_checksum`: every worker's checksums, to check they hold the same weights. */
    async weightsChecksum(req: Req, res: Res): Promise<void> {
      const { raw } = await readJsonObject(req, maxBodyBytes);
      const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
      const results = await control.broadcast("/get_weights_checksum", raw.length ? raw : "{}", targets);
      sendJson(res, 200, { results });
    },
  };
}

export type AdminRoutes = ReturnType<typeof createAdminRoutes>;
