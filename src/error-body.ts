import type { RouterError } from "./errors.js";

/** Which error body a route answers with; see {@link errorBody}. */
export type ErrorShape = "original" | "openai";

/** OpenAI's `type` for each status class, so OpenAI clients map errors as usual. */
function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 409) return "conflict_error";
  if (status >= 500) return status === 503 ? "service_unavailable_error" : "server_error";
  return "invalid_request_error";
}

/**
 * The router's own errors as JSON, for REST answers and rollout results.
 * Worker answers never pass through here; they reach the client unchanged.
 * Two shapes, chosen by route:
 * - the original router's routes keep its shape, `{"error": "<message>"}`
 *   with a string (its clients test `"blocked" in resp.json()["error"]`), and
 *   our stable code beside it: `{"error": "...", "code": "no_healthy_workers"}`;
 * - routes that are ours alone (refit, per-worker tensor updates, rollouts)
 *   use OpenAI's error object: `{"error": {"message", "type", "code", "param"}}`.
 */
export function errorBody(err: RouterError, shape: ErrorShape = "original"): Record<string, unknown> {
  const { param, retryAfterS, ...rest } = err.details as { param?: string; retryAfterS?: number };
  if (shape === "original") return param === undefined ? { error: err.message, code: err.code, ...rest } : { error: err.message, code: err.code, param, ...rest };
  return { error: { message: err.message, type: errorType(err.status), code: err.code, param: param ?? null, ...rest } };
}
