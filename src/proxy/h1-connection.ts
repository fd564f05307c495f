import * as net from "node:net";
import * as tls from "node:tls";
import type { Readable } from "node:stream";
import { hopByHop } from "./headers.js";

/**
 * One keep-alive HTTP/1.1 connection to a worker, with the request writer and
 * the answer parser of the data plane's proxy client.
 *
 * Why not undici here: on the proxy path undici cost 15-25 µs more CPU per
 * small request than this client, and for large answers it copies every body
 * chunk into llhttp's wasm memory; this parser hands body bytes on as
 * subarrays of what the socket read (no copy) and keeps all per-request state
 * in fields of long-lived objects. Measured in docs/benchmarks.md. undici
 * still serves the router's control traffic (probes, broadcasts, merges).
 */

/** An upstream failure with a stable code (see network-errors.ts). */
export class UpstreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An answer's end-to-end headers: lower-case names, repeated ones as arrays, hop-by-hop ones removed. */
export type AnswerHeaders = Record<string, string | string[]>;

/** The request as the proxy sends it. Header names are lower case; hop-by-hop ones already removed. */
export interface H1Request {
  method: string;
  /** Path and query. */
  path: string;
  headers: Record<string, string | string[]>;
  /** A buffered body, the client's body stream, or none. */
  body: Readable | Buffer | null;
}

/** What one exchange reports, in this order: onHead, onData*, onEnd; or onError at any point, once. */
export interface H1Handler {
  /** The final answer's head (1xx answers are skipped). `contentLength` is -1 when unknown. */
  onHead(status: number, headers: AnswerHeaders, contentLength: number): void;
  /** A body chunk (a view of the socket's read buffer); returning false pauses reading until {@link Call.resume}. */
  onData(chunk: Buffer): boolean;
  /**
   * Whether bytes handed to onData/onEnd are still referenced (queued for a
   * slow client). Asked after each read: the read buffer is reused only when
   * the answer is false.
   */
  holdsBytes(): boolean;
  onEnd(): void;
  onError(err: Error): void;
}

/** One request's handle: created by the pool, bound to a connection when one is free. */
export class Call {
  conn: Connection | null = null;
  done = false;
  constructor(
    readonly req: H1Request,
    readonly handler: H1Handler,
  ) {}

  /** Ends the exchange now: the connection (if any) is closed, the handler gets `onError(err)`. */
  abort(err: Error): void {
    if (this.done) return;
    if (this.conn !== null) this.conn.fail(err);
    else {
      this.done = true;
      this.handler.onError(err);
    }
  }

  /** Reading resumes after a backpressure pause (a late 'drain' of a finished exchange changes nothing). */
  resume(): void {
    if (!this.done) this.conn?.resumeReading();
  }
}

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  /** The `host:` header value. */
  readonly hostHeader: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** The connection finished an exchange and may serve another. */
  released(conn: Connection): void;
  /** The connection is closed for good. */
  gone(conn: Connection): void;
}

const enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  UntilClose,
}

const crlfcrlf = Buffer.from("\r\n\r\n");
/** Longest answer head accepted (status line and headers). */
const maxHeadBytes = 64 * 1024;
/** Longest chunk-size or trailer line accepted. */
const maxLineBytes = 8 * 1024;
/** Read buffer of a connection between answers and for small ones. */
const smallReadBytes = 16 * 1024;
/** Read buffer while a large answer streams. */
const largeReadBytes = 256 * 1024;
/** Large read buffers kept for reuse (process-wide), at most. */
const maxSpareLarge = 32;
const spareLarge: Buffer[] = [];
/** Buffered bodies up to this size leave in the same write as the head. */
const joinBodyBytes = 64 * 1024;
const bodylessMethods = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"]);

/** Lower-cased header names, remembered: a worker sends the same few names on every answer. */
const lowerNames = new Map<string, string>();
function lowerName(raw: string): string {
  let lower = lowerNames.get(raw);
  if (lower === undefined) {
    lower = raw.toLowerCase();
    if (lowerNames.size < 1000) lowerNames.set(raw, lower);
  }
  return lower;
}

