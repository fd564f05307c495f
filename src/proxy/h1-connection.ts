import * as net from "node:net";
import * as tls from "node:tls";
import type { Readable } from "node:stream";
import { hopByHop } from "./headers.js";
import { classifyFailure } from "./network-errors.js";
import { contentLengthValue, endsInChunked, fieldLineColon, isOws, keepAliveTimeoutMs, parseChunkSize } from "./h1-syntax.js";

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
  /**
   * Set when the request was resent on a fresh connection (see
   * Connection.onClose): what ended the first try. Resent once at most.
   */
  firstError: Error | null = null;
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
  /** How long an idle connection may be reused. */
  readonly keepAliveMs: number;
  /** The connection finished an exchange and may serve another. */
  released(conn: Connection): void;
  /** The connection is closed for good. */
  gone(conn: Connection): void;
  /** Sends `call` again on a new connection, in the slot of the one that is about to close. */
  resend(call: Call): void;
}

const enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  /** The CR, then the LF, after a chunk's data. */
  ChunkCr,
  ChunkLf,
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

/** Whether `buf` has, from `off` on, an LF that is not the end of a CRLF. */
function bareLf(buf: Buffer, off: number): boolean {
  for (let i = buf.indexOf(10, off); i >= 0; i = buf.indexOf(10, i + 1)) if (i === off || buf[i - 1] !== 13) return true;
  return false;
}

/**
 * Subtracted from a worker's `Keep-Alive: timeout=`: the router stops reusing
 * the connection this long before the worker would close it, so a request
 * and the worker's close cannot cross on the wire.
 */
const keepAliveMarginMs = 1_000;

/** The three status digits of a status line, or -1. */
function statusDigits(text: string): number {
  let n = 0;
  for (let i = 9; i < 12; i++) {
    const c = text.charCodeAt(i) - 48;
    if (!(c >= 0 && c <= 9)) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Whether `s[start, end)` has no CR and no LF. */
function noLineBreak(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 13 || c === 10) return false;
  }
  return true;
}

/** `s` without leading and trailing SP/HTAB. */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

