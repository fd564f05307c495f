import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import type busboy from "busboy";
import { detailError } from "./http.js";
import type { SimStats } from "./stats.js";

/**
 * Streaming multipart parser for the edit and video-create forms. Uploaded
 * files are never held in memory: their bytes are counted and hashed as they
 * pass, so tests can prove that a router forwarded a multi-hundred-MB upload
 * unchanged (`input_bytes` / `input_sha256` in the answer).
 */

export interface UploadedFile {
  field: string;
  filename: string;
  mimeType: string;
  bytes: number;
  sha256: string;
}

export interface MultipartForm {
  /** Text fields; a repeated name keeps its last value. */
  fields: Record<string, string>;
  files: UploadedFile[];
  /** Bytes of all files together. */
  bytes: number;
  /** sha256 (hex) of all files' bytes in arrival order. */
  sha256: string;
}

// busboy is loaded on first use (CommonJS, via require): keeps the CLI's
// start within its 300 ms budget.
const require = createRequire(import.meta.url);
let busboyFn: typeof busboy | undefined;

export async function parseMultipart(req: IncomingMessage, stats: SimStats): Promise<MultipartForm> {
  busboyFn ??= require("busboy") as typeof busboy;
  const createParser = busboyFn;
  return new Promise<MultipartForm>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      // Form fields are small; 16 MiB allows inline data URLs without letting one field eat memory.
      parser = createParser({ headers: req.headers, limits: { fieldSize: 16 * 1024 * 1024 } });
    } catch {
      // Starlette's answer when the form cannot be parsed (e.g. no boundary).
      reject(detailError(400, "There was an error parsing the body"));
      return;
    }
    const fields: Record<string, string> = {};
    const files: UploadedFile[] = [];
    const total = createHash("sha256");
    let totalBytes = 0;
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      req.unpipe(parser);
      reject(error);
    };

    parser.on("field", (name, value) => {
      fields[name] = value;
    });
    parser.on("file", (field, stream, info) => {
      const hash = createHash("sha256");
      let bytes = 0;
      stream.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        total.update(chunk);
      });
      stream.on("end", () => {
        totalBytes += bytes;
        files.push({ field, filename: info.filename ?? "", mimeType: info.mimeType, bytes, sha256: hash.digest("hex") });
      });
      stream.on("error", fail);
    });
    parser.on("error", () => fail(detailError(400, "There was an error parsing the body")));
    parser.on("close", () => {
      if (settled) return;
      settled = true;
      resolve({ fields, files, bytes: totalBytes, sha256: total.digest("hex") });
    });

    req.on("data", (chunk: Buffer) => {
      stats.bytesReceived += chunk.length;
    });
    // A client that goes away mid-upload: stop quietly, the caller drops the request.
    req.on("close", () => {
      if (!req.complete) fail(new Error("client disconnected during upload"));
    });
    req.on("error", fail);
    req.pipe(parser);
  });
}
