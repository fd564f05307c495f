import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import type { AnswerSink } from "../dispatch/answer-sink.js";
import type { InFlight, Severable } from "../dispatch/in-flight.js";
import type { AnswerHeaders, Call, H1Handler } from "./h1-connection.js";
import type { H1Client } from "./h1-pool.js";
import { WorkerStatusError } from "./network-errors.js";

/**
 * Sees a worker's answer (status, leading bytes) before the client sees its
 * end. It gets the worker's origin, so a route's hook is one function made
 * once, not a closure per request.
 */
/** What a route learns from a worker's answer before the client sees its end; a string it returns (an id) comes back in the outcome. */
export type AnswerHook = (origin: string, status: number, captured: Buffer) => string | void;

/** What happened to one proxied exchange; the caller decides what follows. */
export type ForwardOutcome =
  /** `headAtMs`: when the answer's head arrived (performance.now()); workers send it when the output is done. */
  | { kind: "completed"; status: number; bytes: number; headAtMs: number; learned: string | undefined }
  /** Nothing reached the client: the caller may retry elsewhere or answer an error. */
  | { kind: "failed_before_response"; error: Error }
  /** The client got headers and part of the body; its connection was closed. */
  | { kind: "failed_mid_response"; status: number; error: Error }
  | { kind: "client_aborted" };

export interface ForwardRequest {
  origin: string;
  /** Path and query on the worker. */
  path: string;
  method: string;
  headers: Record<string, string | string[]>;
  /** The client's body stream, a buffered body, or null. */
  body: Readable | Buffer | null;
  /** Added to the answer as `x-request-id`. */
  requestId: string;
  /** Added to the answer as `x-worker-id` (the worker's REST id, made once per worker) when set. */
  workerId?: string;
  /** Added to the answer as `x-weight-version` when not null. */
  weightVersion?: string | null;
  /** Keep up to this many leading answer bytes for {@link beforeEnd}. */
  captureBytes?: number;
  /**
   * Runs after the last byte arrived and before the client sees the end, so
   * that state derived from the answer (a video id's owner) exists before the
   * client can ask about it.
   */
  beforeEnd?: AnswerHook;
  /**
   * Hold back a 5xx answer (nothing reaches the client) and report
   * `failed_before_response` with a WorkerStatusError, so the caller can try
   * another worker. Off on the last attempt: then the worker's answer passes
   * through unchanged.
   */
  holdBack5xx?: boolean;
  /**
   * Filled with the answer size before the client sees the end, for the
   * access log and metrics (whose 'close' listeners run before the caller's
   * await continues).
   */
  stats?: { answerBytes: number };
  /**
   * Most bytes a streamed body without content-length (chunked, HTTP/2) may
   * carry: past it the exchange ends with {@link BodyLimitExceeded}. A
   * declared length is the caller's to check before forwarding.
   */
  maxBodyBytes?: number;
  /**
   * The router's open generation exchanges (dispatch/in-flight.ts): this
   * one is in it until it settles, and can be severed from there (its
   * outcome then carries the severing error).
   */
  inFlight?: InFlight;
}

