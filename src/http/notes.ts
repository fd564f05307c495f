import type { Req } from "./body.js";
import type { Res } from "./respond.js";

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
  /** Answer bytes streamed from the worker. */
  answerBytes?: number;
  /**
   * The REST handler's end-of-request accounting (access log, metrics): the
   * request, its path and arrival time; the request is null once accounted.
   */
  restReq?: Req | null;
  restPath?: string;
  restStartedMs?: number;
}

export function notes(res: Res): ResponseNotes {
  return res as unknown as ResponseNotes;
}
