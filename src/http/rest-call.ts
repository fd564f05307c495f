import type { ServerResponse } from "node:http";
import { NotesRecord, type AnswerSink } from "../dispatch/answer-sink.js";
import type { ErrorShape } from "../error-body.js";
import type { AnswerHeaders } from "../proxy/h1-connection.js";
import type { Req } from "./body.js";
import type { Res } from "./respond.js";

/**
 * One REST request as the REST front door keeps it: the exchange, what the
 * route table said of it, and the notes the dispatch core leaves for the
 * access log and metrics. It is also where a worker's answer goes: the
 * {@link AnswerSink} over the client's response.
 */
export class RestCall extends NotesRecord implements AnswerSink {
  /** Which error body the matched route answers with. */
  errorShape: ErrorShape = "original";
  /** The matched route's metrics label. */
  routeLabel = "other";
  /** The access log and metrics have counted it. */
  accounted = false;
  /** An HTTP/1.1 response (whose socket node corks on each write). */
  readonly h1: boolean;

  constructor(
    readonly req: Req,
    readonly res: Res,
    /** The path without its query. */
    readonly path: string,
    /** The request's id (the client's `x-request-id`, or one the router made). */
    readonly requestId: string,
    /** performance.now() at arrival. */
    readonly startedMs: number,
  ) {
    super();
    this.h1 = "shouldKeepAlive" in res;
  }

  get headSent(): boolean {
    return this.res.headersSent;
  }

  get closed(): boolean {
    return this.res.destroyed;
  }

  head(status: number, headers: AnswerHeaders): void {
    this.res.writeHead(status, headers);
  }

  chunk(data: Buffer): boolean {
    // Both response kinds write the same way; one type keeps the call simple.
    const res = this.res as ServerResponse;
    const ok = res.write(data);
    // node corks the socket on each write until the next tick; uncorked
    // now, the chunk leaves at once, and when the kernel took all of it the
    // connection may reuse its read buffer for the next read (holdsBytes).
    if (this.h1) {
      const socket = res.socket;
      if (socket !== null && socket.writableCorked > 0) socket.uncork();
    }
    return ok;
  }

  end(last: Buffer | null): void {
    if (last !== null) (this.res as ServerResponse).end(last);
    else this.res.end();
  }

  abort(error: Error): void {
    this.res.destroy(error);
  }

  holdsBytes(): boolean {
    // Bytes written stay referenced while they wait for the client (counted
    // in writableLength, HTTP/1.1 and HTTP/2 alike; a response without it
    // is assumed to hold them).
    const queued = (this.res as ServerResponse).writableLength;
    return typeof queued !== "number" || queued > 0;
  }

  onClose(listener: () => void): void {
    this.res.once("close", listener);
  }

  offClose(listener: () => void): void {
    this.res.removeListener("close", listener);
  }

  onceDrain(listener: () => void): void {
    this.res.once("drain", listener);
  }
}
