import { discardBody, parseModelBody, readBody, sendJson } from "./http.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { SimStats } from "./stats.js";
import { Fields } from "./validate.js";

/**
 * Sim-only routes under `/sim/` (no real route lives there). They are not
 * counted in the stats they report, and they answer during warm-up.
 */

function configBody(state: SimState): Record<string, unknown> {
  const c = state.config;
  return { failure_rate: c.failureRate, speed: c.speed, fail_updates: c.failUpdates, weight_load_ms: c.weightLoadMs };
}

export function introspectionRoutes(state: SimState): Route[] {
  async function stats(ctx: RouteContext): Promise<void> {
    const s = state.stats;
    sendJson(ctx.res, 200, {
      in_flight: s.inFlight,
      peak_in_flight: s.peakInFlight,
      requests_total: s.requestsTotal,
      requests_by_route: s.requestsByRoute,
      weights: state.weights,
      sleeping: state.sleeping,
      bytes_received: s.bytesReceived,
      generations_run: s.generationsRun,
      generations_open: s.generationsOpen,
      peak_generations_open: s.peakGenerationsOpen,
      weight_updates: s.weightUpdates,
      control_calls: s.controlCalls,
      scheduler_running: state.scheduler.active,
      scheduler_waiting: state.scheduler.waiting,
      rss_bytes: process.memoryUsage.rss(),
    });
  }

  async function getConfig(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, configBody(state));
  }

  async function setConfig(ctx: RouteContext): Promise<void> {
    // Own bytes are not the worker's traffic: count them into a throwaway.
    const body = parseModelBody(await readBody(ctx.req, new SimStats()));
    const f = new Fields(body);
    const failureRate = f.number("failure_rate");
    const speed = f.number("speed");
    const failUpdates = f.bool("fail_updates");
    const weightLoadMs = f.number("weight_load_ms");
    f.done();
    const bad: string[] = [];
    if (failureRate !== undefined && !(failureRate >= 0 && failureRate <= 1)) bad.push("failure_rate must be within 0..1");
    if (speed !== undefined && !(speed > 0)) bad.push("speed must be > 0");
    if (weightLoadMs !== undefined && !(weightLoadMs >= 0)) bad.push("weight_load_ms must be >= 0");
    if (bad.length > 0) {
      sendJson(ctx.res, 400, { detail: bad.join("; ") });
      return;
    }
    if (failureRate !== undefined) state.config.failureRate = failureRate;
    if (speed !== undefined) state.config.speed = speed;
    if (failUpdates !== undefined) state.config.failUpdates = failUpdates;
    if (weightLoadMs !== undefined) state.config.weightLoadMs = weightLoadMs;
    sendJson(ctx.res, 200, configBody(state));
  }

  async function resetStats(ctx: RouteContext): Promise<void> {
    await discardBody(ctx.req, new SimStats());
    state.stats.reset();
    sendJson(ctx.res, 200, { success: true });
  }

  return [
    { method: "GET", pattern: /^\/sim\/stats$/, name: "GET /sim/stats", kind: "info", handler: stats },
    { method: "GET", pattern: /^\/sim\/config$/, name: "GET /sim/config", kind: "info", handler: getConfig },
    { method: "POST", pattern: /^\/sim\/config$/, name: "POST /sim/config", kind: "info", handler: setConfig },
    { method: "POST", pattern: /^\/sim\/reset_stats$/, name: "POST /sim/reset_stats", kind: "info", handler: resetStats },
  ];
}
