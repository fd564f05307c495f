import type { FailureKind } from "./network-errors.js";

/**
 * What a route allows after a worker failed before answering:
 * - `generation`: images and rollout generation: any failure before the
 *   answer (the worker may have started; generating twice is harmless);
 * - `create_once`: a video create: only if no byte reached the first worker
 *   (the job could otherwise exist twice);
 * - `none`: everything else (forwarded unknown paths).
 */
export type RetryClass = "generation" | "create_once" | "none";

/** What the router knows of one attempt when deciding whether another may follow. */
export interface AttemptFacts {
  /** 0 for the first worker tried. */
  attempt: number;
  /** --max-retries. */
  maxRetries: number;
  /** Since the request arrived. */
  elapsedMs: number;
  /** --retry-budget: no retry starts later than this. */
  retryBudgetMs: number;
  /** The body is held by the router (buffered, or none), so a second worker can get the same bytes. */
  replayableBody: boolean;
  /** Another eligible worker exists that this request has not tried. */
  otherWorker: boolean;
}

/**
 * Whether a failure of this attempt could be followed by another: decided
 * before the attempt, because it also decides whether a worker's 5xx is held
 * back from the client (it is, only when another worker can be tried).
 */
export function mayTryAgain(route: RetryClass, facts: AttemptFacts): boolean {
  return (
    route !== "none" &&
    facts.replayableBody &&
    facts.attempt < facts.maxRetries &&
    facts.elapsedMs < facts.retryBudgetMs &&
    facts.otherWorker
  );
}

/**
 * The retry decision, pure: after a failure before any answer byte reached
 * the client, try another worker or answer the client with the failure.
 * Table-tested in test/retry-decision.test.ts.
 */
export function decideRetry(failure: FailureKind, route: RetryClass, facts: AttemptFacts): "retry" | "answer" {
  if (!mayTryAgain(route, facts)) return "answer";
  if (route === "generation") return "retry";
  // create_once: only when nothing can have reached the worker.
  return failure === "not_sent" ? "retry" : "answer";
}
