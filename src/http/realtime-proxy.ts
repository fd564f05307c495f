import { STATUS_CODES, type IncomingMessage } from "node:http";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import type { Auth } from "../auth/api-keys.js";
import { errorBody } from "../error-body.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";

/** The worker's realtime WebSocket routes (`/v1/realtime_video/generate`). */
export const REALTIME_PREFIX = "/v1/realtime_video/";

export interface RealtimeProxyOptions {
  auth: Auth;
  registry: Registry;
  logger: Logger;
  /** Time the worker's TCP connection may take to open. */
  connectTimeoutMs?: number;
}

/**
 * WebSocket sessions of the realtime video API, proxied as bytes: the
 * router checks the data-plane key, picks a video worker, opens a TCP
 * connection to it, replays the client's upgrade request and then pipes
 * both ways. The WebSocket handshake and frames are the worker's and the
 * client's business (the `ws` library on the worker, any client): the
 * router never parses a frame, so it adds nothing to each message.
 */
export function createRealtimeProxy(options: RealtimeProxyOptions) {
  const { auth, registry, logger } = options;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  /** Open sessions per worker: the least loaded video worker takes the next one. */
  const sessionsOn = new Map<string, number>();

  /** The routable video worker with the fewest sessions (then requests); a RouterError when there is none. */
  function pick(): Worker {
    const video = registry.routableVideo();
    if (video.length === 0) {
      const registered = registry.all().filter((w) => w.capabilities.videoSupport === true);
      if (registered.length === 0) throw new RouterError("no_video_workers", "No video-capable workers available in current worker pool: the realtime video API needs a worker whose /v1/models task_type is a video one.");
      throw new RouterError("no_healthy_workers", `No healthy video-capable workers available (${registered.length} registered, none routable)`, { details: { retryAfterS: 1 } });
    }
    const load = (w: Worker) => (sessionsOn.get(w.url) ?? 0) + w.activeRequests;
    return video.reduce((best, w) => (load(w) < load(best) ? w : best));
  }

  /** A session's pipes, counted on its worker until either side ends. */
  function pipeSession(client: Duplex, upstream: net.Socket, worker: Worker, done: () => void): void {
    sessionsOn.set(worker.url, (sessionsOn.get(worker.url) ?? 0) + 1);
    const startedMs = Date.now();
    pipeBoth(client, upstream, () => {
      sessionsOn.set(worker.url, (sessionsOn.get(worker.url) ?? 1) - 1);
      logger.info({ worker: worker.url, durationMs: Date.now() - startedMs }, "realtime session ended");
      done();
    });
  }

  return {
    /**
     * One upgrade request on the realtime prefix. `done` fires once when the
     * session (or its refusal) is over: the REST door counts sessions as
     * open requests, so a shutdown waits for them like for any request.
     */
    handle(req: IncomingMessage, client: Duplex, head: Buffer, done: () => void): void {
      client.on("error", () => undefined);
      let worker: Worker;
      try {
        if (!auth.data(req.headers.authorization)) throw new RouterError("unauthenticated", "API key required: send Authorization: Bearer <key>");
        worker = pick();
      } catch (err) {
        refuse(client, RouterError.from(err), done);
        return;
      }
      const { hostname, port } = new URL(worker.url);
      const upstream = net.connect({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port || 80), noDelay: true });
      upstream.setTimeout(connectTimeoutMs, () => upstream.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)));
      // Until the pipes are laid, the session ends here: a client that leaves while the worker's connection opens ends it too.
      let piped = false;
      let finished = false;
      const finish = () => {
        if (!finished) (finished = true), done();
      };
      client.once("close", () => piped || upstream.destroy());
      upstream.once("close", () => piped || finish());
      upstream.once("error", (err) => refuse(client, new RouterError("upstream_failed", `realtime session to ${worker.displayId} failed: ${err.message}`), finish));
      upstream.once("connect", () => {
        upstream.setTimeout(0);
        upstream.removeAllListeners("error");
        piped = true;
        upstream.write(requestHead(req, worker));
        if (head.length > 0) upstream.write(head);
        pipeSession(client, upstream, worker, finish);
      });
    },
  };
}

export type RealtimeProxy = ReturnType<typeof createRealtimeProxy>;

/** Pipes both ways until either side ends or fails; then ends the other (FIN after what is buffered: a close frame already relayed arrives) and calls `onEnd` once. */
function pipeBoth(client: Duplex, upstream: net.Socket, onEnd: () => void): void {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    client.end();
    upstream.end();
    onEnd();
  };
  client.pipe(upstream);
  upstream.pipe(client);
  for (const s of [client, upstream]) {
    s.once("close", end);
    s.once("end", end);
    s.on("error", () => {
      s.destroy();
      end();
    });
  }
  // The client may have left in the instant the worker's connection opened.
  if (client.destroyed) end();
}

/** The client's request head, as sent, with the worker's Host. */
function requestHead(req: IncomingMessage, worker: Worker): string {
  const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/1.1`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "host") lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  lines.push(`Host: ${new URL(worker.url).host}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** An HTTP error answer on a socket that was never handed to the HTTP server's response machinery; then the socket ends. */
export function refuse(socket: Duplex, err: RouterError, done: () => void): void {
  const body = JSON.stringify(errorBody(err));
  const retryAfter = err.details.retryAfterS ?? (err.status === 503 ? 1 : undefined);
  const head = [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? "Error"}`,
    "content-type: application/json",
    `content-length: ${Buffer.byteLength(body)}`,
    `x-router-error-code: ${err.code}`,
    ...(err.code === "unauthenticated" ? ["www-authenticate: Bearer"] : []),
    ...(retryAfter !== undefined ? [`retry-after: ${retryAfter}`] : []),
    "connection: close",
  ];
  if (socket.writable) socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
  else socket.destroy();
  done();
}
