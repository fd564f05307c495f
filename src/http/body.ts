import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { RouterError } from "../errors.js";

export type Req = IncomingMessage | Http2ServerRequest;

/** Reads a whole (small) request body, refusing more than `limit` bytes with 413. */
export async function readBody(req: Req, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) {
    req.resume();
    throw new RouterError("body_too_large", `request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  // Plain 'data'/'end' listeners: an async iterator over the stream costs
  // several promises per chunk, on the path of every generation request.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume();
        reject(new RouterError("body_too_large", `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(new Error("client closed the connection while sending its body"));
    const cleanup = () => {
      req.removeListener("data", onData);
      req.removeListener("end", onEnd);
      req.removeListener("error", onError);
      req.removeListener("aborted", onAborted);
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    req.once("aborted", onAborted);
  });
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
    throw new RouterError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new RouterError("invalid_json", "request body must be a JSON object");
  }
  return { raw, json: parsed as Record<string, unknown> };
}
