/**
 * Remembers which worker owns an id (a video job, an image file): those live
 * only in that worker's memory or disk, so every later request about the id
 * must reach the same worker. Bounded: the oldest entries go first, so a
 * router that runs for weeks does not grow without end.
 */
export class AffinityMap {
  readonly #owners = new Map<string, string>();

  constructor(readonly maxEntries = 100_000) {}

  remember(id: string, workerUrl: string): void {
    this.#owners.delete(id);
    this.#owners.set(id, workerUrl);
    if (this.#owners.size > this.maxEntries) {
      const oldest = this.#owners.keys().next().value;
      if (oldest !== undefined) this.#owners.delete(oldest);
    }
  }

  lookup(id: string): string | undefined {
    return this.#owners.get(id);
  }

  forget(id: string): void {
    this.#owners.delete(id);
  }

  /**
   * The id was deleted on its worker. The local entry stays (later
   * questions about it must still reach that worker, which answers 404);
   * a shared map (state/shared-affinity.ts) stops sharing it.
   */
  deleted(_id: string): void {}

  /** Drops every id owned by a worker that left the pool. */
  forgetWorker(workerUrl: string): void {
    for (const [id, url] of this.#owners) if (url === workerUrl) this.#owners.delete(id);
  }

  get size(): number {
    return this.#owners.size;
  }
}

const imagesPrefix = Buffer.from("/v1/images/");
const contentSuffix = "/content";
/** Bytes an id may hold (URL-unreserved characters), as a lookup table. */
const idByte = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-") idByte[c.charCodeAt(0)] = 1;

/**
 * Image ids named in an images answer (`url: /v1/images/{id}/content`). Only
 * the first bytes of the answer are searched: `url` answers are small, and a
 * `b64_json` answer names no content path. A byte scan: no string of the
 * whole prefix, no regex over it.
 */
export function imageIdsIn(prefix: Buffer): string[] {
  const ids: string[] = [];
  let at = prefix.indexOf(imagesPrefix);
  while (at >= 0) {
    const start = at + imagesPrefix.length;
    let end = start;
    while (end < prefix.length && end - start < 200 && idByte[prefix[end]!] === 1) end++;
    if (end > start && prefix.toString("latin1", end, end + contentSuffix.length) === contentSuffix) ids.push(prefix.toString("latin1", start, end));
    at = prefix.indexOf(imagesPrefix, end);
  }
  return ids;
}

/** The job id of a video-create answer (`id`, or older `video_id`/`job_id`). */
export function videoIdIn(body: Buffer): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return null;
  }
  const find = (v: unknown): string | null => {
    if (Array.isArray(v)) return v.length ? find(v[0]) : null;
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      for (const k of ["id", "video_id", "job_id"]) {
        const id = o[k];
        if (typeof id === "string" && id.trim()) return id.trim();
      }
      return "data" in o ? find(o.data) : null;
    }
    return null;
  };
  return find(parsed);
}

/**
 * A polled video job that has ended: its id, whether it succeeded, and its
 * creation and completion times (the worker's clock, seconds in the answer)
 * when the job gives both. null while it is queued or running.
 */
export function videoJobEnd(body: Buffer): { id: string; ok: boolean; times?: { createdMs: number; completedMs: number } } | null {
  let job: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return null;
    job = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof job.id !== "string" || (job.status !== "completed" && job.status !== "failed")) return null;
  const created = Number(job.created_at);
  const completed = Number(job.completed_at);
  const times = Number.isFinite(created) && Number.isFinite(completed) && completed >= created && created > 0 ? { createdMs: created * 1000, completedMs: completed * 1000 } : undefined;
  return times ? { id: job.id, ok: job.status === "completed", times } : { id: job.id, ok: job.status === "completed" };
}
