import { EventEmitter } from "node:events";
import type { OutgoingHttpHeaders } from "node:http";

/**
 * Stands where a client's response stands for the proxy (src/proxy/forward.ts
 * writes a worker's answer into it), for requests the router makes on a
 * client's behalf: the items of a rollout job. It keeps the answer (status,
 * headers, body) until the job writes it out as one result, and `cancel()`
 * acts as a client that went away: a queued request leaves the queue, a
 * running one has its worker connection closed.
 *
 * Only the part of ServerResponse the proxy and the data plane use is here.
 */
export class AnswerSink extends EventEmitter {
  statusCode = 0;
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  /** Bytes are copied on write, so none stay referenced in a connection's read buffer. */
  readonly writableLength = 0;
  readonly socket = null;
  headers: OutgoingHttpHeaders = {};
  readonly #chunks: Buffer[] = [];
  #bytes = 0;

  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    this.statusCode = status;
    this.headers = headers ?? {};
    this.headersSent = true;
    return this;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.headers[name.toLowerCase()] = value as string;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk);
    this.#chunks.push(b);
    this.#bytes += b.length;
    return true;
  }

  end(chunk?: Buffer | string): this {
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    if (this.writableEnded) return this;
    this.writableEnded = true;
    this.emit("finish");
    this.#close();
    return this;
  }

  destroy(_err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#close();
    return this;
  }

  /** The client's side of a cancel: like a client closing its connection. */
  cancel(): void {
    this.destroy();
  }

  #closed = false;
  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close");
  }

  /** The answer's body (its bytes are released from this sink). */
  takeBody(): Buffer {
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks.length = 0;
    this.#bytes = 0;
    return body;
  }

  get bodyBytes(): number {
    return this.#bytes;
  }
}
