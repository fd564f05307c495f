import type { IncomingHttpHeaders } from "node:http";

/** Answer headers as one string per lower-case name (repeated ones joined with ", "). */
export function flattenHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) flat[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return flat;
}

/** The facts the router adds to every answer it proxies. */
export interface AnswerFacts {
  /** `X-Request-Id`: the caller's, or the one the router made; null when absent. */
  requestId: string | null;
  /** `X-Weight-Version`: the weights of the worker that made a generation answer; null when absent. */
  weightVersion: string | null;
  /** `X-Worker-Id`: the answering worker's `worker_id` (URL-encoded URL, as in `GET /workers`); null when absent. */
  workerId: string | null;
}

export function answerFacts(flat: Readonly<Record<string, string>>): AnswerFacts {
  return {
    requestId: flat["x-request-id"] ?? null,
    weightVersion: flat["x-weight-version"] ?? null,
    workerId: flat["x-worker-id"] ?? null,
  };
}
