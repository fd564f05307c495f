import type { WorkerScheduling } from "../admission/admission.js";
import type { Control, WorkerPatch } from "../admin/control.js";
import { workerJson } from "../admin/worker-json.js";
import { failedWorkerJson, managedWorkerJson, type ManagedView } from "../launcher/managed-view.js";
import { RouterError } from "../errors.js";
import type { Worker } from "../registry/worker.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import { readJsonObject, type Req } from "./body.js";
import { sendJson, type Res } from "./respond.js";

export interface WorkerRoutesOptions {
  control: Control;
  maxBodyBytes: number;
  /** The scheduler's view of every worker, shown in worker payloads. */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** The launcher's workers: failed ones are listed after the registry's. */
  managed: ManagedView;
  /** The LoRA each worker holds (src/lora), shown in worker payloads. */
  lora?: (w: Worker) => unknown;
}

const patchFields: Record<string, keyof WorkerPatch> = {
  is_dead: "isDead",
  refresh_video_support: "refreshVideoSupport",
  draining: "draining",
};

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

/** The original router's worker registry routes (`/workers...` and the older aliases RL frameworks call). */
export function createWorkerRoutes(options: WorkerRoutesOptions) {
  const { control, maxBodyBytes, scheduling, managed } = options;

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

  return {
    async createWorker(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const { worker } = await control.addWorker(await workerUrlFrom(req, query));
      sendJson(res, 200, { status: "success", worker: workerJson(worker) });
    },

    listWorkers(res: Res): void {
      const view = scheduling();
      // Launcher-managed workers that gave up are not in the registry (nothing routes to them) but stay visible.
      const failed = managed.failed().map(failedWorkerJson);
      sendJson(res, 200, { workers: [...control.listWorkers().map((w) => workerJson(w, view.get(w), options.lora)), ...failed] });
    },

    /** `GET /managed_workers`: ListManagedWorkers over REST, the launcher's own view (failed and restarting ones with their reason). */
    listManagedWorkers(res: Res): void {
      sendJson(res, 200, { workers: managed.list().map(managedWorkerJson) });
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
  };
}
