import { secondsToMs } from "../config/durations.js";
import { hookedSpec } from "../dispatch/route-specs.js";
import { RouterError } from "../errors.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import type { DiskRefitResult } from "../refit/coordinator.js";
import type { AdminRoutesOptions } from "./admin-routes.js";
import { readBody, readJsonObject, type Req } from "./body.js";
import { sendJson, type Res } from "./respond.js";
import type { RestCall } from "./rest-call.js";

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

/**
 * The weight and memory routes of the admin API: the original's disk refit
 * and sleep/wake, our two-phase refit and per-worker tensor updates, and
 * checksums, as thin adapters over the refit coordinator.
 */
export function createRefitRoutes(options: AdminRoutesOptions) {
  const { control, registry, refit, data, maxBodyBytes } = options;

  /** One JSON body to every awake, live worker at once: `{"results": [...]}`, one per worker, failures included. */
  async function askEveryWorker(req: Req, res: Res, path: string): Promise<void> {
    const { raw } = await readJsonObject(req, maxBodyBytes);
    const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
    if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
    const results = await control.broadcast(path, raw.length ? raw : "{}", targets);
    sendJson(res, 200, { results });
  }

  return {
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
    weightsChecksum: (req: Req, res: Res) => askEveryWorker(req, res, "/get_weights_checksum"),

    /**
     * `POST /update_weights_from_tensor_checker`: the trainer's expected
     * tensor hashes checked on every worker (one random worker would say
     * nothing of the rest of the pool); each worker's answer, 400s included.
     */
    tensorChecker: (req: Req, res: Res) => askEveryWorker(req, res, "/update_weights_from_tensor_checker"),
  };
}
