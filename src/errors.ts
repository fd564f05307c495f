/**
 * The router's one error type. Every error the router itself produces (as
 * opposed to a worker's answer, which passes through unchanged) is a
 * RouterError with a code from the closed set below; the REST layer turns it
 * into an answer in one place (`http/respond.ts`, its JSON from
 * `error-body.ts`, which rollout results use too) and the RPC layer into a
 * Connect code.
 */
export const errorCodes = {
  // 400
  invalid_json: 400,
  invalid_request: 400,
  invalid_worker_url: 400,
  unknown_field: 400,
  no_video_workers: 400,
  no_mesh_workers: 400,
  // 401
  unauthenticated: 401,
  // 404
  not_found: 404,
  worker_not_found: 404,
  video_not_found: 404,
  image_not_found: 404,
  mesh_not_found: 404,
  rollout_not_found: 404,
  // 405
  method_not_allowed: 405,
  // 409
  refit_in_progress: 409,
  no_refit_in_progress: 409,
  weight_version_mismatch: 409,
  weight_version_unchanged: 409,
  // 413
  body_too_large: 413,
  // 500
  internal: 500,
  // 502
  upstream_unreachable: 502,
  upstream_failed: 502,
  // 503
  no_healthy_workers: 503,
  queue_full: 503,
  queue_timeout: 503,
  shutting_down: 503,
  state_store_unavailable: 503,
  // 504
  upstream_timeout: 504,
  drain_timeout: 504,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class RouterError extends Error {
  override readonly name = "RouterError";
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra machine-readable facts (e.g. `param`, `retryAfterS`). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = errorCodes[code];
    this.details = options.details ?? {};
  }

  /** Turns anything thrown into a RouterError, keeping the original as `cause`. */
  static from(reason: unknown, fallback: ErrorCode = "internal"): RouterError {
    if (reason instanceof RouterError) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new RouterError(fallback, message, { cause: reason });
  }
}
