import type { Readable } from "node:stream";
import type { Ticket } from "../admission/admission.js";
import type { AnswerHook } from "../proxy/forward.js";
import type { RetryClass } from "../proxy/retry-decision.js";
import type { RouteKind } from "../scheduler/request-facts.js";
import type { AnswerSink, RequestNotes } from "./answer-sink.js";

/** What a route is to the dispatch core; one per route, built at startup. */
export interface RouteSpec {
  /** Which workers may serve it (image, video, any generation, anything). */
  readonly kind: RouteKind;
  readonly retry: RetryClass;
  /** Leading answer bytes kept for {@link onAnswer}. */
  readonly capture: number;
  /** What the route does with a worker's answer before the receiver sees its end. */
  readonly onAnswer?: AnswerHook;
}

/**
 * One request as the dispatch core carries it from attempt to attempt,
 * made by a front door (REST, a rollout item): what to send, where the
 * answer goes, and the notes it leaves for whoever reports on it.
 */
export interface RequestContext {
  /** The client's `x-request-id`, or one the front door made. */
  readonly requestId: string;
  readonly route: RouteSpec;
  readonly method: string;
  /** Path and query on the worker. */
  readonly path: string;
  /** Headers sent to the worker (hop-by-hop ones already removed). */
  readonly headers: Record<string, string | string[]>;
  /** The body, when the router holds it: the same bytes can go to a second worker. */
  readonly bodyBytes: Buffer | null;
  /** A body streamed from the client once (never retried elsewhere); null when held or absent. */
  readonly bodyStream: Readable | null;
  /** What admission plans with (model, request facts, workers tried); null for a request to one given worker. */
  readonly ticket: Ticket | null;
  readonly sink: AnswerSink;
  readonly notes: RequestNotes;
  /** Date.now() at arrival: the retry budget counts from here. */
  readonly arrivedMs: number;
  /** Fires when the sink's receiver goes away; made the first time the request must wait. */
  signal: AbortSignal | null;
}

/** A request admission places (a generation route, a rollout item): it has a ticket. */
export type PlannedContext = RequestContext & { readonly ticket: Ticket };

/** How a dispatched request ended, when it did not end with a RouterError. */
export type DispatchResult =
  /** A worker's answer reached the sink whole (any status: a worker's 4xx or 5xx passes through). */
  | { readonly kind: "answered"; readonly status: number }
  /** The answer began and was cut off (the worker failed mid-answer). */
  | { readonly kind: "cut_off" }
  /** The receiver went away before the answer was complete. */
  | { readonly kind: "receiver_gone" };
