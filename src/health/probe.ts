import { classifyFailure } from "../proxy/network-errors.js";
import type { Upstream } from "../proxy/upstream.js";
import { taskTypeSupportsVideo, type WorkerCapabilities } from "../registry/worker.js";

/** Why a `GET /health` failed; `refused` when nothing listens at the URL (the process is gone). */
export interface ProbeProblem {
  message: string;
  refused: boolean;
}

/** Result of one `GET /health`: null when healthy, else why not. */
export async function probeHealth(upstream: Upstream, url: string, timeoutMs: number): Promise<ProbeProblem | null> {
  try {
    const answer = await upstream.requestJson(url, "GET", "/health", { timeoutMs });
    return answer.status === 200 ? null : { message: `GET /health answered ${answer.status}`, refused: false };
  } catch (err) {
    return { message: `GET /health failed: ${describeNetworkError(err)}`, refused: classifyFailure(err) === "not_sent" };
  }
}

/**
 * Reads the worker's `/v1/models` card: its task type decides whether video
 * requests may go there, and `created` (the process start time) tells a
 * restarted process apart from the one registered.
 */
export async function probeCapabilities(upstream: Upstream, url: string, timeoutMs: number): Promise<WorkerCapabilities> {
  const answer = await upstream.requestJson(url, "GET", "/v1/models", { timeoutMs });
  if (answer.status !== 200) throw new Error(`GET /v1/models answered ${answer.status}`);
  const data = (answer.body as { data?: unknown } | null)?.data;
  const cards = Array.isArray(data) ? data.filter((c): c is Record<string, unknown> => typeof c === "object" && c !== null) : [];
  const first = cards[0];
  const taskType = typeof first?.task_type === "string" ? first.task_type.toUpperCase() : null;
  const created = first?.created;
  return {
    taskType,
    videoSupport: taskTypeSupportsVideo(taskType),
    models: cards.map((c) => c.id).filter((id): id is string => typeof id === "string"),
    // Raw: only a value seen twice in a row is trusted as a process
    // fingerprint (the health checker decides; SGLang's `created` is the
    // request time and never is).
    instanceFingerprint: typeof created === "number" || typeof created === "string" ? String(created) : null,
  };
}

/** Most parallel slots believed from one worker's answer: a bound on what a wrong answer can send it. */
const MAX_PARALLEL_SLOTS = 64;

/**
 * Reads `dp_size` from the worker's `GET /server_info`: that many
 * data-parallel replicas serve behind its URL, each running its own
 * generations. 1 when the worker does not say (an older worker, an error):
 * one at a time is always safe.
 */
export async function probeParallelSlots(upstream: Upstream, url: string, timeoutMs: number): Promise<number> {
  try {
    const answer = await upstream.requestJson(url, "GET", "/server_info", { timeoutMs });
    const dp = answer.status === 200 ? (answer.body as { dp_size?: unknown } | null)?.dp_size : undefined;
    return typeof dp === "number" && Number.isInteger(dp) && dp >= 1 ? Math.min(dp, MAX_PARALLEL_SLOTS) : 1;
  } catch {
    return 1;
  }
}

/** A short, stable description of a network error (walks `cause`, keeps the errno code). */
export function describeNetworkError(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET") return `${code}${(e as Error).message ? ` (${(e as Error).message})` : ""}`;
    if ((e as Error).name === "TimeoutError" || (e as Error).name === "AbortError") return "timed out";
    e = (e as { cause?: unknown }).cause;
  }
  return err instanceof Error ? err.message : String(err);
}
