import type { Req } from "./body.js";
import type { ErrorShape, Res } from "./respond.js";

/**
 * Facts about an exchange that the data plane learns and the access log and
 * metrics report when the answer ends. Kept on the response object itself so
 * no per-request context has to be allocated and threaded through.
 */
export interface ResponseNotes {
  /** The worker that answered (last one tried). */
  workerUrl?: string;
  /** Workers tried after the first. */
  retries?: number;
  /** Milliseconds the request waited in the router's queue before its (last) worker took it. */
  queueMs?: number;
  /** Milliseconds from dispatch to the worker's answer head (the generation, for a worker that answers when done). */
  serviceMs?: number;
  /** Answer bytes streamed from the worker. */
  answerBytes?: number;
  /**
   * The REST handler's end-of-request accounting (access log, metrics): the
   * request, its path and arrival time; the request is null once accounted.
   */
  restReq?: Req | null;
  restPath?: string;
  restStartedMs?: number;
  /** The request's id (the client's `x-request-id`, or one the router made). */
  requestId?: string;
  /** The router error the exchange was answered with, for the access log. */
  errorCode?: string;
  /** Which error body this route answers with (set once per request by the REST handler). */
  errorShape?: ErrorShape;
  /** The matched route's metrics label. */
  routeLabel?: string;
}

export function notes(res: Res): ResponseNotes {
  return res as unknown as ResponseNotes;
}
