import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { randomUUID } from "node:crypto";
import type { Auth } from "../auth/api-keys.js";
import type { Audit } from "../audit/audit.js";
import { callContext, remoteOf } from "../audit/call-context.js";
import { loadDashboardFiles } from "../dashboard/static-files.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { firedWithin } from "../server/fired-within.js";
import { createAccessLog } from "./access-log.js";
import type { AdminRoutes } from "./admin-routes.js";
import type { AffinityRoutes } from "./affinity-routes.js";
import type { Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import type { FanoutRoutes } from "./fanout-routes.js";
import { sendError, type Res } from "./respond.js";
import { RestCall } from "./rest-call.js";
import { REALTIME_PREFIX, refuse, type RealtimeProxy } from "./realtime-proxy.js";
import type { RolloutRoutes } from "./rollout-routes.js";
import { effectiveAuth, handlerFor, restRoutes, RouteTable, type Match } from "./routes.js";
import type { LoraRoutes } from "./lora-routes.js";

export interface RestHandlerOptions {
  admin: AdminRoutes;
  data: DataPlane;
  affinity: AffinityRoutes;
  fanout: FanoutRoutes;
  rollouts: RolloutRoutes;
  /** WebSocket sessions of the realtime video API. */
  realtime: RealtimeProxy;
  lora: LoraRoutes;
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
 * Request ids the router makes: a random per-process prefix and a counter
 * (unique, cheap; a UUID per request showed in profiles). A client's own
 * `x-request-id` is kept.
 */
function createRequestIds(): (req: Req) => string {
  const idPrefix = randomUUID().slice(0, 13);
  let idCounter = 0;
  return (req) => {
    const given = req.headers["x-request-id"];
    return typeof given === "string" && given !== "" && given.length <= 200 ? given : `${idPrefix}-${(idCounter++).toString(36)}`;
  };
}

/**
 * A client that stalls mid-body would hold a worker slot (its request is
 * already dispatched) forever. The socket timeout covers only the body:
 * once it is in, waiting minutes for a video is normal.
 */
function limitBodyStall(req: Req, timeoutMs: number): void {
  if (timeoutMs > 0 && "socket" in req && req.socket && !req.complete && (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined)) {
    const socket = req.socket;
    socket.setTimeout(timeoutMs);
    req.once("end", () => socket.setTimeout(0));
  }
}

/**
 * The REST front door: the route table, the access log, and the one place
 * where a thrown error becomes an answer. Every request gets a
 * {@link RestCall}, which the dispatch core writes the answer into and
 * leaves its notes on, and which the access log reads at the end.
 */
class RestHandler {
  #open = 0;
  #shuttingDown = false;
  #onIdle: (() => void) | null = null;
  readonly #options: RestHandlerOptions;
  readonly #requestIdOf = createRequestIds();
  readonly #accessLog: (call: RestCall) => void;
  readonly #table: RouteTable;

  constructor(options: RestHandlerOptions) {
    this.#options = options;
    this.#accessLog = createAccessLog(options.metrics, options.logger, options.accessLogExcludePrefixes);
    const metrics = options.metrics;
    const sendMetrics = (call: RestCall) => {
      metrics.text().then(
        (text) => {
          call.res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
          call.res.end(text);
        },
        (err: unknown) => sendError(call, err),
      );
    };
    const { admin, data, affinity, fanout, rollouts, lora } = options;
    this.#table = new RouteTable(restRoutes({ admin, data, affinity, fanout, rollouts, lora, dashboard: loadDashboardFiles(), metrics: sendMetrics }));
  }

  /** Requests whose answer has not ended. */
  get open(): number {
    return this.#open;
  }

  /** From now on, new requests get 503 shutting_down. */
  startShutdown(): void {
    this.#shuttingDown = true;
  }

  /** Resolves true when every open request ended, false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.#open === 0) return Promise.resolve(true);
    return firedWithin(timeoutMs, (fire) => (this.#onIdle = fire));
  }

  /** The server's request listener (bound: it is passed around as a function). */
  readonly handle = (req: Req, res: Res): void => {
    const startedMs = performance.now();
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const call = new RestCall(req, res, q < 0 ? rawUrl : rawUrl.slice(0, q), this.#requestIdOf(req), startedMs);
    const method = req.method ?? "GET";
    this.#open++;
    res.on("close", () => this.#finished(call));
    let match: Match;
    try {
      match = this.#table.match(call.path);
    } catch (err) {
      // A path parameter that is not valid percent-encoding: 400, nothing routed.
      req.resume();
      sendError(call, err);
      return;
    }
    call.errorShape = match.shape;
    call.routeLabel = match.label;
    if (this.#refused(call, match, rawUrl)) return;
    limitBodyStall(req, this.#options.clientBodyTimeoutMs);
    const query = q < 0 ? "" : rawUrl.slice(q + 1);
    const auth = this.#options.auth;
    // Admin calls run in their caller's context, which the audit trail reads;
    // the data plane does not pay for it.
    const routed =
      match.auth === "admin"
        ? callContext.run({ requestId: call.requestId, caller: { remote: remoteOf(req.socket), key: auth.keyOf(req.headers.authorization), transport: "rest" } }, () => this.#route(call, method, rawUrl, query, match))
        : this.#route(call, method, rawUrl, query, match);
    routed.catch((err: unknown) => this.#failed(call, err));
  };

  /**
   * WebSocket upgrades (the listener serves other upgrades as plain
   * requests). One on the realtime prefix is a session proxied to a video
   * worker, counted as an open request until it ends: a shutdown waits for
   * it like for any request, then closes it.
   */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    this.#open++;
    const done = () => {
      if (--this.#open === 0 && this.#onIdle) this.#onIdle();
    };
    if (this.#shuttingDown) refuse(socket, new RouterError("shutting_down", "the router is shutting down", { details: { retryAfterS: 1 } }), done);
    else if (!path.startsWith(REALTIME_PREFIX)) refuse(socket, new RouterError("not_found", `no WebSocket route ${path} (the realtime video API is under ${REALTIME_PREFIX})`), done);
    else this.#options.realtime.handle(req, socket, head, done);
  };

  /** Runs the matched route's handler; a reserved path without a route is the router's 404, any other path goes to a worker. */
  async #route(call: RestCall, method: string, rawUrl: string, queryString: string, match: Match): Promise<void> {
    if (match.kind === "worker") return this.#options.data.passthrough(call, rawUrl);
    if (match.route === null) throw new RouterError("not_found", `no route ${method} ${call.path}`);
    const handler = handlerFor(match.route, method, call.path);
    return handler({ call, req: call.req, res: call.res, method, path: call.path, rawUrl, params: match.params, query: () => new URLSearchParams(queryString) });
  }

  #finished(call: RestCall): void {
    if (call.accounted) return; // 'close' is expected once; this keeps `once` semantics
    call.accounted = true;
    this.#open--;
    if (this.#open === 0 && this.#onIdle) this.#onIdle();
    this.#accessLog(call);
  }

  /** Answers a request that may not be routed (shutting down, not a path, no key); false when it may. */
  #refused(call: RestCall, match: Match, rawUrl: string): boolean {
    const req = call.req;
    const auth = this.#options.auth;
    if (this.#shuttingDown) {
      req.resume();
      sendError(call, new RouterError("shutting_down", "the router is shutting down", { details: { retryAfterS: 1 } }));
      return true;
    }
    if (call.path.charCodeAt(0) !== 47 /* '/' */) {
      sendError(call, new RouterError("invalid_request", `request target must be a path, got ${JSON.stringify(rawUrl.slice(0, 100))}`));
      return true;
    }
    const needs = effectiveAuth(match.auth, auth.adminRequired);
    if (needs !== "open" && !(needs === "admin" ? auth.admin(req.headers.authorization) : auth.data(req.headers.authorization))) {
      req.resume();
      if (needs === "admin") this.#options.audit.refused(`${req.method ?? "GET"} ${call.path}`, { requestId: call.requestId, caller: { remote: remoteOf(req.socket), key: auth.keyOf(req.headers.authorization), transport: "rest" } });
      sendError(call, new RouterError("unauthenticated", needs === "admin" ? "admin API key required: send Authorization: Bearer <admin key>" : "API key required: send Authorization: Bearer <key>"), { "www-authenticate": "Bearer" });
      return true;
    }
    return false;
  }

  #failed(call: RestCall, err: unknown): void {
    const e = RouterError.from(err);
    if (e.status >= 500 && e.code === "internal") this.#options.logger.error({ err, path: call.path }, "request failed");
    if (e.code === "method_not_allowed" && !call.res.headersSent) call.res.setHeader("allow", String(e.details.allow));
    sendError(call, e);
    // A body the router did not read (an error before reading it) must not
    // stay in the socket: drain it so keep-alive stays usable.
    if (!call.req.readableEnded) call.req.resume();
  }
}

export type { RestHandler };

export function createRestHandler(options: RestHandlerOptions): RestHandler {
  return new RestHandler(options);
}
