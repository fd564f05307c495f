import type { IncomingMessage, ServerResponse } from "node:http";
import type { SimState } from "./state.js";

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Capture groups of the route pattern (decoded). */
  params: string[];
  state: SimState;
}

export type Handler = (ctx: RouteContext) => Promise<void>;

/**
 * - health: answered at once, even during warm-up, not counted in in_flight;
 * - info: answered at once during warm-up (`/server_info`, `/model_info`, the sim's own);
 * - generation: held during warm-up, answers carry x-sim-* headers;
 * - control: held during warm-up (models, LoRA, weights, memory, jobs, contents).
 */
export type RouteKind = "health" | "info" | "generation" | "control";

export interface Route {
  method: string;
  pattern: RegExp;
  /** Key in /sim/stats requests_by_route, e.g. "POST /v1/images/generations". */
  name: string;
  kind: RouteKind;
  handler: Handler;
}
