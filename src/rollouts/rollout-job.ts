import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { RouterError } from "../errors.js";
import { notes } from "../http/notes.js";
import type { Res } from "../http/respond.js";
import { errorBody } from "../http/respond.js";
import { workerIdOf } from "../registry/worker-url.js";
import { AnswerSink } from "./answer-sink.js";

/** One request of a job, as submitted. */
export interface RolloutRequest {
  /** `/v1/images/generations`, `/rollout/generate` or `/v1/diffusion/generate`. */
  readonly path: string;
  /** The JSON body, serialized once at submission. */
  readonly body: Buffer;
}

export interface RolloutOptions {
  /** End the job once this many items succeeded; the rest are cancelled. null = all. */
  readonly minComplete: number | null;
  /** Cancel what is not done this many ms after the start; null = none. */
  readonly deadlineMs: number | null;
  /** Sent as X-Routing-Key with every item: all on one worker (bounded load). */
  readonly routingKey: string | null;
  /** Items run only on workers holding this weight version; null = any. */
  readonly weightVersion: string | null;
}

/** One finished item: what made it and the worker's answer. */
export interface RolloutResult {
  readonly index: number;
  /** HTTP status of the item's answer (the worker's, or the router's error status). */
  readonly status: number;
  /** The worker that answered (URL-encoded URL, as `worker_id` in /workers), or null. */
  readonly workerId: string | null;
  readonly weightVersion: string | null;
  readonly queueMs: number;
  readonly serviceMs: number;
  readonly attempts: number;
  readonly contentType: string;
  readonly body: Buffer;
}

export interface RolloutSummary {
  readonly id: string;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Why items were cancelled: min_complete, deadline, cancelled, client_closed, weight_version_mismatch; null when none was. */
  readonly reason: CancelReason | null;
}

export type CancelReason = "min_complete" | "deadline" | "cancelled" | "client_closed" | "weight_version_mismatch";

export type RolloutEvent = { type: "result"; result: RolloutResult } | { type: "summary"; summary: RolloutSummary };

export type ItemState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** What GET /v1/rollouts/{id} shows of an item. */
export interface ItemView {
  index: number;
  state: ItemState;
  status: number | null;
  worker_id: string | null;
  weight_version: string | null;
}

/** Runs one item through the data plane (admission, scheduling, failover, proxy) into a sink. */
export type RunItem = (path: string, body: Buffer, sink: Res, headers: Record<string, string>, weightVersion: string | null) => Promise<void>;

interface Item {
  readonly index: number;
  readonly request: RolloutRequest;
  readonly sink: AnswerSink;
  state: ItemState;
  status: number | null;
  workerId: string | null;
  weightVersion: string | null;
}

export function newRolloutId(): string {
  return `rollout_${randomBytes(12).toString("hex")}`;
}

/**
 * A rollout job: a set of requests that go through the router's queue as
 * one burst (so the scheduler sees every cost up front), whose results are
 * handed out as they finish. It never forwards bytes itself: each item is a
 * request of the data plane written into an {@link AnswerSink}, and leaves
 * the job as one event as soon as its answer is complete. The REST (NDJSON)
 * and RPC (server stream) front doors read {@link events}.
 *
 * Memory: an item's answer is held from its last byte until the consumer
 * takes the event, so what the job holds is bounded by the items finishing
 * at once, not by the job's size.
 */
export class RolloutJob {
  readonly id: string;
  readonly startedAtMs = Date.now();
  endedAtMs: number | null = null;
  readonly #items: Item[];
  readonly #options: RolloutOptions;
  readonly #run: RunItem;
  #succeeded = 0;
  #failed = 0;
  #cancelled = 0;
  #reason: CancelReason | null = null;
  #deadline: NodeJS.Timeout | null = null;
  readonly #pending: RolloutEvent[] = [];
  #wake: (() => void) | null = null;
  #done = false;
  #started = false;
  /** 2xx answers complete, counted as each ends (before its worker is handed new work). */
  #okAnswers = 0;
  /** Nobody reads the events any more (an RPC stream that was closed): results are dropped, not kept. */
  #detached = false;

  constructor(id: string, requests: readonly RolloutRequest[], options: RolloutOptions, run: RunItem) {
    this.id = id;
    this.#options = options;
    this.#run = run;
    this.#items = requests.map((request, index) => ({ index, request, sink: new AnswerSink(), state: "queued", status: null, workerId: null, weightVersion: null }));
  }

  get size(): number {
    return this.#items.length;
  }

  get ended(): boolean {
    return this.#done;
  }

  /** The weight version the job's items must run on, or null. */
  get pinnedVersion(): string | null {
    return this.#options.weightVersion;
  }

