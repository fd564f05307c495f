import type { Upstream } from "../proxy/upstream.js";
import { taskTypeSupportsVideo, type WorkerCapabilities } from "../registry/worker.js";

/** Result of one `GET /health`: null when healthy, else why not. */
export async function probeHealth(upstream: Upstream, url: string, timeoutMs: number): Promise<string | null> {
  try {
    const answer = await upstream.requestJson(url, "GET", "/health", { timeoutMs });
    return answer.status === 200 ? null : `GET /health answered ${answer.status}`;
  } catch (err) {
    return `GET /health failed: ${describeNetworkError(err)}`;
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
    instanceFingerprint: typeof created === "number" || typeof created === "string" ? String(created) : null,
  };
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
