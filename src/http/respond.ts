import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { errorBody } from "../error-body.js";
import { RouterError, type ErrorCode } from "../errors.js";
import type { RestCall } from "./rest-call.js";

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

/**
 * The one place where a RouterError becomes a REST answer: its status, the
 * route's error body ({@link errorBody}), and the code in the
 * `X-Router-Error-Code` header too. The code is noted for the access log.
 */
export function sendError(call: RestCall, reason: unknown, extraHeaders?: Record<string, string>): void {
  const err = RouterError.from(reason);
  call.errorCode = err.code;
  const headers: Record<string, string> = { "x-router-error-code": err.code, ...extraHeaders };
  // Every 503 is worth retrying: it says when, also where the raiser named no delay (a refit in an empty pool).
  const retryAfter = err.details.retryAfterS ?? (err.status === 503 ? 1 : undefined);
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  headers["x-request-id"] = call.requestId;
  // HTTP/1.1 connections end with these answers: a router that is stopping
  // must not see the connection reused, and the rest of a body over the
  // limit is not worth reading.
  if ((err.code === "shutting_down" || err.code === "body_too_large") && call.h1) headers["connection"] = "close";
  sendJson(call.res, err.status, errorBody(err, call.errorShape), headers);
}

export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new RouterError(code, message, details ? { details } : {});
}