/** A decimal Content-Length value, or -1 when it is not 1-15 digits. */
function digits(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

export class Connection {
  readonly socket: net.Socket;
  call: Call | null = null;
  /** When it went back to the pool (ms since epoch). */
  idleSince = 0;
  connected = false;
  private state = State.Idle;
  /** Bytes left in a Content-Length body or in the current chunk. */
  private left = 0;
  /** A head or chunk line split across reads. */
  private partial: Buffer | null = null;
  private reusable = true;
  private paused = false;
  private headMethod = false;
  private gotAnswerBytes = false;
  /** The client's body is still being sent (streamed bodies only). */
  private uploading: Readable | null = null;
  private closed = false;
  private connectTimer: NodeJS.Timeout | null = null;
  private lastError: Error | null = null;
  /** This connection's read buffer for heads and small answers (plain TCP). */
  private smallBuf: Buffer | null = null;
  /** A large read buffer, borrowed from `spareLarge` while a large answer streams. */
  private largeBuf: Buffer | null = null;
  /** The buffer the next (or current) read goes into. */
  private armed: Buffer | null = null;
  /** The handler that got bytes of the current read. */
  private fedHandler: H1Handler | null = null;

  constructor(readonly owner: ConnectionOwner) {
    const socket = owner.tls
      ? tls.connect({ host: owner.host, port: owner.port, servername: net.isIP(owner.host) ? undefined : owner.host, ALPNProtocols: ["http/1.1"] })
      : net.connect({ host: owner.host, port: owner.port, onread: { buffer: () => this.nextReadBuffer(), callback: (n: number, b: Uint8Array) => this.onRead(n, b as Buffer) } });
    this.socket = socket;
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => {
      this.fail(new UpstreamError("UPSTREAM_CONNECT_TIMEOUT", `connect to ${owner.hostHeader} timed out after ${owner.connectTimeoutMs} ms`));
    }, owner.connectTimeoutMs);
    socket.once(owner.tls ? "secureConnect" : "connect", () => {
      this.connected = true;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
    });
    if (owner.tls) socket.on("data", (d: Buffer) => this.onBytes(d));
    // Reads go to our buffers (onread): flowing mode only makes 'end' arrive.
    else socket.resume();
    socket.on("end", () => this.onEnd());
    socket.on("error", (err: Error) => {
      this.lastError = err;
    });
    socket.on("close", () => this.onClose());
    if (owner.timeoutMs > 0) {
      // `on`, not setTimeout's callback (a `once` listener): the timer fires
      // while idle or paused too, and later timeouts must still be heard.
      socket.setTimeout(owner.timeoutMs);
      socket.on("timeout", () => {
        // Idle connections are the pool's business. A paused one waits for
        // our client (resumeReading re-arms the timer); one still receiving
        // the client's body waits for the client (--client-body-timeout
        // covers that): neither is the worker's silence.
        if (this.call === null || this.paused) return;
        if (this.uploading !== null) {
          socket.setTimeout(owner.timeoutMs);
          return;
        }
        const code = !this.connected ? "UPSTREAM_CONNECT_TIMEOUT" : this.state === State.Head ? "UPSTREAM_HEADERS_TIMEOUT" : "UPSTREAM_BODY_TIMEOUT";
        this.fail(new UpstreamError(code, `worker ${owner.hostHeader} sent nothing for ${owner.timeoutMs} ms`));
      });
    }
  }

  /** Sends `call`'s request on this connection. */
  start(call: Call): void {
    call.conn = this;
    this.call = call;
    this.state = State.Head;
    this.gotAnswerBytes = false;
    this.paused = false;
    const { method, path, headers, body } = call.req;
    this.headMethod = method === "HEAD";
    // Header values come from node's HTTP parser (which refuses CR/LF in
    // them) or from the router itself, so they are written as they are.
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.owner.hostHeader}\r\n`;
    for (const name in headers) {
      if (name === "content-length") continue;
      const v = headers[name]!;
      if (typeof v === "string") head += `${name}: ${v}\r\n`;
      else for (const one of v) head += `${name}: ${one}\r\n`;
    }
    const socket = this.socket;
    if (body === null) {
      if (!bodylessMethods.has(method)) head += "content-length: 0\r\n";
      socket.write(`${head}\r\n`, "latin1");
    } else if (Buffer.isBuffer(body)) {
      head += `content-length: ${body.length}\r\n\r\n`;
      if (body.length <= joinBodyBytes) {
        // One buffer, one write syscall, for the common small JSON request.
        const headBytes = Buffer.byteLength(head, "latin1");
        const out = Buffer.allocUnsafe(headBytes + body.length);
        out.write(head, 0, "latin1");
        body.copy(out, headBytes);
        socket.write(out);
      } else {
        socket.cork();
        socket.write(head, "latin1");
        socket.write(body);
        socket.uncork();
      }
    } else {
      const declared = headers["content-length"];
      const chunked = typeof declared !== "string";
      head += chunked ? "transfer-encoding: chunked\r\n\r\n" : `content-length: ${declared}\r\n\r\n`;
      socket.write(head, "latin1");
      this.upload(body, chunked);
    }
  }

  /** Streams the client's body to the worker, pausing the client while the worker's socket is full. */
  private upload(body: Readable, chunked: boolean): void {
    const socket = this.socket;
    this.uploading = body;
    const onDrain = () => body.resume();
    const onData = (chunk: Buffer) => {
      // A closed connection's write() says "full" too: pausing the client
      // then would stall its connection for good.
      if (chunk.length === 0 || this.closed) return;
      if (chunked) {
        socket.write(`${chunk.length.toString(16)}\r\n`, "latin1");
        socket.write(chunk);
        if (!socket.write("\r\n", "latin1")) body.pause();
      } else if (!socket.write(chunk)) body.pause();
    };
    const onEnd = () => {
      cleanup();
      if (chunked && !this.closed) socket.write("0\r\n\r\n");
    };
    const cleanup = () => {
      if (this.uploading === body) this.uploading = null;
      body.removeListener("data", onData);
      body.removeListener("end", onEnd);
      socket.removeListener("drain", onDrain);
      socket.removeListener("close", cleanup);
      // The worker answered (or failed) before the whole body was sent: the
      // rest is read and dropped, so the client finishes sending, gets its
      // answer and keeps its connection.
      if (!body.readableEnded) body.resume();
    };
    body.on("data", onData);
    body.once("end", onEnd);
    socket.on("drain", onDrain);
    socket.once("close", cleanup);
  }

  /**
   * Plain TCP reads land in buffers this connection reuses (node's onread):
   * no 64 KB allocation per read, which under large answers made V8 collect
   * every few tens of ms. A large answer is read 256 KB at a time (a quarter
   * of the syscalls and callbacks of 64 KB reads). A buffer whose bytes are
   * still referenced after a read (queued for a slow client) is left to its
   * holder and replaced.
   */
  private onRead(n: number, buf: Buffer): boolean {
    this.onBytes(n === buf.length ? buf : buf.subarray(0, n));
    const fed = this.fedHandler;
    this.fedHandler = null;
    if (fed !== null && fed.holdsBytes()) {
      if (this.armed === this.smallBuf) this.smallBuf = null;
      else if (this.armed === this.largeBuf) this.largeBuf = null;
    }
    // Backpressure pauses through socket.pause(), which onread sockets honour.
    return true;
  }

  /** Called by node after each read (and once at the start) for the next read's buffer. */
  private nextReadBuffer(): Buffer {
    const s = this.state;
    const large = this.call !== null && ((s === State.Length && this.left > smallReadBytes) || s === State.ChunkSize || s === State.ChunkData || s === State.UntilClose);
    if (large) {
      this.largeBuf ??= spareLarge.pop() ?? Buffer.allocUnsafe(largeReadBytes);
      return (this.armed = this.largeBuf);
    }
    if (this.largeBuf !== null) {
      if (spareLarge.length < maxSpareLarge) spareLarge.push(this.largeBuf);
      this.largeBuf = null;
    }
    this.smallBuf ??= Buffer.allocUnsafe(smallReadBytes);
    return (this.armed = this.smallBuf);
  }

  resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
    // The idle timer may have fired (and been ignored) during the pause.
    if (this.owner.timeoutMs > 0) this.socket.setTimeout(this.owner.timeoutMs);
  }

  /** Ends the current exchange with `err` and closes the connection. */
  fail(err: Error): void {
    const call = this.call;
    this.call = null;
    this.reusable = false;
    this.close();
    if (call !== null && !call.done) {
      call.done = true;
      call.handler.onError(err);
    }
  }

  /** Closes the connection for good (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.socket.destroy();
    this.owner.gone(this);
  }

  private onClose(): void {
    const call = this.call;
    if (call !== null) {
      const err = this.lastError;
      const e =
        err !== null && (err as NodeJS.ErrnoException).code !== undefined
          ? err
          : new UpstreamError("UPSTREAM_CLOSED", `worker ${this.owner.hostHeader} closed the connection ${this.gotAnswerBytes ? "in the middle of its answer" : "before answering"}`, { cause: err ?? undefined });
      this.fail(e);
    } else this.close();
  }

  private onEnd(): void {
    if (this.call !== null && this.state === State.UntilClose) {
      this.complete();
      return;
    }
    // FIN on an idle connection: the worker dropped it (its keep-alive
    // timeout); with a request on it: the answer is cut (reported on close).
    if (this.call === null) this.close();
  }

  /**
   * The answer ended: the connection goes back to the pool (or closes), then
   * the handler hears of it. `extraBytes`: the worker sent more than the
   * answer, so the connection is out of step and closes.
   */
  private complete(extraBytes = false): void {
    const call = this.call!;
    this.call = null;
    this.state = State.Idle;
    call.done = true;
    // The worker answered before the whole body was sent: the rest of the
    // body has nowhere to go, and the connection closes (which stops the upload).
    if (extraBytes || this.uploading !== null) this.reusable = false;
    if (this.reusable && !this.closed) {
      if (this.paused) this.resumeReading();
      this.owner.released(this);
    } else this.close();
    call.handler.onEnd();
  }

  private protocolError(message: string): void {
    this.fail(new UpstreamError("UPSTREAM_PROTOCOL", `worker ${this.owner.hostHeader}: ${message}`));
  }

  private onBytes(data: Buffer): void {
    const call = this.call;
    if (call === null) {
      // Bytes nobody asked for: the connection cannot be trusted any more.
      this.close();
      return;
    }
    this.gotAnswerBytes = true;
    let buf = data;
    let off = 0;
    if (this.partial !== null) {
      buf = Buffer.concat([this.partial, data]);
      this.partial = null;
    }
    const handler = call.handler;
    if (!this.owner.tls) this.fedHandler = handler; // asked in onRead (plain TCP only)
    while (off < buf.length) {
      // A handler callback failed or aborted the exchange: the rest is dropped.
      if (this.call !== call) return;
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(crlfcrlf, off);
          if (end < 0) {
            if (buf.length - off > maxHeadBytes) return this.protocolError(`answer head larger than ${maxHeadBytes} bytes`);
            this.partial = Buffer.from(buf.subarray(off)); // the read buffer is reused
            return;
          }
          if (end - off > maxHeadBytes) return this.protocolError(`answer head larger than ${maxHeadBytes} bytes`);
          const parsed = this.parseHead(buf.toString("latin1", off, end));
          off = end + 4;
          if (parsed === null) return;
          if (parsed.status < 200) continue; // 100 Continue, 103 Early Hints: the real answer follows
          try {
            handler.onHead(parsed.status, parsed.headers, parsed.length);
          } catch (err) {
            return this.fail(err as Error);
          }
          if (this.call !== call) break;
          if ((this.state as State) === State.Idle) {
            this.complete(off < buf.length);
            return;
          }
          continue;
        }
        case State.Length: {
          const n = Math.min(this.left, buf.length - off);
          const chunk = off === 0 && n === buf.length ? buf : buf.subarray(off, off + n);
          off += n;
          this.left -= n;
          if (!handler.onData(chunk)) this.pause();
          if (this.left === 0 && this.call === call) {
            this.complete(off < buf.length);
            return;
          }
          continue;
        }
        case State.UntilClose: {
          const chunk = off === 0 ? buf : buf.subarray(off);
          off = buf.length;
          if (!handler.onData(chunk)) this.pause();
          continue;
        }
        case State.ChunkSize: {
          const nl = this.lineEnd(buf, off, "chunk-size line");
          if (nl < 0) return;
          const line = buf.toString("latin1", off, nl);
          off = nl + 1;
          const semi = line.indexOf(";");
          const hex = (semi >= 0 ? line.slice(0, semi) : line).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.protocolError(`bad chunk size ${JSON.stringify(hex.slice(0, 20))}`);
          const size = parseInt(hex, 16);
          if (size === 0) this.state = State.Trailers;
          else {
            this.left = size;
            this.state = State.ChunkData;
          }
          continue;
        }
        case State.ChunkData: {
          const n = Math.min(this.left, buf.length - off);
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.left -= n;
          if (this.left === 0) this.state = State.ChunkEnd;
          if (!handler.onData(chunk)) this.pause();
          continue;
        }
        case State.ChunkEnd: {
          // The CRLF after a chunk's data (it may arrive split).
          const nl = buf.indexOf(10, off);
          if (nl < 0) {
            if (buf.length - off > 2) return this.protocolError("missing CRLF after chunk data");
            off = buf.length;
            continue;
          }
          if (nl - off > 1) return this.protocolError("missing CRLF after chunk data");
          off = nl + 1;
          this.state = State.ChunkSize;
          continue;
        }
        case State.Trailers: {
          // Trailer fields are dropped (the client's answer has none); an empty line ends the body.
          const nl = this.lineEnd(buf, off, "trailer line");
          if (nl < 0) return;
          const empty = nl === off || (nl === off + 1 && buf[off] === 13);
          off = nl + 1;
          if (empty) {
            this.complete(off < buf.length);
            return;
          }
          continue;
        }
        case State.Idle:
          return;
      }
    }
  }

  /**
   * The end (LF) of the line starting at `off`, or -1 when it is not all
   * here: then the start is kept for the next read (copied: the read buffer
   * is reused), or the exchange failed because the line is too long.
   */
  private lineEnd(buf: Buffer, off: number, what: string): number {
    const nl = buf.indexOf(10, off);
    if (nl >= 0) return nl;
    if (buf.length - off > maxLineBytes) this.protocolError(`${what} too long`);
    else this.partial = Buffer.from(buf.subarray(off));
    return -1;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  /** Parses a status line and headers; sets the body state. Returns null after a protocol error. */
  private parseHead(text: string): { status: number; headers: AnswerHeaders; length: number } | null {
    const lineEnd = text.indexOf("\r\n");
    const statusLine = lineEnd < 0 ? text : text.slice(0, lineEnd);
    // "HTTP/1.1 200 OK"
    if (!statusLine.startsWith("HTTP/1.") || statusLine.charCodeAt(8) !== 32) {
      this.protocolError(`not an HTTP/1.x answer: ${JSON.stringify(statusLine.slice(0, 40))}`);
      return null;
    }
    const status = Number(statusLine.slice(9, 12));
    if (!Number.isInteger(status) || status < 100 || status > 999 || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 32)) {
      this.protocolError(`bad status line ${JSON.stringify(statusLine.slice(0, 40))}`);
      return null;
    }
    if (status === 101) {
      this.protocolError("unexpected 101 Switching Protocols");
      return null;
    }
    const headers: AnswerHeaders = {};
    let contentLength = -1;
    let chunked = false;
    let hasTransferEncoding = false;
    let close = statusLine.charCodeAt(7) === 48; // HTTP/1.0: close unless told otherwise
    let connectionNames: string | null = null;
    let pos = lineEnd < 0 ? text.length : lineEnd + 2;
    while (pos < text.length) {
      let eol = text.indexOf("\r\n", pos);
      if (eol < 0) eol = text.length;
      const colon = text.indexOf(":", pos);
      if (colon < 0 || colon > eol || colon === pos || text.charCodeAt(pos) === 32 || text.charCodeAt(pos) === 9) {
        this.protocolError(`bad header line ${JSON.stringify(text.slice(pos, Math.min(eol, pos + 60)))}`);
        return null;
      }
      const name = lowerName(text.slice(pos, colon));
      const value = text.slice(colon + 1, eol).trim();
      pos = eol + 2;
      switch (name) {
        case "content-length": {
          const n = digits(value);
          if (n < 0 || (contentLength >= 0 && n !== contentLength)) {
            this.protocolError(`bad content-length ${JSON.stringify(value.slice(0, 40))}`);
            return null;
          }
          contentLength = n;
          break;
        }
        case "transfer-encoding":
          hasTransferEncoding = true;
          chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
          continue;
        case "connection": {
          const v = value.toLowerCase();
          if (v.includes("close")) close = true;
          else if (v.includes("keep-alive")) close = false;
          if (v !== "close" && v !== "keep-alive") connectionNames = connectionNames === null ? v : `${connectionNames},${v}`;
          continue;
        }
      }
      // The headers are for the router's client: one-hop headers stay here.
      if (hopByHop.has(name)) continue;
      if (name === "content-length") {
        headers[name] = value; // equal repeats (checked above) are one header
        continue;
      }
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (typeof prev === "string") headers[name] = [prev, value];
      else prev.push(value);
    }
    // Transfer-Encoding wins over Content-Length, which must then not be
    // passed on (RFC 9112 6.3): the client gets the decoded body.
    if (hasTransferEncoding) delete headers["content-length"];
    // Headers the worker's Connection header names are one-hop too (RFC 9110 7.6.1).
    if (connectionNames !== null) for (const n of connectionNames.split(",")) delete headers[n.trim()];
    if (status < 200) return { status, headers, length: -1 };
    if (close) this.reusable = false;
    if (this.headMethod || status === 204 || status === 304) {
      this.state = State.Idle;
    } else if (hasTransferEncoding) {
      // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
      contentLength = -1;
      if (chunked) this.state = State.ChunkSize;
      else {
        this.state = State.UntilClose;
        this.reusable = false;
      }
    } else if (contentLength >= 0) {
      this.left = contentLength;
      this.state = contentLength === 0 ? State.Idle : State.Length;
    } else {
      this.state = State.UntilClose;
      this.reusable = false;
    }
    return { status, headers, length: this.headMethod ? -1 : contentLength };
  }
}
