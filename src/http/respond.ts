import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { RouterError, type ErrorCode } from "../errors.js";
import { notes } from "./notes.js";

export type Res = ServerResponse | Http2ServerResponse;

const jsonHeaders = { "content-type": "application/json" } as const;

export function sendJson(res: Res, status: number, body: unknown, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, headers ? { ...jsonHeaders, ...headers, "content-length": Buffer.byteLength(text) } : { ...jsonHeaders, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** OpenAI's `type` for each status class, so OpenAI clients map errors as usual. */
function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 409) return "conflict_error";
  if (status >= 500) return status === 503 ? "service_unavailable_error" : "server_error";
  return "invalid_request_error";
}

/**
 * The router's own errors. Worker answers never pass through here; they
 * reach the client unchanged. Two shapes, chosen by route:
 * - the original router's routes keep its shape, `{"error": "<message>"}`
 *   with a string (its clients test `"blocked" in resp.json()["error"]`), and
 *   our stable code beside it: `{"error": "...", "code": "no_healthy_workers"}`;
 * - routes that are ours alone (refit, per-worker tensor updates, rollouts)
 *   use OpenAI's error object: `{"error": {"message", "type", "code", "param"}}`.
 * Both carry the code in the `X-Router-Error-Code` header too.
 */
export function errorBody(err: RouterError, shape: ErrorShape = "original"): Record<string, unknown> {
  const { param, retryAfterS, ...rest } = err.details as { param?: string; retryAfterS?: number };
  if (shape === "original") return param === undefined ? { error: err.message, code: err.code, ...rest } : { error: err.message, code: err.code, param, ...rest };
  return { error: { message: err.message, type: errorType(err.status), code: err.code, param: param ?? null, ...rest } };
}

/** Which error body a route answers with; see {@link errorBody}. */
export type ErrorShape = "original" | "openai";

export function sendError(res: Res, reason: unknown, extraHeaders?: Record<string, string>): void {
  const err = RouterError.from(reason);
  const n = notes(res);
  n.errorCode = err.code;
  const headers: Record<string, string> = { "x-router-error-code": err.code, ...extraHeaders };
  // Every 503 is worth retrying: it says when, also where the raiser named no delay (a refit in an empty pool).
  const retryAfter = err.details.retryAfterS ?? (err.status === 503 ? 1 : undefined);
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  if (n.requestId !== undefined) headers["x-request-id"] = n.requestId;
  // HTTP/1.1 connections end with these answers: a router that is stopping
  // must not see the connection reused, and the rest of a body over the
  // limit is not worth reading.
  if ((err.code === "shutting_down" || err.code === "body_too_large") && "shouldKeepAlive" in res) headers["connection"] = "close";
  sendJson(res, err.status, errorBody(err, n.errorShape), headers);
}

export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new RouterError(code, message, details ? { details } : {});
}
