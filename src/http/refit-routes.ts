import type { Control } from "../admin/control.js";
import { secondsToMs } from "../config/durations.js";
import { hookedSpec } from "../dispatch/route-specs.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import { diskRefitCommand } from "../refit/disk-command.js";
import { modelFieldOf } from "../refit/targets.js";
import { replayOf, weightVersionOf } from "../refit/version-label.js";
import { readBody, readJsonObject, type Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import { abortJson, answersJson, beginJson, commitJson, diskRefitJson, memoryJson, refitStatusJson } from "./refit-json.js";
import { sendJson, type Res } from "./respond.js";
import type { RestCall } from "./rest-call.js";

export interface RefitRoutesOptions {
  control: Control;
  registry: Registry;
  refit: RefitCoordinator;
  data: DataPlane;
  maxBodyBytes: number;
}

/**
 * A sleep/wake body's `model`: the original sends these bodies on to the
 * workers unread, and so does the router, so one that is not a JSON object
 * names no model rather than being refused.
 */
function modelInBody(body: Buffer): string | null {
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    return null;
  }
  return json !== null && typeof json === "object" ? modelFieldOf((json as { model?: unknown }).model) : null;
}

/** Refit, sleep/wake and weight checks over REST: parse into the core's commands, answer with its results in the original's shapes. */
export function createRefitRoutes(options: RefitRoutesOptions) {
  const { control, registry, refit, data, maxBodyBytes } = options;

  /** One JSON body to every awake, live worker at once: `{"results": [...]}`, one per worker, failures included. */
  async function askEveryWorker(req: Req, res: Res, path: string): Promise<void> {
    const { raw } = await readJsonObject(req, maxBodyBytes);
    const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
    if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
    sendJson(res, 200, answersJson(await control.broadcast(path, raw.length ? raw : "{}", targets)));
  }

  return {
    /**
     * `POST /update_weights_from_disk`: the coordinated refit (hold, drain,
     * broadcast, version). 200 with the results, or 502 `upstream_failed`
     * with the same results when some worker failed (code in body and header).
     */
    async updateWeightsFromDisk(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const drainMs = secondsToMs(query.get("drain_timeout_s"), "drain_timeout_s");
      const { raw, json } = await readJsonObject(req, maxBodyBytes);
      const r = await refit.updateWeightsFromDisk(diskRefitCommand(raw, json, drainMs));
      if (r.failure === null) sendJson(res, 200, diskRefitJson(r));
      else sendJson(res, 502, { ...diskRefitJson(r), error: r.failure, code: "upstream_failed" }, { "x-router-error-code": "upstream_failed" });
    },

    async releaseMemory(req: Req, res: Res, query: URLSearchParams): Promise<void> {
      const drainMs = secondsToMs(query.get("drain_timeout_s"), "drain_timeout_s");
      const body = await readBody(req, maxBodyBytes);
      sendJson(res, 200, memoryJson(await refit.releaseMemory({ body, drainTimeoutMs: drainMs, model: modelInBody(body) })));
    },

    async resumeMemory(req: Req, res: Res): Promise<void> {
      const body = await readBody(req, maxBodyBytes);
      sendJson(res, 200, memoryJson(await refit.resumeMemory({ body, model: modelInBody(body) })));
    },

    /** `POST /refit/begin {drain_timeout_s?, timeout_s?}`: hold and drain; returns once nothing is in flight. */
    async refitBegin(req: Req, res: Res): Promise<void> {
      const { json } = await readJsonObject(req, maxBodyBytes);
      const unknown = Object.keys(json).filter((k) => k !== "drain_timeout_s" && k !== "timeout_s");
      if (unknown.length) throw new RouterError("unknown_field", `Unsupported fields: ${unknown.join(", ")} (supported: drain_timeout_s, timeout_s)`, { details: { param: unknown[0] } });
      const r = await refit.begin({ drainTimeoutMs: secondsToMs(json.drain_timeout_s, "drain_timeout_s"), timeoutMs: secondsToMs(json.timeout_s, "timeout_s") });
      sendJson(res, 200, beginJson(r));
    },

    /** `POST /refit/commit {weight_version, replay?}`. */
    async refitCommit(req: Req, res: Res): Promise<void> {
      const { json } = await readJsonObject(req, maxBodyBytes);
      sendJson(res, 200, commitJson(refit.commit({ weightVersion: weightVersionOf(json.weight_version), replay: replayOf(json.replay) })));
    },

    async refitAbort(req: Req, res: Res): Promise<void> {
      await readBody(req, maxBodyBytes);
      sendJson(res, 200, abortJson(refit.abort()));
    },

    refitStatus(res: Res): void {
      sendJson(res, 200, refitStatusJson(refit.status()));
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
