import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { SimStats } from "./stats.js";

/**
 * Answers in the shapes a FastAPI/uvicorn worker produces. A router is tested
 * against these, so they copy the real ones: `{"detail": ...}` JSON for
 * 400/404/422, and a `text/plain` "Internal Server Error" for unhandled 500s.
 */

/** Thrown by handlers; the server turns it into the answer it carries. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    /** Plain text instead of JSON (the 500 of an unhandled exception). */
    readonly text = false,
    /** What the worker's log would say (a plain 500 hides it from the client). */
    readonly reason?: string,
  ) {
    super(typeof body === "string" ? body : JSON.stringify(body));
  }
}

/** One item of a FastAPI 422 `detail` list (pydantic v2 shape). */
export interface ValidationItem {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

export function validationError(items: ValidationItem[]): HttpError {
  return new HttpError(422, { detail: items });
}

export function detailError(status: number, detail: unknown): HttpError {
  return new HttpError(status, { detail });
}

export function internalError(reason?: string): HttpError {
  return new HttpError(500, "Internal Server Error", true, reason);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": bytes.length });
  res.end(bytes);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = Buffer.from(text);
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": bytes.length });
  res.end(bytes);
}

export function sendBytes(res: ServerResponse, status: number, contentType: string, bytes: Buffer, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...headers, "content-type": contentType, "content-length": bytes.length });
  res.end(bytes);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  if (error.text) sendText(res, error.status, String(error.body));
  else sendJson(res, error.status, error.body);
}

/** Reads a whole (small, JSON) body, counting its bytes into the stats. */
export async function readBody(req: IncomingMessage, stats: SimStats): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    stats.bytesReceived += buf.length;
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** Drains a body we do not need so keep-alive connections stay usable. */
export async function discardBody(req: IncomingMessage, stats: SimStats): Promise<void> {
  for await (const chunk of req) stats.bytesReceived += (chunk as Buffer).length;
}

export function isMultipart(req: IncomingMessage): boolean {
  return (req.headers["content-type"] ?? "").toLowerCase().includes("multipart/form-data");
}

/** Where JSON.parse gave up, for FastAPI's `loc: ["body", pos]`. */
function errorPosition(error: unknown, text: string): number {
  const match = /position (\d+)/.exec(error instanceof Error ? error.message : "");
  return match ? Number(match[1]) : Math.max(0, text.length - 1);
}

/**
 * Parses a body for a route whose parameter is a pydantic model: FastAPI
 * answers 422 `json_invalid` for bad JSON and `missing` for an empty body.
 */
export function parseModelBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) {
    throw validationError([{ type: "missing", loc: ["body"], msg: "Field required", input: null }]);
  }
  const text = body.toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw validationError([
      {
        type: "json_invalid",
        loc: ["body", errorPosition(error, text)],
        msg: "JSON decode error",
        input: {},
        ctx: { error: error instanceof Error ? error.message : String(error) },
      },
    ]);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw validationError([
      {
        type: "model_attributes_type",
        loc: ["body"],
        msg: "Input should be a valid dictionary or object to extract fields from",
        input: value,
      },
    ]);
  }
  return value as Record<string, unknown>;
}

/**
 * Parses a body for a route that calls `await request.json()` itself (the
 * weight routes): there bad JSON is an unhandled exception, so the real
 * worker answers the plain-text 500.
 */
export function parseRawJson(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw internalError();
  }
  // `body.get(...)` on a non-dict is an AttributeError: a 500 as well.
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw internalError();
  return value as Record<string, unknown>;
}
