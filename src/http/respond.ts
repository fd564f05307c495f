import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { RouterError, type ErrorCode } from "../errors.js";

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
 * The router's own errors, in one shape everywhere (OpenAI's error object):
 * `{"error": {"message", "type", "code", "param"}}`. Worker answers never
 * pass through here; they reach the client unchanged.
 */
export function errorBody(err: RouterError): { error: Record<string, unknown> } {
  const { param, retryAfterS, ...rest } = err.details as { param?: string; retryAfterS?: number };
  return { error: { message: err.message, type: errorType(err.status), code: err.code, param: param ?? null, ...rest } };
}

export function sendError(res: Res, reason: unknown): void {
  const err = RouterError.from(reason);
  const retryAfter = err.details.retryAfterS;
  sendJson(res, err.status, errorBody(err), retryAfter !== undefined ? { "retry-after": String(retryAfter) } : undefined);
}

export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new RouterError(code, message, details ? { details } : {});
}