/** The client's streamed body went past {@link ForwardRequest.maxBodyBytes}; nothing about the worker. */
export class BodyLimitExceeded extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds the limit of ${limit} bytes`);
  }
}

const empty = Buffer.alloc(0);

class ClientAbort extends Error {
  constructor() {
    super("client closed the connection");
  }
}

/**
 * One request/answer exchange on the data plane's HTTP/1.1 client. It
 * writes worker bytes straight into the answer's sink and pauses the worker
 * when the receiver is slow, so memory stays flat whatever the size. Methods are
 * on the prototype: no closure per chunk.
 */
class Exchange implements H1Handler, Severable {
  call: Call | null = null;
  status = 0;
  bytes = 0;
  settled = false;
  clientGone = false;
  chunks: Buffer[] | null;
  captureLeft: number;
  /** content-length of the worker's answer, -1 when it streams without one. */
  expectedBytes = -1;
  /** The whole answer, when it arrived in one chunk; sent with the sink's end. */
  whole: Buffer | null = null;
  /** Made on the first backpressure pause only: most answers never need it. */
  resume: (() => void) | null = null;
  readonly onClientClose: () => void;
  awaitingDrain = false;
  headAtMs = 0;
  learned: string | undefined = undefined;

  constructor(
    readonly sink: AnswerSink,
    readonly req: ForwardRequest,
    readonly settle: (o: ForwardOutcome) => void,
  ) {
    this.captureLeft = req.captureBytes ?? 0;
    this.chunks = this.captureLeft > 0 ? [] : null;
    this.onClientClose = () => {
      if (this.settled) return;
      this.clientGone = true;
      this.call?.abort(new ClientAbort());
    };
    sink.onClose(this.onClientClose);
    req.inFlight?.add(this);
  }

  /** Ends the exchange from outside (InFlight.severAll): the worker's request is aborted; `error` is the outcome's. */
  sever(error: Error): void {
    if (this.settled) return;
    this.call?.abort(error);
  }

  onHead(statusCode: number, headers: AnswerHeaders, contentLength: number): void {
    if (statusCode >= 500 && this.req.holdBack5xx) throw new WorkerStatusError(statusCode);
    this.expectedBytes = contentLength;
    // The parsed headers are already the client's (hop-by-hop ones removed).
    headers["x-request-id"] = this.req.requestId;
    const version = this.req.weightVersion;
    if (version != null) headers["x-weight-version"] = version;
    const workerId = this.req.workerId;
    if (workerId !== undefined) headers["x-worker-id"] = workerId;
    // A header node refuses to write (a worker's bad header) throws here:
    // nothing reached the client yet, so it counts as a failure before the answer.
    this.sink.head(statusCode, headers);
    this.status = statusCode;
    this.headAtMs = performance.now();
  }

  onData(chunk: Buffer): boolean {
    // A whole answer in its first chunk (the common small JSON answer) is
    // kept for the sink's end: head and body leave in one socket write.
    if (this.bytes === 0 && chunk.length === this.expectedBytes) {
      this.bytes = chunk.length;
      this.capture(chunk);
      this.whole = chunk;
      return true;
    }
    this.bytes += chunk.length;
    this.capture(chunk);
    if (this.sink.chunk(chunk)) return true;
    // One 'drain' listener at a time, however many chunks one read held.
    if (!this.awaitingDrain) {
      this.awaitingDrain = true;
      this.sink.onceDrain(
        (this.resume ??= () => {
          this.awaitingDrain = false;
          this.call?.resume();
        }),
      );
    }
    return false;
  }

  holdsBytes(): boolean {
    // Captured bytes are held until the answer ends; written ones while they
    // wait for a slow receiver.
    if (this.chunks !== null && this.chunks.length > 0) return true;
    return this.sink.holdsBytes();
  }

  capture(chunk: Buffer): void {
    if (this.chunks !== null && this.captureLeft > 0) {
      // A chunk kept whole is a view of the connection's read buffer, which
      // holdsBytes() then keeps from being reused. A few KB of a large read
      // are copied instead, so the large buffer can be reused. (Copying every
      // small answer instead cost a new ArrayBuffer per request, and those
      // were promoted to V8's old space in bulk: 2 MB per scavenge, 6-10 ms
      // scavenge pauses, at 10k requests/s.)
      const part = chunk.length <= this.captureLeft ? chunk : Buffer.from(chunk.subarray(0, this.captureLeft));
      this.chunks.push(part);
      this.captureLeft -= part.length;
    }
  }

  onEnd(): void {
    if (this.req.stats) this.req.stats.answerBytes = this.bytes;
    if (this.req.beforeEnd) {
      try {
        const c = this.chunks;
        this.learned = this.req.beforeEnd(this.req.origin, this.status, c === null || c.length === 0 ? empty : c.length === 1 ? c[0]! : Buffer.concat(c)) ?? undefined;
      } catch {
        // Bookkeeping must never break an answer that already arrived.
      }
    }
    this.chunks = null;
    this.finish({ kind: "completed", status: this.status, bytes: this.bytes, headAtMs: this.headAtMs, learned: this.learned });
    this.sink.end(this.whole);
  }

  onError(error: Error): void {
    if (this.clientGone || error instanceof ClientAbort) {
      this.finish({ kind: "client_aborted" });
      return;
    }
    if (this.status === 0 && !this.sink.headSent) {
      this.finish({ kind: "failed_before_response", error });
      return;
    }
    this.finish({ kind: "failed_mid_response", status: this.status, error });
    // Half an answer must not look like a whole one: cut the connection.
    this.sink.abort(error);
  }

  finish(outcome: ForwardOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.sink.offClose(this.onClientClose);
    this.req.inFlight?.delete(this);
    this.settle(outcome);
  }
}

/** Streams one request to a worker and its answer into `sink`. */
export function forward(client: H1Client, sink: AnswerSink, req: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise<ForwardOutcome>((resolve) => {
    const exchange = new Exchange(sink, req, resolve);
    const call = client.request(req.origin, req, exchange);
    exchange.call = call;
    const body = req.body;
    if (req.maxBodyBytes !== undefined && body !== null && !Buffer.isBuffer(body) && req.headers["content-length"] === undefined) limitBody(body, req.maxBodyBytes, call);
    // The client left before the request went out.
    if (exchange.clientGone || sink.closed) call.abort(new ClientAbort());
  });
}

/**
 * Counts a streamed body of unknown length as it goes to the worker and ends
 * the exchange once it passes `limit`: a client cannot push an endless
 * chunked body through the router. Only bodies without content-length pay
 * for this listener.
 */
function limitBody(body: Readable, limit: number, call: Call): void {
  let seen = 0;
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen <= limit) return;
    stop();
    call.abort(new BodyLimitExceeded(limit));
  };
  const stop = () => {
    body.removeListener("data", onData);
    body.removeListener("end", stop);
    body.removeListener("close", stop);
  };
  body.on("data", onData);
  body.once("end", stop);
  body.once("close", stop);
}