  /** Starts every item at once; the scheduler orders them. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#options.deadlineMs !== null) {
      this.#deadline = setTimeout(() => this.cancel("deadline"), this.#options.deadlineMs);
      this.#deadline.unref();
    }
    void Promise.allSettled(this.#items.map((item) => this.#runItem(item))).then(() => this.#finish());
  }

  /** Cancels every item not finished: queued ones never reach a worker, running ones have their connection closed. */
  cancel(reason: CancelReason): void {
    if (this.#reason !== null || this.#done) return;
    this.#reason = reason;
    for (const item of this.#items) if (item.state === "queued" || item.state === "running") item.sink.cancel();
  }

  /** The live state of every item. */
  view(): { id: string; status: "running" | "ended"; size: number; summary: Omit<RolloutSummary, "id">; items: ItemView[] } {
    return {
      id: this.id,
      status: this.#done ? "ended" : "running",
      size: this.#items.length,
      summary: { completed: this.#succeeded, failed: this.#failed, cancelled: this.#cancelled, reason: this.#reason },
      items: this.#items.map((i) => ({ index: i.index, state: this.#stateOf(i), status: i.status, worker_id: i.workerId, weight_version: i.weightVersion })),
    };
  }

  #stateOf(i: Item): ItemState {
    if (i.state === "queued" && notes(i.sink as unknown as Res).workerUrl !== undefined) return "running";
    return i.state;
  }

  /** The reader left for good: results still coming are dropped instead of kept for nobody. */
  detach(): void {
    this.#detached = true;
    this.#pending.length = 0;
    this.#wake?.();
  }

  /** Results in completion order, then the summary; ends after it. */
  async *events(): AsyncGenerator<RolloutEvent> {
    for (;;) {
      const next = this.#pending.shift();
      if (next !== undefined) {
        yield next;
        if (next.type === "summary") return;
        continue;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #emit(e: RolloutEvent): void {
    if (this.#detached) return;
    this.#pending.push(e);
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #runItem(item: Item): Promise<void> {
    const sink = item.sink;
    const n = notes(sink as unknown as Res);
    n.requestId = `${this.id}-${item.index}`;
    n.errorShape = "openai";
    const headers: Record<string, string> = { "x-request-id": n.requestId };
    if (this.#options.routingKey !== null) headers["x-routing-key"] = this.#options.routingKey;
    // min_complete is judged as each answer ends, before its worker is
    // released: the re-plan that release triggers must already see the job
    // cancelled, or the worker would be sent an item only to have it cut.
    sink.once("finish", () => {
      if (sink.statusCode >= 200 && sink.statusCode < 300 && ++this.#okAnswers === this.#options.minComplete) this.cancel("min_complete");
    });
    const startedMs = performance.now();
    let error: RouterError | null = null;
    try {
      await this.#run(item.request.path, item.request.body, sink as unknown as Res, headers, this.#options.weightVersion);
    } catch (err) {
      error = RouterError.from(err);
    }
    if (this.#reason !== null && !sink.writableEnded) {
      // Cancelled before its answer was complete: it never reached a worker, or its connection was closed.
      item.state = "cancelled";
      this.#cancelled++;
      sink.takeBody(); // what arrived of a cut answer is not kept
      return;
    }
    const workerUrl = n.workerUrl ?? null;
    item.workerId = workerUrl === null ? null : workerIdOf(workerUrl);
    let result: RolloutResult;
    if (error !== null) {
      const body = Buffer.from(JSON.stringify(errorBody(error, "openai")));
      result = this.#result(item, error.status, "application/json", body, n, startedMs);
    } else if (!sink.writableEnded) {
      // The worker's answer was cut after it began: the item failed.
      const cut = new RouterError("upstream_unreachable", `worker ${workerUrl ?? "?"} cut its answer off`);
      result = this.#result(item, 502, "application/json", Buffer.from(JSON.stringify(errorBody(cut, "openai"))), n, startedMs);
    } else {
      const version = sink.headers["x-weight-version"];
      item.weightVersion = typeof version === "string" ? version : null;
      result = this.#result(item, sink.statusCode, String(sink.headers["content-type"] ?? "application/octet-stream"), sink.takeBody(), n, startedMs);
    }
    item.status = result.status;
    const ok = result.status >= 200 && result.status < 300;
    item.state = ok ? "succeeded" : "failed";
    if (ok) this.#succeeded++;
    else this.#failed++;
    this.#emit({ type: "result", result });
  }

  #result(item: Item, status: number, contentType: string, body: Buffer, n: ReturnType<typeof notes>, startedMs: number): RolloutResult {
    const queueMs = n.queueMs ?? Math.round(performance.now() - startedMs);
    return {
      index: item.index,
      status,
      workerId: item.workerId,
      weightVersion: item.weightVersion,
      queueMs,
      serviceMs: n.serviceMs ?? 0,
      attempts: (n.retries ?? 0) + (n.workerUrl === undefined ? 0 : 1),
      contentType,
      body,
    };
  }

  #finish(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#done = true;
    this.endedAtMs = Date.now();
    this.#emit({ type: "summary", summary: { id: this.id, completed: this.#succeeded, failed: this.#failed, cancelled: this.#cancelled, reason: this.#reason } });
  }
}
