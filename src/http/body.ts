import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { RouterError } from "../errors.js";

export type Req = IncomingMessage | Http2ServerRequest;

/** Reads a whole (small) request body, refusing more than `limit` bytes with 413. */
export function readBody(req: Req, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new RouterError("body_too_large", `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const r = req as ReadingReq;
    r[reading] = { chunks: [], size: 0, limit, resolve, reject };
    // `on`, not `once`: stop() removes them all, and `once` wraps each in a closure.
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}

/**
 * The read in progress, kept on the request itself: the listeners below are
 * shared module-level functions (`this` is the request), so reading a body
 * makes no closures. This is on the path of every generation request.
 */
const reading = Symbol("reading");
interface Reading {
  chunks: Buffer[];
  size: number;
  limit: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}
type ReadingReq = Req & { [reading]?: Reading | null };

function stop(req: ReadingReq): Reading | null {
  const r = req[reading] ?? null;
  req[reading] = null;
  req.removeListener("data", onData);
  req.removeListener("end", onEnd);
  req.removeListener("error", onError);
  req.removeListener("aborted", onAborted);
  return r;
}

function onData(this: ReadingReq, chunk: Buffer): void {
  const r = this[reading];
  if (!r) return;
  r.size += chunk.length;
  if (r.size > r.limit) {
    stop(this);
    this.resume();
    r.reject(new RouterError("body_too_large", `request body exceeds the limit of ${r.limit} bytes`));
    return;
  }
  r.chunks.push(chunk);
}

function onEnd(this: ReadingReq): void {
  const r = stop(this);
  if (r) r.resolve(r.chunks.length === 1 ? r.chunks[0]! : Buffer.concat(r.chunks, r.size));
}

function onError(this: ReadingReq, err: Error): void {
  stop(this)?.reject(err);
}

function onAborted(this: ReadingReq): void {
  stop(this)?.reject(new Error("client closed the connection while sending its body"));
}

/**
 * Parses a JSON object body. An empty body is `{}` (curl -X POST with no -d);
 * anything that is not a JSON object is a 400 that says what was wrong.
 */
export async function readJsonObject(req: Req, limit: number): Promise<{ raw: Buffer; json: Record<string, unknown> }> {
  const raw = await readBody(req, limit);
  if (raw.length === 0) return { raw, json: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw new RouterError("invalid_json", `Invalid JSON body: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new RouterError("invalid_json", "Request body must be a JSON object");
  }
  return { raw, json: parsed as Record<string, unknown> };
}
