import { performance } from "node:perf_hooks";
import type { Auth } from "../auth/api-keys.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AdminRoutes } from "./admin-routes.js";
import type { Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import type { RolloutRoutes } from "./rollout-routes.js";
import type { Metrics } from "../metrics/metrics.js";
import { displayIdOf } from "../registry/worker-url.js";
import { notes } from "./notes.js";
import { randomUUID } from "node:crypto";
import { handlerFor, restRoutes, RouteTable, type Match } from "./routes.js";
import { loadDashboardFiles } from "../dashboard/static-files.js";
import { firedWithin } from "../server/fired-within.js";
import { sendError, type Res } from "./respond.js";
import { callContext, remoteOf } from "../audit/call-context.js";
import type { Audit } from "../audit/audit.js";
import { accessLogLevel } from "../access-log.js";

export interface RestHandlerOptions {
  admin: AdminRoutes;
  data: DataPlane;
  rollouts: RolloutRoutes;
  logger: Logger;
  accessLogExcludePrefixes: readonly string[];
  auth: Auth;
  /** Refused admin calls (401) go on its trail. */
  audit: Audit;
  metrics: Metrics;
  /** A client that stops sending its request body for this long is disconnected; 0 = never. */
  clientBodyTimeoutMs: number;
}


/**
 * The REST front door: the route table, the access log, and the one place
 * where a thrown error becomes an answer.
 */
export function createRestHandler(options: RestHandlerOptions) {
  const { admin, data, rollouts, logger, auth, audit, metrics } = options;
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

  const table = new RouteTable(
    restRoutes({
      admin,
      data,
      rollouts,
      dashboard: loadDashboardFiles(),
      metrics: (res) => {
        metrics.text().then(
          (text) => {
            res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
            res.end(text);
          },
          (err: unknown) => sendError(res, err),
        );
      },
    }),
  );

  /** Runs the matched route's handler; a reserved path without a route is the router's 404, any other path goes to a worker. */
  async function route(req: Req, res: Res, method: string, path: string, rawUrl: string, queryString: string, match: Match): Promise<void> {
    if (match.kind === "worker") return data.passthrough(req, res, rawUrl);
    if (match.route === null) throw new RouterError("not_found", `no route ${method} ${path}`);
    const handler = handlerFor(match.route, method, path);
    return handler({ req, res, method, path, rawUrl, params: match.params, query: () => new URLSearchParams(queryString) });
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
    const label = notes(res).routeLabel ?? "other";
    open--;
    if (open === 0 && onIdle) onIdle();
    const n = notes(res);
    const seconds = (performance.now() - startedMs) / 1000;
    const status = res.headersSent ? res.statusCode : 499;
    metrics.observe(label, req.method ?? "GET", status, n.workerUrl ? displayIdOf(n.workerUrl) : "", seconds, n.answerBytes ?? 0, n.retries ?? 0);
    const level = accessLogLevel(n.errorCode, status);
    if (!logger.isLevelEnabled(level)) return;
    for (const p of excluded) if (path.startsWith(p)) return;
    logger[level]({ requestId: n.requestId, method: req.method, path, status, code: n.errorCode, remote: remoteOf(req.socket), ms: Math.round(seconds * 1000), queueMs: n.queueMs, worker: n.workerUrl, retries: n.retries }, "request");
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
    let match: Match;
    try {
      match = table.match(path);
    } catch (err) {
      // A path parameter that is not valid percent-encoding: 400, nothing routed.
      n.errorShape = "original";
      n.routeLabel = "other";
      res.on("close", onResponseClose);
      req.resume();
      sendError(res, err);
      return;
    }
    n.errorShape = match.shape;
    n.routeLabel = match.label;
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
    if (match.auth !== "open" && !(match.auth === "admin" ? auth.admin(req.headers.authorization) : auth.data(req.headers.authorization))) {
      req.resume();
      if (match.auth === "admin") audit.refused(`${method} ${path}`, { requestId: n.requestId!, caller: { remote: remoteOf(req.socket), key: auth.keyOf(req.headers.authorization), transport: "rest" } });
      sendError(res, new RouterError("unauthenticated", match.auth === "admin" ? "admin API key required: send Authorization: Bearer <admin key>" : "API key required: send Authorization: Bearer <key>"), { "www-authenticate": "Bearer" });
      return;
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
    const routed =
      match.auth === "admin"
        ? callContext.run({ requestId: n.requestId!, caller: { remote: remoteOf(req.socket), key: auth.keyOf(req.headers.authorization), transport: "rest" } }, () => route(req, res, method, path, rawUrl, query, match))
        : route(req, res, method, path, rawUrl, query, match);
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
      return firedWithin(timeoutMs, (fire) => (onIdle = fire));
    },
  };
}
