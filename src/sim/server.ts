import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger, type Logger } from "../log.js";
import { diffusionRoutes } from "./diffusion.js";
import { simHeaders } from "./generation.js";
import { HttpError, detailError, discardBody, sendError, sendText } from "./http.js";
import { imageRoutes } from "./images.js";
import { infoRoutes } from "./info.js";
import { introspectionRoutes } from "./introspection.js";
import { loraRoutes } from "./lora.js";
import { meshRoutes } from "./meshes.js";
import { attachRealtime } from "./realtime.js";
import { resolveOptions, type SimWorkerOptions } from "./options.js";
import { rolloutRoutes } from "./rollout.js";
import type { Route } from "./route.js";
import { SimState } from "./state.js";
import { videoRoutes } from "./videos.js";
import { weightRoutes } from "./weights.js";

/** A running simulated worker. */
export interface SimWorker {
  /** Base URL, e.g. "http://127.0.0.1:41234". */
  url: string;
  port: number;
  /** Stops listening, drops open connections and pending simulated work. */
  close(): Promise<void>;
}

function findRoute(routes: Route[], method: string, path: string): { route?: Route; params: string[]; pathMatched: boolean } {
  let pathMatched = false;
  for (const route of routes) {
    const match = route.pattern.exec(path);
    if (!match) continue;
    pathMatched = true;
    // HEAD is answered like GET by uvicorn/Starlette for GET routes.
    if (route.method === method || (method === "HEAD" && route.method === "GET")) {
      const params = match.slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          return p;
        }
      });
      return { route, params, pathMatched };
    }
  }
  return { params: [], pathMatched };
}

/** Every route of the worker, in match order, and which of them are the sim's own. */
function allRoutes(state: SimState): { routes: Route[]; sims: Route[] } {
  const sims = introspectionRoutes(state);
  const routes: Route[] = [
    ...infoRoutes(state),
    ...loraRoutes(state),
    ...imageRoutes(state),
    ...videoRoutes(state),
    ...meshRoutes(state),
    ...rolloutRoutes(state),
    ...diffusionRoutes(state),
    ...weightRoutes(state),
    ...sims,
  ];
  return { routes, sims };
}

function answerError(error: unknown, req: IncomingMessage, res: ServerResponse, state: SimState, path: string): void {
  if (state.closeSignal.aborted) {
    res.destroy();
  } else if (error instanceof HttpError) {
    sendError(res, error);
  } else if (res.headersSent) {
    res.destroy();
  } else if (req.destroyed || res.destroyed) {
    // the client left (e.g. mid-upload): nobody to answer
  } else {
    state.log.error({ err: error, path }, "sim handler failed");
    sendText(res, 500, "Internal Server Error");
  }
}

function createHandler(state: SimState, log: Logger): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { routes, sims } = allRoutes(state);
  return async function handle(req, res) {
    const url = new URL(req.url ?? "/", "http://sim.invalid");
    const method = req.method ?? "GET";
    const found = findRoute(routes, method, url.pathname);
    const route = found.route;
    const introspection = route !== undefined && sims.includes(route);

    if (!introspection) state.stats.countRequest(route?.name ?? (found.pathMatched ? "method_not_allowed" : "not_found"));
    // in_flight counts every non-health request until its answer is done or
    // its client has gone ('close' fires in both cases), so nothing leaks.
    if (!introspection && route?.kind !== "health") res.once("close", state.stats.enter());
    if (route?.kind === "generation") res.once("close", state.stats.enterGeneration());
    if (log.isLevelEnabled("debug")) {
      const started = Date.now();
      res.once("close", () => log.debug({ method, path: url.pathname, status: res.statusCode, ms: Date.now() - started, done: res.writableFinished }, "request"));
    }
    res.setHeader("server", "uvicorn");
    res.setHeader("date", new Date().toUTCString());

    try {
      if (!route) {
        await discardBody(req, state.stats);
        throw found.pathMatched ? detailError(405, "Method Not Allowed") : detailError(404, "Not Found");
      }
      // The warm-up middleware holds every route but health, /server_info and /model_info.
      const wait = state.readyAt - Date.now();
      if (wait > 0 && (route.kind === "generation" || route.kind === "control")) await state.delay(wait);
      if (route.kind === "generation") {
        for (const [name, value] of Object.entries(simHeaders(state))) res.setHeader(name, value as string);
      }
      await route.handler({ req, res, url, params: found.params, state });
    } catch (error) {
      answerError(error, req, res, state, url.pathname);
    }
    // Keep-alive needs the request fully read even when a handler did not need it.
    if (!req.complete && !req.destroyed) req.resume();
  };
}

async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** A wildcard bind is reached through loopback; advertise an address clients can dial. */
function dialUrl(host: string, port: number): string {
  const dialHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${dialHost.includes(":") ? `[${dialHost}]` : dialHost}:${port}`;
}

/** Starts a simulated SGLang diffusion worker (`sglang serve` stand-in). */
export async function startSimWorker(options: SimWorkerOptions = {}): Promise<SimWorker> {
  const resolved = resolveOptions(options);
  const log = createLogger({ name: "sim-worker", level: resolved.logLevel });
  const state = new SimState(resolved, log);
  const handle = createHandler(state, log);
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  // Like uvicorn: no request timeout (generations and uploads can be long).
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  attachRealtime(server, state);
  const port = await listen(server, resolved.host, resolved.port);
  state.url = dialUrl(resolved.host, port);
  log.info({ url: state.url, model: resolved.modelPath, taskType: resolved.taskType }, "sim worker listening");

  let closing: Promise<void> | undefined;
  return {
    url: state.url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        state.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
