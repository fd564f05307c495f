import type { Control, WorkerPatch } from "../admin/control.js";
import { workerJson } from "../admin/worker-json.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import { readBody, readJsonObject, type Req } from "./body.js";
import { sendJson, type Res } from "./respond.js";

export interface AdminRoutesOptions {
  control: Control;
  registry: Registry;
  maxBodyBytes: number;
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
  const { control, registry, maxBodyBytes } = options;

  /** `?url=` / `?worker_url=`, else JSON `url` / `worker_url`, as the original. */
  async function workerUrlFrom(req: Req, query: URLSearchParams): Promise<unknown> {
    const fromQuery = query.get("url") ?? query.get("worker_url");
    if (fromQuery) return fromQuery;
    const { json } = await readJsonObject(req, maxBodyBytes);
    const url = json.url ?? json.worker_url;
    if (url === undefined || url === null || url === "") {
      throw new RouterError("invalid_request", "worker url is required (use query ?url=... or JSON body {\"url\": ...})", { details: { param: "url" } });
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
      });
    },

    async createWorker(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const { worker } = await control.addWorker(await workerUrlFrom(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker) });
    },

    listWorkers(res: Res): void {
      sendJson(res, 200, { workers: control.listWorkers().map(workerJson) });
    },

    getWorker(res: Res, id: string): void {
      sendJson(res, 200, { worker: workerJson(control.getWorker(decodeWorkerId(id))) });
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
      if (typeof url !== "string") throw new RouterError("invalid_worker_url", "worker url must be a string", { details: { param: "url" } });
      const removed = control.removeWorker(url);
      sendJson(res, 200, { status: "success", removed: removed.url, worker_urls: control.listWorkers().map((w) => w.url) });
    },

    listWorkersAlias(res: Res): void {
      sendJson(res, 200, { urls: control.listWorkers().map((w) => w.url) });
    },

    async updateWeightsFromDisk(req: Req, res: Res): Promise<void> {
      const { raw, json } = await readJsonObject(req, maxBodyBytes);
      if (typeof json.model_path !== "string" || json.model_path === "") {
        throw new RouterError("invalid_request", "model_path is required and must be a non-empty string", { details: { param: "model_path" } });
      }
      const { status, results } = await control.updateWeightsFromDisk(raw);
      sendJson(res, status, { results });
    },

    async releaseMemory(req: Req, res: Res): Promise<void> {
      const raw = await readBody(req, maxBodyBytes);
      const { status, results } = await control.releaseMemoryOccupation(raw);
      sendJson(res, status, { results });
    },

    async resumeMemory(req: Req, res: Res): Promise<void> {
      const raw = await readBody(req, maxBodyBytes);
      const { status, results } = await control.resumeMemoryOccupation(raw);
      sendJson(res, status, { results });
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
