import { HttpError, detailError, sendBytes, sendJson } from "./http.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";
import { Fields } from "./validate.js";

/**
 * Asynchronous jobs kept in one worker's memory: SGLang's VIDEO_STORE and
 * MESH_STORE with their list/get/delete/content routes. A job is answered
 * `queued` at once, then becomes `completed` or `failed` (`error:
 * {message}`); there is no in-progress state. DELETE only forgets the job
 * (the answer says `deleted`): the scheduler has no abort, so the GPU work
 * goes on and its result is dropped.
 */

export interface Job {
  id: string;
  status: "queued" | "completed" | "failed" | "deleted";
  created_at: number;
  [field: string]: unknown;
}

interface Entry {
  job: Job;
  bytes?: Buffer;
  weights?: string;
}

/** Jobs kept per worker; beyond that the oldest ended ones are dropped. */
const MAX_JOBS = 1000;

export interface JobKind {
  /** "videos" or "meshes": the path under /v1. */
  plural: string;
  /** "Video not found", "Mesh not found". */
  notFound: string;
  contentType(job: Job): string;
}

export class JobStore {
  private readonly jobs = new Map<string, Entry>();

  constructor(
    private readonly state: SimState,
    private readonly kind: JobKind,
  ) {}

  add(job: Job): void {
    this.jobs.set(job.id, { job });
    if (this.jobs.size <= MAX_JOBS) return;
    for (const [id, entry] of this.jobs) {
      if (this.jobs.size <= MAX_JOBS) break;
      if (entry.job.status !== "queued") this.jobs.delete(id);
    }
  }

  /** Runs a job's work; a job deleted meanwhile is not brought back. */
  async run(job: Job, work: () => Promise<{ bytes: Buffer; weights: string; fields: Record<string, unknown> }>): Promise<void> {
    try {
      const done = await work();
      const entry = this.jobs.get(job.id);
      Object.assign(job, { status: "completed", progress: 100, completed_at: Math.floor(Date.now() / 1000), ...done.fields });
      if (entry) Object.assign(entry, { bytes: done.bytes, weights: done.weights });
    } catch (error) {
      if (this.state.closeSignal.aborted) return;
      let message = error instanceof Error ? error.message : String(error);
      if (error instanceof HttpError) message = `Model generation returned no output. Error from scheduler: ${error.reason ?? String(error.body)}`;
      Object.assign(job, { status: "failed", error: { message } });
    }
  }

  private find(id: string): Entry {
    const entry = this.jobs.get(id);
    if (!entry) throw detailError(404, this.kind.notFound);
    return entry;
  }

  routes(create: Route["handler"]): Route[] {
    const base = `/v1/${this.kind.plural}`;
    const list = async (ctx: RouteContext): Promise<void> => {
      const f = new Fields(Object.fromEntries(ctx.url.searchParams), "query");
      const limit = f.int("limit", { ge: 1, le: 100 });
      f.done();
      const after = ctx.url.searchParams.get("after");
      const order = (ctx.url.searchParams.get("order") ?? "desc").toLowerCase() === "asc" ? "asc" : "desc";
      // Python's sort(reverse=True) is stable: equal created_at keep insertion order.
      let data = [...this.jobs.values()].map((e) => e.job);
      data.sort((a, b) => (order === "asc" ? a.created_at - b.created_at : b.created_at - a.created_at));
      if (after !== null) {
        const index = data.findIndex((j) => j.id === after);
        data = index < 0 ? [] : data.slice(index + 1);
      }
      if (limit !== undefined) data = data.slice(0, limit);
      sendJson(ctx.res, 200, { object: "list", data });
    };
    const retrieve = async (ctx: RouteContext): Promise<void> => sendJson(ctx.res, 200, this.find(ctx.params[0]!).job);
    const remove = async (ctx: RouteContext): Promise<void> => {
      const entry = this.find(ctx.params[0]!);
      this.jobs.delete(entry.job.id);
      sendJson(ctx.res, 200, { ...entry.job, status: "deleted" });
    };
    const content = async (ctx: RouteContext): Promise<void> => {
      const entry = this.find(ctx.params[0]!);
      if (!entry.bytes) throw detailError(404, "Generation is still in-progress");
      const name = String(entry.job["file_path"] ?? entry.job.id).split("/").at(-1);
      sendBytes(ctx.res, 200, this.kind.contentType(entry.job), entry.bytes, {
        "content-disposition": `attachment; filename="${name}"`,
        "x-sim-weights": entry.weights ?? this.state.weights,
      });
    };
    const name = (method: string, suffix: string) => `${method} ${base}${suffix}`;
    const one = new RegExp(`^${base}/([^/]+)$`);
    return [
      { method: "POST", pattern: new RegExp(`^${base}$`), name: name("POST", ""), kind: "generation", handler: create },
      { method: "GET", pattern: new RegExp(`^${base}$`), name: name("GET", ""), kind: "control", handler: list },
      { method: "GET", pattern: one, name: name("GET", "/{id}"), kind: "control", handler: retrieve },
      { method: "DELETE", pattern: one, name: name("DELETE", "/{id}"), kind: "control", handler: remove },
      { method: "GET", pattern: new RegExp(`^${base}/([^/]+)/content$`), name: name("GET", "/{id}/content"), kind: "control", handler: content },
    ];
  }
}
