import * as http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as http2 from "node:http2";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import { firedWithin } from "./fired-within.js";

export type RequestHandler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;
/** A WebSocket upgrade request: the socket is the handler's from then on. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Options of {@link createListener}. */
export interface ListenerOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  /** WebSocket upgrades; without it they are served as plain requests, like every other upgrade. */
  upgrade?: UpgradeHandler;
  /** Time a new connection may take to send its first bytes; default 10 s. */
  firstBytesTimeoutMs?: number;
  /** Time a client may take to send request headers (slowloris guard); default 30 s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this; default 65 s. */
  keepAliveTimeoutMs?: number;
}

export interface Listener {
  readonly url: string;
  readonly port: number;
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  /** Stops accepting; existing connections keep going. */
  stopAccepting(): Promise<void>;
  /** Destroys every connection now. */
  closeConnections(): void;
  /**
   * Resolves when every connection has closed (clients that got
   * `Connection: close` close theirs) or after `lingerMs`, whichever is first.
   */
  whenNoConnections(lingerMs: number): Promise<boolean>;
  /** Sends HTTP/2 GOAWAY on every session: streams in progress finish, new ones go elsewhere. */
  goAway(): void;
  connectionCount(): number;
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One port for REST (HTTP/1.1), Connect (HTTP/1.1 and h2c), gRPC (h2c with
 * prior knowledge) and gRPC-Web. `http2.createServer({allowHTTP1})` cannot
 * serve cleartext HTTP/1.1, so a net server reads the first bytes of each
 * connection: the HTTP/2 client preface goes to the http2 server, anything
 * else to the http server. The bytes read are put back with `unshift`.
 */
export async function createListener(options: ListenerOptions): Promise<Listener> {
  const h1 = createHttp1Server(options);
  const h2 = http2.createServer({ settings: { initialWindowSize: 1 << 20 } });
  h2.on("request", options.handler);
  h2.on("sessionError", () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  const sockets = new Set<net.Socket>();
  let onNoConnections: (() => void) | null = null;
  const firstBytesTimeoutMs = options.firstBytesTimeoutMs ?? 10_000;

  // noDelay: answers go out as head + body writes; with Nagle on, the second
  // small write waits for the client's delayed ACK (~40 ms). http.Server sets
  // this for its own sockets, but these sockets are accepted here.
  const server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) onNoConnections?.();
    });
    socket.on("error", () => undefined);
    // Node keeps the peer address once read; read now, the access log still
    // has it when an answer ends after the socket closed (Connection: close,
    // a client gone).
    void socket.remoteAddress;
    socket.setTimeout(firstBytesTimeoutMs, () => socket.destroy());
    handOver(socket, h1, h2);
  });
  await listen(server, options.port, options.host);
  // Servers that never called listen() do not run their timeout checks
  // (headersTimeout, closeAllConnections) until they see 'listening'.
  h1.emit("listening");
  h2.emit("listening");

  const address = server.address() as net.AddressInfo;
  return {
    url: `http://${shownHost(options.host)}:${address.port}`,
    port: address.port,
    http1: h1,
    http2: h2,
    stopAccepting: () => new Promise<void>((resolve) => server.close(() => resolve())),
    closeConnections() {
      h1.closeIdleConnections();
      for (const s of sockets) s.destroy();
    },
    whenNoConnections(lingerMs) {
      if (sockets.size === 0) return Promise.resolve(true);
      return firedWithin(lingerMs, (fire) => (onNoConnections = fire));
    },
    goAway() {
      for (const s of sessions) if (!s.closed && !s.destroyed) s.close();
    },
    connectionCount: () => sockets.size,
  };
}

/**
 * The HTTP/1.1 server. Node hands every request with `Upgrade` to an
 * `upgrade` listener once there is one; only WebSockets are ours to take.
 * Any other upgrade (curl's `Upgrade: h2c`, which falls back to HTTP/1.1
 * when refused) is replayed without it, body bytes included, to a second
 * server with no upgrade listener, which serves the request as it always
 * did.
 */
function createHttp1Server(options: ListenerOptions): http.Server {
  const h1 = createPlainHttp1Server(options);
  const upgrade = options.upgrade;
  if (upgrade === undefined) return h1;
  const plain = createPlainHttp1Server(options);
  h1.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (String(req.headers.upgrade).toLowerCase() === "websocket") return upgrade(req, socket, head);
    socket.unshift(Buffer.concat([Buffer.from(headWithoutUpgrade(req), "latin1"), head]));
    plain.emit("connection", socket);
  });
  h1.once("listening", () => plain.emit("listening"));
  return h1;
}

/** A request's head as received, without `Upgrade` and what `Connection` said of it. */
function headWithoutUpgrade(req: IncomingMessage): string {
  const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/${req.httpVersion}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === "upgrade" || name === "http2-settings") continue;
    if (name === "connection") {
      const rest = raw[i + 1]!.split(",").map((t) => t.trim()).filter((t) => !/^(upgrade|http2-settings)$/i.test(t));
      if (rest.length > 0) lines.push(`${raw[i]}: ${rest.join(", ")}`);
      continue;
    }
    lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

function createPlainHttp1Server(options: ListenerOptions): http.Server {
  const headersTimeout = options.headersTimeoutMs ?? 30_000;
  const h1 = http.createServer({
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
    headersTimeout,
    // Node checks header timeouts only every 30 s by default: check often
    // enough that --client-header-timeout means what it says.
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
    // Uploads of large multipart bodies and minutes-long generations are normal:
    // no limit on the whole request, only on headers and idle sockets.
    requestTimeout: 0,
  });
  h1.on("request", options.handler);
  return h1;
}

/** Reads a new connection's first bytes and gives it to the http2 server (client preface) or the http server (anything else). */
function handOver(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, preface.length);
    const isH2 = head.subarray(0, n).equals(preface.subarray(0, n));
    if (isH2 && head.length < preface.length) return; // the preface can arrive in pieces
    socket.removeListener("data", onData);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(head);
    if (isH2) h2.emit("connection", socket);
    else {
      h1.emit("connection", socket);
      // The http server reads from the socket itself once resumed.
      socket.resume();
    }
  };
  socket.on("data", onData);
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
}

/** The host a client can reach the listener at: loopback for a wildcard address, brackets for IPv6. */
function shownHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}
