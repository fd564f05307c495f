import { NotesRecord, type AnswerSink } from "../dispatch/answer-sink.js";
import type { AnswerHeaders } from "../proxy/h1-connection.js";

/**
 * Where a rollout item's answer goes: it keeps the worker's answer (status,
 * headers, body) until the job writes it out as one result, and carries the
 * notes the dispatch core leaves (worker, retries, queue and service time).
 * `cancel()` is the item's receiver going away: a queued request leaves
 * the queue, a running one has its worker connection closed.
 */
export class ItemAnswer extends NotesRecord implements AnswerSink {

  status = 0;
  headers: AnswerHeaders = {};
  headSent = false;
  /** Cancelled, or cut off mid-answer. */
  closed = false;
  /** The answer arrived whole. */
  ended = false;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #closeListeners: (() => void)[] = [];
  /** Told the status of every answer that ends whole, before its worker is released. */
  readonly #onEnd: (status: number) => void;

  constructor(onEnd: (status: number) => void) {
    super();
    this.#onEnd = onEnd;
  }

  head(status: number, headers: AnswerHeaders): void {
    this.status = status;
    this.headers = headers;
    this.headSent = true;
  }

  chunk(data: Buffer): boolean {
    // Copied: a chunk is a view of a connection's read buffer, which must not stay referenced.
    this.#chunks.push(Buffer.from(data));
    this.#bytes += data.length;
    return true;
  }

  end(last: Buffer | null): void {
    if (last !== null && last.length > 0) this.chunk(last);
    if (this.ended) return;
    this.ended = true;
    this.#onEnd(this.status);
    this.#fireClose();
  }

  abort(_error: Error): void {
    this.cancel();
  }

  /** The item's receiver goes away, as a client closing its connection. */
  cancel(): void {
    if (this.closed) return;
    this.closed = true;
    this.#fireClose();
  }

  holdsBytes(): boolean {
    return false;
  }

  onClose(listener: () => void): void {
    this.#closeListeners.push(listener);
  }

  offClose(listener: () => void): void {
    const i = this.#closeListeners.indexOf(listener);
    if (i >= 0) this.#closeListeners.splice(i, 1);
  }

  onceDrain(_listener: () => void): void {
    // Never full: chunk() always takes everything.
  }

  #fireClose(): void {
    const listeners = this.#closeListeners;
    this.#closeListeners = [];
    for (const l of listeners) l();
  }

  /** The answer's body (its bytes are released from this answer). */
  takeBody(): Buffer {
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks.length = 0;
    this.#bytes = 0;
    return body;
  }
}
