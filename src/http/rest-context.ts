import type { Ticket } from "../admission/admission.js";
import type { RequestContext, RouteSpec } from "../dispatch/context.js";
import { upstreamRequestHeaders } from "../proxy/headers.js";
import type { Req } from "./body.js";
import type { RestCall } from "./rest-call.js";

/** Whether a body follows the request's head. */
export function hasBody(req: Req): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const len = req.headers["content-length"];
  if (len !== undefined) return len !== "0";
  // HTTP/2 needs neither header: a body follows unless the stream ended with its headers.
  return "stream" in req && !req.stream.endAfterHeaders;
}

/** The client's `X-Routing-Key`, or null. */
export function routingKeyOf(req: Req): string | null {
  const header = req.headers["x-routing-key"];
  return typeof header === "string" && header !== "" ? header : null;
}

/**
 * The dispatch core's context of a REST request: the answer goes into the
 * call's response, and the core's notes land on the call, where the access
 * log reads them. `bodyBytes` is the body when the router read it whole;
 * otherwise the client's stream goes through once.
 */
export function restContext<T extends Ticket | null>(call: RestCall, path: string, route: RouteSpec, bodyBytes: Buffer | null, ticket: T, arrivedMs: number): RequestContext & { readonly ticket: T } {
  const req = call.req;
  return {
    requestId: call.requestId,
    route,
    method: req.method ?? "GET",
    path,
    headers: upstreamRequestHeaders(req.headers, call.requestId),
    bodyBytes,
    bodyStream: bodyBytes === null && hasBody(req) ? req : null,
    ticket,
    sink: call,
    notes: call,
    arrivedMs,
    signal: null,
  };
}
