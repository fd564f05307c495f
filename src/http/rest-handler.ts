import { performance } from "node:perf_hooks";
import type { Auth } from "../auth/api-keys.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AdminRoutes } from "./admin-routes.js";
import type { Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import type { RolloutRoutes } from "./rollout-routes.js";
import { routeLabel, type Metrics } from "../metrics/metrics.js";
import { displayIdOf } from "../registry/worker-url.js";
import { notes } from "./notes.js";
import { randomUUID } from "node:crypto";
import { hasOwnErrorShape, isAdminPath, openPaths } from "./paths.js";
import { sendError, type Res } from "./respond.js";
import { callContext, remoteOf } from "../audit/call-context.js";

export interface RestHandlerOptions {
  admin: AdminRoutes;
  data: DataPlane;
  rollouts: RolloutRoutes;
  logger: Logger;
  accessLogExcludePrefixes: readonly string[];
  auth: Auth;
  metrics: Metrics;
  /** A client that stops sending its request body for this long is disconnected; 0 = never. */
  clientBodyTimeoutMs: number;
}


/**
 * Paths that belong to the router. A request under one of them that no route
 * matches is a 404 from the router, never forwarded to a worker (the original
 * sent unknown admin paths to a random worker through its catch-all).
 */
const reservedPrefixes = ["/audit", "/workers", "/refit", "/router", "/admin", "/metrics", "/v1/rollouts", "/sgl.diffusion.router.", "/grpc.reflection."];

function methodNotAllowed(method: string | undefined, path: string, allowed: string): RouterError {
  return new RouterError("method_not_allowed", `${method} is not allowed on ${path} (allowed: ${allowed})`, { details: { allow: allowed } });
}

/**
 * The REST front door: the route table, the access log, and the one place
 * where a thrown error becomes an answer.
 */
export function createRestHandler(options: RestHandlerOptions) {
  const { admin, data, rollouts, logger, auth, metrics } = options;
  const bodyTimeoutMs = options.clientBodyTimeoutMs;
  let open = 0;
  let shuttingDown = false;
  let onIdle: (() => void) | null = null;
  const excluded = options.accessLogExcludePrefixes;

  // Request ids the router makes: a random per-process prefix and a counter
  // (unique, cheap; a UUID per request showed in profiles).
  const idPrefix = randomUUID().slice(0, 13);
  let idCounter = 0;
  function requestIdOf(req: Req): string {
    const given = req.headers["x-request-id"];
    return typeof given === "string" && given !== "" && given.length <= 200 ? given : `${idPrefix}-${(idCounter++).toString(36)}`;
  }

  async function route(req: Req, res: Res, method: string, path: string, rawUrl: string, queryString: string): Promise<void> {
    const query = () => new URLSearchParams(queryString);
    switch (path) {
      case "/health":
        if (method === "GET" || method === "HEAD") return admin.health(res);
        throw methodNotAllowed(method, path, "GET");
      case "/workers":
        if (method === "GET") return admin.listWorkers(res);
        if (method === "POST") return admin.createWorker(req, res, query());
        throw methodNotAllowed(method, path, "GET, POST");
      case "/add_worker":
        if (method === "POST") return admin.addWorkerAlias(req, res, query());
        throw methodNotAllowed(method, path, "POST");
      case "/remove_worker":
        if (method === "POST" || method === "DELETE") return admin.removeWorkerAlias(req, res, query());
        throw methodNotAllowed(method, path, "POST");
      case "/list_workers":
        if (method === "GET") return admin.listWorkersAlias(res);
        throw methodNotAllowed(method, path, "GET");
      case "/update_weights_from_disk":
        if (method === "POST") return admin.updateWeightsFromDisk(req, res, query());
        throw methodNotAllowed(method, path, "POST");
      case "/release_memory_occupation":
        if (method === "POST") return admin.releaseMemory(req, res, query());
        throw methodNotAllowed(method, path, "POST");
      case "/resume_memory_occupation":
        if (method === "POST") return admin.resumeMemory(req, res);
        throw methodNotAllowed(method, path, "POST");
      case "/get_weights_checksum":
        if (method === "POST") return admin.weightsChecksum(req, res);
        throw methodNotAllowed(method, path, "POST");
      case "/update_weights_from_tensor":
        // Each worker gets its own CUDA-IPC payload: sending it to a random worker would be wrong.
        throw new RouterError("invalid_request", "update_weights_from_tensor carries a per-worker payload: POST it to /workers/{worker_id}/update_weights_from_tensor");
      case "/v1/images/generations":
      case "/v1/images/edits":
        if (method === "POST") return data.imageGeneration(req, res, rawUrl);
        return data.passthrough(req, res, rawUrl);
      case "/rollout/generate":
      case "/v1/diffusion/generate":
        if (method === "POST") return data.generation(req, res, rawUrl);
        return data.passthrough(req, res, rawUrl);
      case "/v1/videos":
        if (method === "POST") return data.createVideo(req, res, rawUrl);
        if (method === "GET") return data.listVideos(req, res, query());
        throw methodNotAllowed(method, path, "GET, POST");
      case "/v1/models":
        if (method === "GET") return data.listModels(res);
        throw methodNotAllowed(method, path, "GET");
      case "/v1/rollouts":
        if (method === "POST") return rollouts.submit(req, res);
        throw methodNotAllowed(method, path, "POST");
      case "/audit":
        if (method === "GET") return admin.auditTrail(res, query());
        throw methodNotAllowed(method, path, "GET");
      case "/refit":
        if (method === "GET") return admin.refitStatus(res);
        throw methodNotAllowed(method, path, "GET");
      case "/refit/begin":
        if (method === "POST") return admin.refitBegin(req, res);
        throw methodNotAllowed(method, path, "POST");
      case "/refit/commit":
        if (method === "POST") return admin.refitCommit(req, res);
        throw methodNotAllowed(method, path, "POST");
      case "/refit/abort":
        if (method === "POST") return admin.refitAbort(req, res);
        throw methodNotAllowed(method, path, "POST");
    }

    if (path.startsWith("/workers/")) {
      let id = path.slice("/workers/".length);
      if (id.endsWith("/update_weights_from_tensor")) {
        id = id.slice(0, -"/update_weights_from_tensor".length);
        if (method === "POST") return admin.tensorUpdate(req, res, id, "/update_weights_from_tensor");
        throw methodNotAllowed(method, path, "POST");
      }
      if (method === "GET") return admin.getWorker(res, id);
      if (method === "PUT") return admin.updateWorker(req, res, id);
      if (method === "DELETE") return admin.deleteWorker(res, id);
      throw methodNotAllowed(method, path, "GET, PUT, DELETE");
    }
    if (path.startsWith("/v1/videos/")) {
      const rest = path.slice("/v1/videos/".length);
      const slash = rest.indexOf("/");
      const id = decodeSegment(slash < 0 ? rest : rest.slice(0, slash));
      const sub = slash < 0 ? "" : rest.slice(slash);
      if (sub === "" && (method === "GET" || method === "DELETE")) return data.videoById(req, res, rawUrl, id);
      if (sub === "/content" && method === "GET") return data.videoById(req, res, rawUrl, id);
      throw new RouterError("not_found", `no route ${method} ${path}`);
    }
    if (path.startsWith("/v1/rollouts/")) {
      const rest = path.slice("/v1/rollouts/".length);
      if (rest.endsWith("/cancel")) {
        if (method === "POST") return rollouts.cancel(res, decodeSegment(rest.slice(0, -"/cancel".length)));
        throw methodNotAllowed(method, path, "POST");
      }
      if (!rest.includes("/")) {
        if (method === "GET") return rollouts.get(res, decodeSegment(rest));
        throw methodNotAllowed(method, path, "GET");
      }
      throw new RouterError("not_found", `no route ${method} ${path}`);
    }
    if (path.startsWith("/v1/images/") && path.endsWith("/content") && method === "GET") {
      const id = decodeSegment(path.slice("/v1/images/".length, -"/content".length));
      return data.imageContent(req, res, rawUrl, id);
    }
    if (path.startsWith("/v1/models/") && method === "GET") {
      return data.getModel(req, res, rawUrl, decodeSegment(path.slice("/v1/models/".length)));
    }
    for (const prefix of reservedPrefixes) {
      if (path.startsWith(prefix)) throw new RouterError("not_found", `no route ${method} ${path}`);
    }
    // Every other path (LoRA routes, meshes, newer worker routes) goes to a worker unchanged.
    return data.passthrough(req, res, rawUrl);
  }

  /**
   * The response's 'close' listener (`this` is the response): one function
   * shared by every request instead of a closure plus a `once` wrapper each.
   */
  function onResponseClose(this: Res): void {
    const n = notes(this);
    const req = n.restReq;
    if (!req) return; // accounted already ('close' is expected once; this keeps `once` semantics)
    n.restReq = null;
    finished(req, this, n.restPath!, n.restStartedMs!);
  }

  function finished(req: Req, res: Res, path: string, startedMs: number): void {
    open--;
    if (open === 0 && onIdle) onIdle();
    const n = notes(res);
    const seconds = (performance.now() - startedMs) / 1000;
    const status = res.headersSent ? res.statusCode : 499;
    metrics.observe(routeLabel(path), req.method ?? "GET", status, n.workerUrl ? displayIdOf(n.workerUrl) : "", seconds, n.answerBytes ?? 0, n.retries ?? 0);
    if (!logger.isLevelEnabled("info")) return;
    for (const p of excluded) if (path.startsWith(p)) return;
    logger.info({ requestId: n.requestId, method: req.method, path, status, code: n.errorCode, ms: Math.round(seconds * 1000), queueMs: n.queueMs, worker: n.workerUrl, retries: n.retries }, "request");
  }

  function handle(req: Req, res: Res): void {
    const startedMs = performance.now();
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method ?? "GET";
    open++;
    const n = notes(res);
    n.restReq = req;
    n.restPath = path;
    n.restStartedMs = startedMs;
    n.requestId = requestIdOf(req);
    n.errorShape = hasOwnErrorShape(path) ? "openai" : "original";
    res.on("close", onResponseClose);
    if (shuttingDown) {
      req.resume();
      sendError(res, new RouterError("shutting_down", "the router is shutting down", { details: { retryAfterS: 1 } }));
      return;
    }
    if (path.charCodeAt(0) !== 47 /* '/' */) {
      sendError(res, new RouterError("invalid_request", `request target must be a path, got ${JSON.stringify(rawUrl.slice(0, 100))}`));
      return;
    }
    if (path === "/metrics" && method === "GET") {
      metrics.text().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
          res.end(text);
        },
        (err: unknown) => sendError(res, err),
      );
      return;
    }
    let adminCall = false;
    if (!openPaths.has(path)) {
      const admin = isAdminPath(path);
      adminCall = admin;
      if (admin ? !auth.admin(req.headers.authorization) : !auth.data(req.headers.authorization)) {
        req.resume();
        sendError(res, new RouterError("unauthenticated", admin ? "admin API key required: send Authorization: Bearer <admin key>" : "API key required: send Authorization: Bearer <key>"), { "www-authenticate": "Bearer" });
        return;
      }
    }
    if (bodyTimeoutMs > 0 && "socket" in req && req.socket && !req.complete && (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined)) {
      // A client that stalls mid-body would hold a worker slot (its request is
      // already dispatched) forever. The socket timeout covers only the body:
      // once it is in, waiting minutes for a video is normal.
      const socket = req.socket;
      socket.setTimeout(bodyTimeoutMs);
      req.once("end", () => socket.setTimeout(0));
    }
    const query = q < 0 ? "" : rawUrl.slice(q + 1);
    // Admin calls run in their caller's context, which the audit trail reads;
    // the data plane does not pay for it.
    const routed = adminCall
      ? callContext.run({ requestId: n.requestId, caller: { remote: remoteOf(req.socket), key: auth.keyOf(req.headers.authorization), transport: "rest" } }, () => route(req, res, method, path, rawUrl, query))
      : route(req, res, method, path, rawUrl, query);
    routed.catch((err: unknown) => {
      const e = RouterError.from(err);
      if (e.status >= 500 && e.code === "internal") logger.error({ err, path }, "request failed");
      if (e.code === "method_not_allowed" && !res.headersSent) res.setHeader("allow", String(e.details.allow));
      sendError(res, e);
      // A body the router did not read (an error before reading it) must not
      // stay in the socket: drain it so keep-alive stays usable.
      if (!req.readableEnded) req.resume();
    });
  }

  return {
    handle,
    /** Requests whose answer has not ended. */
    get open() {
      return open;
    },
    /** From now on, new requests get 503 shutting_down. */
    startShutdown() {
      shuttingDown = true;
    },
    /** Resolves true when every open request ended, false after `timeoutMs`. */
    whenIdle(timeoutMs: number): Promise<boolean> {
      if (open === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          onIdle = null;
          resolve(false);
        }, timeoutMs);
        onIdle = () => {
          clearTimeout(t);
          onIdle = null;
          resolve(true);
        };
      });
    },
  };
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RouterError("invalid_request", `path segment is not valid percent-encoding: ${JSON.stringify(s)}`);
  }
}
