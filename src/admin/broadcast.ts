import { describeNetworkError } from "../health/probe.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Worker } from "../registry/worker.js";

/** One worker's answer to a call the router made on the pool's behalf (a weight load, sleep, wake, checksum). */
export interface WorkerAnswer {
  workerUrl: string;
  /** The worker's HTTP status; 502 when it never answered. */
  status: number;
  /** Its JSON answer (or `{raw}` / `{error}` when it sent none). */
  body: unknown;
}

/** Posts one body to each target at once; never throws for a worker's failure. */
export type Broadcast = (path: string, body: Buffer | string, targets: readonly Worker[]) => Promise<WorkerAnswer[]>;

/**
 * `timeoutMs` bounds each call: a worker that never answers must not keep a
 * refit, and the requests it holds, open.
 */
export function createBroadcast(upstream: Upstream, timeoutMs: number): Broadcast {
  return (path, body, targets) =>
    Promise.all(
      targets.map(async (w): Promise<WorkerAnswer> => {
        try {
          const answer = await upstream.requestJson(w.url, "POST", path, { body, timeoutMs });
          return { workerUrl: w.url, status: answer.status, body: answer.body };
        } catch (err) {
          return { workerUrl: w.url, status: 502, body: { error: `worker request failed: ${describeNetworkError(err)}` } };
        }
      }),
    );
}

/** A worker did what it was asked when it answered 200 and did not say success:false. */
export function answerSucceeded(a: WorkerAnswer): boolean {
  return a.status === 200 && !(a.body !== null && typeof a.body === "object" && (a.body as { success?: unknown }).success === false);
}

/** The worker's own words for what went wrong (message, detail or error), else its whole answer. */
export function answerMessage(a: WorkerAnswer): string {
  const b = a.body as Record<string, unknown> | null;
  const m = b?.message ?? b?.detail ?? b?.error ?? b?.raw;
  return typeof m === "string" ? m : JSON.stringify(m ?? b) ?? "";
}
