import { ConnectError, type Code } from "@connectrpc/connect";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { flattenHeaders } from "./headers.js";

/**
 * Codes the SDK itself assigns. Router answers carry their own stable
 * `error.code` (e.g. `no_healthy_workers`, `no_video_workers`,
 * `unauthenticated`), which is used as is; worker answers without one get
 * `http_<status>`.
 */
export type RouterClientErrorCode =
  | "network_error"
  | "timeout"
  | "aborted"
  | "video_failed"
  | "invalid_response"
  | `http_${number}`
  // RPC failures the router gave no code of: Connect's code name, e.g. "unimplemented".
  // The router's codes (see the router's src/errors.ts) and any a newer one adds.
  | (string & {});

export interface RouterClientErrorInit {
  status: number;
  code: RouterClientErrorCode;
  message: string;
  body?: unknown;
  cause?: unknown;
  /** The answer's headers, lower-case names (empty when there was no answer). */
  headers?: Record<string, string>;
  /** The router's stable code, when the router said one. */
  routerCode?: string | null;
  /** The RPC's Connect code (RPC failures only). */
  rpcCode?: Code | null;
}

/**
 * The one error type of the SDK: data-plane calls, admin RPCs and rollout
 * jobs all throw it.
 *
 * - `status`: the HTTP status of the answer, 0 when there was none (network
 *   error, timeout, abort); 200 for `video_failed` (the poll answer was fine,
 *   the job failed). For an RPC, the HTTP status Connect maps its code to
 *   (401 unauthenticated, 404 not_found, 503 unavailable, ...).
 * - `code`: the router's stable code when the router gave one (`error.code`,
 *   `X-Router-Error-Code`, or the RPC's `x-router-error-code` metadata), else
 *   `http_<status>`, one of `network_error`, `timeout`, `aborted`,
 *   `video_failed`, `invalid_response`, or for an RPC Connect's code name
 *   (`unimplemented`, `internal`, ...).
 * - `message`: the router's message, the worker's FastAPI `detail`
 *   (validation lists joined), or the plain-text body.
 * - `body`: the parsed JSON body (or the text, or the failed video job).
 * - `rpcCode`: the Connect `Code` of an RPC failure, null for REST calls.
 * - `cause`: the underlying error (undici's, or Connect's `ConnectError`).
 */
export class RouterClientError extends Error {
  override readonly name = "RouterClientError";
  readonly status: number;
  readonly code: RouterClientErrorCode;
  readonly body: unknown;
  /** The answer's headers (lower-case names); empty when there was no answer. */
  readonly headers: Readonly<Record<string, string>>;
  /** The request's id (`X-Request-Id` of the answer), to find it in the router's access log; null without an answer. */
  readonly requestId: string | null;
  /** The router's stable code when the router said one; null when `code` is the SDK's own (`http_500`, `network_error`, ...). */
  readonly routerCode: string | null;
  /** The Connect code of an RPC failure; null for REST calls. */
  readonly rpcCode: Code | null;

  constructor(init: RouterClientErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.body = init.body;
    this.headers = init.headers ?? {};
    this.requestId = this.headers["x-request-id"] ?? null;
    this.routerCode = init.routerCode ?? null;
    this.rpcCode = init.rpcCode ?? null;
  }

  /**
   * Error details an RPC failure carries (protobuf messages of `desc`'s
   * type), e.g. the per-worker `UpdateWeightsFromDiskResponse` of a failed
   * refit; empty for REST calls.
   */
  findDetails<Desc extends DescMessage>(desc: Desc): MessageShape<Desc>[] {
    return this.cause instanceof ConnectError ? this.cause.findDetails(desc) : [];
  }
}

/**
 * The router's stable error code of a failed call (REST or RPC), e.g.
 * `worker_not_found` or `unauthenticated`, or undefined when the error did
 * not come from the router's own checks (a worker's error, a network
 * failure). Takes Connect's `ConnectError` too, for raw Connect clients.
 */
export function routerErrorCode(err: unknown): string | undefined {
  if (err instanceof RouterClientError) return err.routerCode ?? undefined;
  if (!(err instanceof ConnectError)) return undefined;
  return err.metadata.get("x-router-error-code") ?? undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** FastAPI's `detail`: a string, `{message}`, or pydantic's list of `{loc, msg}`. */
function detailMessage(detail: unknown): string {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    const parts = detail.map((item) => {
      if (!isRecord(item)) return JSON.stringify(item);
      const loc = Array.isArray(item.loc) ? item.loc.join(".") : "";
      const msg = typeof item.msg === "string" ? item.msg : JSON.stringify(item);
      return loc ? `${loc}: ${msg}` : msg;
    });
    return parts.join("; ");
  }
  if (isRecord(detail) && typeof detail.message === "string") return detail.message;
  return JSON.stringify(detail);
}

/**
 * Builds the error for a non-2xx answer from its (possibly cut) body text:
 * the router's two shapes (`{"error": "<message>", "code"}` on the original
 * router's routes, `{"error": {message, code}}` on its own), FastAPI's
 * `{"detail": ...}`, a `{"message": ...}` (weight and memory routes), or plain
 * text. `headerCode` is the router's `X-Router-Error-Code`, which wins when the
 * body was cut before its code.
 */
export function errorFromAnswer(status: number, contentType: string, text: string, headers: Record<string, string | string[] | undefined> = {}): RouterClientError {
  const flat = flattenHeaders(headers);
  const headerCode = flat["x-router-error-code"];
  let body: unknown = text;
  const trimmed = text.trim();
  if (/json/i.test(contentType) || trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  let bodyCode: string | undefined;
  let message: string | undefined;
  if (isRecord(body)) {
    const err = body.error;
    if (isRecord(err) && typeof err.message === "string") {
      message = err.message;
      if (typeof err.code === "string" && err.code !== "") bodyCode = err.code;
    } else if ("detail" in body) {
      message = detailMessage(body.detail);
    } else if (typeof body.message === "string") {
      message = body.message;
    } else if (typeof err === "string") {
      message = err;
      if (typeof body.code === "string" && body.code !== "") bodyCode = body.code;
    }
  }
  const routerCode = headerCode !== undefined && headerCode !== "" ? headerCode : (bodyCode ?? null);
  if (message === undefined) message = trimmed !== "" ? trimmed.slice(0, 2000) : `HTTP ${status}`;
  return new RouterClientError({ status, code: routerCode ?? `http_${status}`, routerCode, message, body, headers: flat });
}
