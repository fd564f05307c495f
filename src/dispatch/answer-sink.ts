import type { AnswerHeaders } from "../proxy/h1-connection.js";

/**
 * Where a worker's answer goes: a client's HTTP response (the REST front
 * door) or a rollout item's result. The proxy writes into it and nothing
 * else, so the dispatch core never sees a transport.
 *
 * Calls come in this order: head, chunk*, end; or abort at any point. A
 * sink whose receiver goes away (a client closes its connection, a rollout
 * item is cancelled) reports it to its close listeners.
 */
export interface AnswerSink {
  /** The head went out: nothing but the rest of this answer can follow. */
  readonly headSent: boolean;
  /** The receiver went away; nothing written now reaches it. */
  readonly closed: boolean;
  /** The answer's status and headers; throws when they cannot be sent (then nothing went out). */
  head(status: number, headers: AnswerHeaders): void;
  /** A body chunk (a view of a connection's read buffer); false when the receiver is full: wait for {@link onceDrain}. */
  chunk(data: Buffer): boolean;
  /** The answer is complete; `last` is its remaining bytes (the whole body when it came in one read). */
  end(last: Buffer | null): void;
  /** The answer was cut off after it began: half an answer must not look like a whole one. */
  abort(error: Error): void;
  /** Written bytes are still referenced (queued for a slow receiver), so a connection must not reuse its read buffer. */
  holdsBytes(): boolean;
  /** `listener` runs once when the receiver goes away (or the answer ended). */
  onClose(listener: () => void): void;
  offClose(listener: () => void): void;
  /** `listener` runs once when a full receiver can take more. */
  onceDrain(listener: () => void): void;
}

/**
 * What the access log, the metrics and a rollout result report about one
 * request, filled in by the dispatch core as it goes.
 */
export interface RequestNotes {
  /** The worker that answered (the last one tried). */
  workerUrl: string | undefined;
  /** Workers tried after the first. */
  retries: number;
  /** Milliseconds the request waited in the router's queue before its (last) worker took it. */
  queueMs: number | undefined;
  /** Milliseconds from dispatch to the worker's answer head (the generation, for a worker that answers when done). */
  serviceMs: number | undefined;
  /** Answer bytes streamed from the worker (set before the receiver sees the end). */
  answerBytes: number;
  /** The router error the request ended with. */
  errorCode: string | undefined;
  /** Set when a copy of the request ran on another worker (hedged tails, admission/hedge.ts). */
  hedge: HedgeNote | undefined;
}

/** A hedged request: the copy's worker, and whose answer the receiver got. */
export interface HedgeNote {
  /** The worker the copy ran on. */
  readonly worker: string;
  /** `original` or `copy`; `none` when neither answer reached the receiver (it left, or both failed). */
  winner: "original" | "copy" | "none";
}

/**
 * The notes as a receiver starts them: the REST call and a rollout item's
 * answer both extend it, so the fields the core writes are declared once.
 */
export class NotesRecord implements RequestNotes {
  workerUrl: string | undefined = undefined;
  retries = 0;
  queueMs: number | undefined = undefined;
  serviceMs: number | undefined = undefined;
  answerBytes = 0;
  errorCode: string | undefined = undefined;
  hedge: HedgeNote | undefined = undefined;
}
