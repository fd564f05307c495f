/**
 * What a failed exchange with a worker means for what the router does next.
 * - `not_sent`: the connection was never made; no byte reached the worker,
 *   so any request may be retried elsewhere (even a video create).
 * - `maybe_sent`: the connection broke before an answer; the worker may have
 *   started the work. Idempotent-enough generation (images, rollout) is
 *   retried; creating a video job is not (it could exist twice).
 * - `timeout`: the worker went silent past --timeout.
 * - `status_5xx`: the worker answered 5xx and the router held the answer back
 *   to try another worker.
 */
export type FailureKind = "not_sent" | "maybe_sent" | "timeout" | "status_5xx";

// UPSTREAM_* come from the proxy's own client (h1-connection.ts), UND_ERR_*
// from undici (the router's control requests).
const notSentCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT", "UPSTREAM_CONNECT_TIMEOUT", "EADDRNOTAVAIL"]);
const timeoutCodes = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UPSTREAM_HEADERS_TIMEOUT", "UPSTREAM_BODY_TIMEOUT", "ETIMEDOUT"]);

/** Raised inside the proxy when a 5xx answer is held back for a retry. */
export class WorkerStatusError extends Error {
  constructor(readonly status: number) {
    super(`worker answered ${status}`);
  }
}

export function classifyFailure(err: unknown): FailureKind {
  if (err instanceof WorkerStatusError) return "status_5xx";
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (notSentCodes.has(code)) return "not_sent";
      if (timeoutCodes.has(code)) return "timeout";
    }
    e = (e as { cause?: unknown }).cause;
  }
  return "maybe_sent";
}