export class Connection {
  readonly socket: net.Socket;
  call: Call | null = null;
  /** When it went back to the pool (ms since epoch). */
  idleSince = 0;
  connected = false;
  /**
   * How long it may sit idle in the pool: the pool's limit, or less when the
   * worker announced a shorter `Keep-Alive: timeout=` (minus a margin).
   */
  idleLimitMs: number;
  /** Exchanges started on it; from the second on, it is a reused connection. */
  private exchanges = 0;
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
    this.idleLimitMs = owner.keepAliveMs;
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
    this.exchanges++;
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
      // A resent request whose fresh connection failed to connect may still
      // have reached the worker on the first one: the caller must hear that
      // (a "not sent" failure would let a video create run twice).
      call.handler.onError(call.firstError !== null && classifyFailure(err) === "not_sent" ? call.firstError : err);
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
      // A reused connection that closed before any answer byte: most likely
      // the worker dropped it as idle while the request was on its way (the
      // keep-alive race), so the request is sent again on a fresh connection,
      // once, when the router still holds every byte of it (a buffered body
      // or none; a streamed body is partly gone). Timeouts and aborts end
      // the exchange in fail() first and never come here.
      const body = call.req.body;
      if (!this.gotAnswerBytes && this.exchanges > 1 && call.firstError === null && !call.done && (body === null || Buffer.isBuffer(body))) {
        call.firstError = e;
        call.conn = null;
        this.call = null;
        this.reusable = false;
        // Before close(): the new connection takes this one's slot in the pool.
        this.owner.resend(call);
        this.close();
        return;
      }
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
    if (extraBytes || this.uploading !== null || this.idleLimitMs <= 0) this.reusable = false;
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
            // A head whose lines end in a bare LF never shows CRLFCRLF:
            // refused now, not when the worker gives up on the connection.
            if (bareLf(buf, off)) return this.protocolError("answer head line not ending in CRLF");
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
          if (nl === off || buf[nl - 1] !== 13) return this.protocolError("chunk-size line not ending in CRLF");
          const line = buf.toString("latin1", off, nl - 1);
          off = nl + 1;
          const size = parseChunkSize(line);
          if (size < 0) return this.protocolError(`bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
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
          if (this.left === 0) this.state = State.ChunkCr;
          if (!handler.onData(chunk)) this.pause();
          continue;
        }
        // The CRLF after a chunk's data, a byte at a time (it may arrive split): exactly CR LF.
        case State.ChunkCr: {
          if (buf[off++] !== 13) return this.protocolError("no CRLF after chunk data");
          this.state = State.ChunkLf;
          continue;
        }
        case State.ChunkLf: {
          if (buf[off++] !== 10) return this.protocolError("no CRLF after chunk data");
          this.state = State.ChunkSize;
          continue;
        }
        case State.Trailers: {
          // Trailer fields are checked like header fields, then dropped (the
          // client's answer has none); an empty line ends the body.
          const nl = this.lineEnd(buf, off, "trailer line");
          if (nl < 0) return;
          if (nl === off || buf[nl - 1] !== 13) return this.protocolError("trailer line not ending in CRLF");
          const empty = nl === off + 1;
          if (!empty) {
            const line = buf.toString("latin1", off, nl - 1);
            const colon = fieldLineColon(line, 0, line.length);
            // Content-Length in the trailers of a chunked answer is both framings at once.
            if (colon < 0 || (colon === 14 && line.toLowerCase().startsWith("content-length"))) return this.protocolError(`bad trailer line ${JSON.stringify(line.slice(0, 60))}`);
          }
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

  /**
   * Parses a status line and headers (RFC 9112, strict as llhttp: lines end
   * in CRLF exactly, names are tokens, values have no control characters, no
   * obs-fold); sets the body state. `text` is the head in latin1, one char
   * per byte, so values reach the client byte for byte. Returns null after a
   * protocol error.
   */
  private parseHead(text: string): { status: number; headers: AnswerHeaders; length: number } | null {
    const lineEnd = text.indexOf("\r\n");
    const statusEnd = lineEnd < 0 ? text.length : lineEnd;
    // "HTTP/1.1 200 OK", "HTTP/1.0 204", "HTTP/1.1 200 " (the reason is optional, any bytes but CR and LF)
    const minor = text.charCodeAt(7);
    if (!text.startsWith("HTTP/1.") || (minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) {
      this.protocolError(`not an HTTP/1.0 or 1.1 answer: ${JSON.stringify(text.slice(0, Math.min(statusEnd, 40)))}`);
      return null;
    }
    const status = statusDigits(text);
    if (status < 100 || (statusEnd > 12 && text.charCodeAt(12) !== 32) || !noLineBreak(text, 12, statusEnd)) {
      this.protocolError(`bad status line ${JSON.stringify(text.slice(0, Math.min(statusEnd, 40)))}`);
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
    let close = minor === 48; // HTTP/1.0: close unless told otherwise
    let connectionNames: string | null = null;
    let keepAliveMs = -1;
    let pos = statusEnd + 2;
    while (pos < text.length) {
      let eol = text.indexOf("\r\n", pos);
      if (eol < 0) eol = text.length;
      // A line starting with SP/HTAB (obs-fold) has no token name and fails here too.
      const colon = fieldLineColon(text, pos, eol);
      if (colon < 0) {
        this.protocolError(`bad header line ${JSON.stringify(text.slice(pos, Math.min(eol, pos + 60)))}`);
        return null;
      }
      // OWS is SP and HTAB only: String#trim() would also cut U+00A0, the
      // last byte of a UTF-8 "à" read as latin1.
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
      const name = lowerName(text.slice(pos, colon));
      const value = text.slice(vs, ve);
      pos = eol + 2;
      switch (name) {
        case "content-length": {
          // A repeated Content-Length, even an equal one, is refused, and so
          // is one next to Transfer-Encoding: both framings at once is how
          // answers are smuggled (RFC 9112 6.3 lets a client treat it as an
          // error; llhttp does).
          const n = contentLengthValue(text, vs, eol);
          if (n < 0 || contentLength >= 0 || hasTransferEncoding) {
            this.protocolError(`bad content-length ${JSON.stringify(value.slice(0, 40))}${hasTransferEncoding ? " next to transfer-encoding" : ""}`);
            return null;
          }
          contentLength = n;
          break;
        }
        case "transfer-encoding":
          if (contentLength >= 0) {
            this.protocolError("transfer-encoding next to content-length");
            return null;
          }
          // An empty value names no coding (llhttp ignores it too).
          if (vs === ve) continue;
          hasTransferEncoding = true;
          // The last coding of the last header decides (RFC 9112 6.3).
          chunked = endsInChunked(text, vs, eol);
          continue;
        case "connection": {
          const v = value.toLowerCase();
          if (v.includes("close")) close = true;
          else if (v.includes("keep-alive")) close = false;
          if (v !== "close" && v !== "keep-alive") connectionNames = connectionNames === null ? v : `${connectionNames},${v}`;
          continue;
        }
        case "keep-alive": {
          const ms = keepAliveTimeoutMs(value);
          if (ms >= 0) keepAliveMs = ms;
          continue;
        }
      }
      // The headers are for the router's client: one-hop headers stay here.
      if (hopByHop.has(name)) continue;
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (typeof prev === "string") headers[name] = [prev, value];
      else prev.push(value);
    }
    // Headers the worker's Connection header names are one-hop too (RFC 9110 7.6.1).
    if (connectionNames !== null) for (const n of connectionNames.split(",")) delete headers[trimOws(n)];
    if (status < 200) return { status, headers, length: -1 };
    if (close) this.reusable = false;
    // The worker closes idle connections after this: never reuse one that late.
    if (keepAliveMs >= 0) this.idleLimitMs = Math.min(this.owner.keepAliveMs, keepAliveMs - keepAliveMarginMs);
    if (this.headMethod || status === 204 || status === 304) {
      this.state = State.Idle;
    } else if (hasTransferEncoding) {
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
