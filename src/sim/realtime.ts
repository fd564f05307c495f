import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { decode, encode } from "@msgpack/msgpack";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { isVideoTask } from "./options.js";
import { parseSize } from "./validate.js";
import type { SimState } from "./state.js";

/**
 * A minimal `/v1/realtime_video/generate` WebSocket, after SGLang's
 * openai/realtime/realtime_video_api.py: every message is MessagePack in a
 * binary frame. The client's first message is the generate request (a map
 * with a string `prompt`; `size`, `num_frames`, `max_chunks`); a bad one is
 * answered `{"type":"error","content":"invalid generate request"}` and the
 * server waits for another. Then the server sends one `frame_batch` per
 * chunk (raw rgb24 frames, like the RawRGB output adapter) and closes with
 * 1000 "generation complete" after `max_chunks`. Client events (`{kind,
 * ...}`; `heartbeat` only keeps the session alive) are read and dropped;
 * a non-map is answered `{"type":"error","content":"invalid event"}`. Real
 * model adapters, conditioning, admission leases and idle timeouts are not
 * simulated. The session waits for warm-up, as the real one does.
 */

const PATH = "/v1/realtime_video/generate";
/** Small frames: the sim proves the protocol, not the pixels. */
const MAX_SIDE = 64;

interface RealtimeRequest {
  prompt: string;
  width: number;
  height: number;
  framesPerChunk: number;
  maxChunks: number;
}

function readRequest(data: unknown): RealtimeRequest | null {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return null;
  const map = data as Record<string, unknown>;
  if (typeof map["prompt"] !== "string") return null;
  const int = (key: string, fallback: number): number => {
    const v = map[key];
    return typeof v === "number" && Number.isInteger(v) && v >= 1 ? v : fallback;
  };
  const [w, h] = parseSize(typeof map["size"] === "string" ? map["size"] : undefined) ?? [832, 480];
  const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
  return {
    prompt: map["prompt"],
    width: Math.max(1, Math.round(w * scale)),
    height: Math.max(1, Math.round(h * scale)),
    framesPerChunk: Math.min(int("num_frames", 4), 16),
    maxChunks: int("max_chunks", 2),
  };
}

function decodeMessage(raw: RawData): unknown {
  try {
    return decode(Buffer.isBuffer(raw) ? raw : Buffer.concat(Array.isArray(raw) ? raw : [Buffer.from(raw)]));
  } catch {
    return undefined;
  }
}

function send(ws: WebSocket, message: Record<string, unknown>): void {
  if (ws.readyState === ws.OPEN) ws.send(encode(message));
}

function frameBatch(request: RealtimeRequest, requestId: string, chunk: number): Record<string, unknown> {
  const bytesPerFrame = request.width * request.height * 3;
  // Each chunk's frames are a flat colour that moves with the chunk index.
  const payload = Buffer.alloc(bytesPerFrame * request.framesPerChunk, (chunk * 37) & 0xff);
  return {
    type: "frame_batch",
    request_id: requestId,
    chunk_index: chunk,
    content_type: "application/x-raw-rgb",
    num_frames: request.framesPerChunk,
    format: "rgb24",
    width: request.width,
    height: request.height,
    channels: 3,
    bytes_per_frame: bytesPerFrame,
    raw_size: payload.length,
    encoding: "raw",
    frame_batch_index: 0,
    num_frame_batches: 1,
    is_final_frame_batch: true,
    payload,
  };
}

async function session(ws: WebSocket, state: SimState): Promise<void> {
  const messages: unknown[] = [];
  let wake: (() => void) | null = null;
  const onMessage = (raw: RawData) => {
    messages.push(decodeMessage(raw));
    wake?.();
  };
  ws.on("message", onMessage);
  ws.once("close", () => wake?.());
  const closed = Symbol("closed");
  const next = async (): Promise<unknown> => {
    while (messages.length === 0) {
      if (ws.readyState !== ws.OPEN) return closed;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    return messages.shift();
  };
  await state.delay(state.readyAt - Date.now());
  // A worker without a realtime model adapter fails every request's init, as upstream's does.
  const video = isVideoTask(state.options.taskType);
  let request: RealtimeRequest | null = null;
  while (request === null && ws.readyState === ws.OPEN) {
    const message = await next();
    request = video ? readRequest(message) : null;
    if (request === null && message !== closed) send(ws, { type: "error", content: "invalid generate request" });
  }
  if (request === null) return;
  // Events after the request are read and dropped (a non-map is an invalid event).
  ws.off("message", onMessage);
  ws.on("message", (raw) => {
    const event = decodeMessage(raw);
    if (event === null || typeof event !== "object" || Array.isArray(event)) send(ws, { type: "error", content: "invalid event" });
  });
  const requestId = `realtime_${Date.now().toString(36)}`;
  for (let chunk = 0; chunk < request.maxChunks && ws.readyState === ws.OPEN; chunk++) {
    await state.delay(Math.max(1, 20 / state.config.speed));
    send(ws, frameBatch(request, requestId, chunk));
  }
  ws.close(1000, "generation complete");
}

/** Answers WebSocket upgrades on `server`: the realtime route, or FastAPI's 404 for any other path. */
export function attachRealtime(server: Server, state: SimState): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? "/", "http://sim.invalid").pathname;
    if (path !== PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 22\r\nconnection: close\r\n\r\n{\"detail\":\"Not Found\"}");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      state.stats.countRequest(`WS ${PATH}`);
      void session(ws, state).catch(() => ws.terminate());
    });
  });
  state.closeSignal.addEventListener("abort", () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });
}
