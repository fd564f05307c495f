import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { DispatchResult, PlannedContext, RouteSpec } from "../dispatch/context.js";
import type { TicketReader } from "../dispatch/ticket.js";
import { errorBody } from "../error-body.js";
import { RouterError } from "../errors.js";
import { workerIdOf } from "../registry/worker-url.js";
import { GroupBook } from "./group-book.js";
import { ItemAnswer } from "./item-answer.js";
import { noJobObserver, type JobObserver } from "./job-observer.js";

/** One request of a job, as submitted. */
export interface RolloutRequest {
  /** `/v1/images/generations`, `/rollout/generate` or `/v1/diffusion/generate`. */
  readonly path: string;
  /** What the path is to the dispatch core. */
  readonly route: RouteSpec;
  /** The JSON body, serialized once at submission. */
  readonly body: Buffer;
  /** The prompt group it belongs to (all its items go to one worker), or null. */
  readonly group: string | null;
}

export interface RolloutOptions {
  /** End the job once this many items succeeded; the rest are cancelled. null = all. */
  readonly minComplete: number | null;
  /** End the job once this many groups are complete (every item 2xx); the rest are cancelled. null = all. */
  readonly minCompleteGroups: number | null;
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
  readonly group: string | null;
  /** HTTP status of the item's answer (the worker's, or the router's error status). */
  readonly status: number;
  /** The worker that answered (URL-encoded URL, as `worker_id` in /workers), or null. */
  readonly workerId: string | null;
  readonly weightVersion: string | null;
  readonly queueMs: number;
  readonly serviceMs: number;
  readonly attempts: number;
  /** A copy of the item ran on another worker (hedged tails): that worker's id and whose answer this is; null when none ran. */
  readonly hedge: { readonly workerId: string; readonly winner: "original" | "copy" | "none" } | null;
  readonly contentType: string;
  readonly body: Buffer;
}

export interface RolloutSummary {
  readonly id: string;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Why items were cancelled: min_complete, min_complete_groups, deadline, cancelled, client_closed, weight_version_mismatch; null when none was. */
  readonly reason: CancelReason | null;
  /** Groups whose every item succeeded (and was handed out), by name; [] without groups. */
  readonly completedGroups: string[];
}

export type CancelReason = "min_complete" | "min_complete_groups" | "deadline" | "cancelled" | "client_closed" | "weight_version_mismatch";

export type RolloutEvent = { type: "result"; result: RolloutResult } | { type: "summary"; summary: RolloutSummary };

export type ItemState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** What GET /v1/rollouts/{id} shows of the job's counts. */
export interface SummaryView {
  completed: number;
  failed: number;
  cancelled: number;
  reason: CancelReason | null;
  completed_groups: string[];
}

/** What GET /rollouts shows of a job (GET /v1/rollouts/{id} adds the items). */
export interface JobBrief {
  id: string;
  status: "running" | "ended";
  size: number;
  groups: number;
  started_at_ms: number;
  summary: SummaryView;
}

/** What GET /v1/rollouts/{id} shows of an item. */
export interface ItemView {
  index: number;
  group: string | null;
  state: ItemState;
  status: number | null;
  worker_id: string | null;
  weight_version: string | null;
}

/** The dispatch core (admission, scheduling, failover, proxy), which runs each item. */
export type Dispatch = (ctx: PlannedContext) => Promise<DispatchResult>;

interface Item {
  readonly index: number;
  readonly request: RolloutRequest;
  readonly answer: ItemAnswer;
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
 * request context of its own for the dispatch core, answered into an
 * {@link ItemAnswer}, and leaves the job as one event as soon as its answer
 * is complete. The REST (NDJSON)
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
  readonly #tickets: TicketReader;
  readonly #dispatch: Dispatch;
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

  readonly #groups: GroupBook;
  readonly #observer: JobObserver;

  /**
   * min_complete (and min_complete_groups) is judged as each answer ends,
   * before its worker is released: the re-plan that release triggers must
   * already see the job cancelled, or the worker would be sent an item only
   * to have it cut.
   */
  #answerEnded(group: string | null, status: number): void {
    const ok = status >= 200 && status < 300;
    if (ok && ++this.#okAnswers === this.#options.minComplete) {
      this.#observer.reachedK(Date.now() - this.startedAtMs);
      this.cancel("min_complete");
    }
    if (group === null) return;
    const complete = this.#groups.answerEnded(group, ok);
    if (complete === 0) return;
    this.#observer.groupCompleted();
    if (complete === this.#options.minCompleteGroups) {
      this.#observer.reachedK(Date.now() - this.startedAtMs);
      this.cancel("min_complete_groups");
    }
  }

  constructor(id: string, requests: readonly RolloutRequest[], options: RolloutOptions, dispatch: Dispatch, tickets: TicketReader, observer: JobObserver = noJobObserver) {
    this.id = id;
    this.#options = options;
    this.#dispatch = dispatch;
    this.#tickets = tickets;
    this.#observer = observer;
    // A job that stops at K groups hands out a group's results only once the group is resolved: never part of one.
    this.#groups = new GroupBook(requests.map((r) => r.group), options.minCompleteGroups !== null);
    this.#items = requests.map((request, index) => ({ index, request, answer: new ItemAnswer((status) => this.#answerEnded(request.group, status)), state: "queued", status: null, workerId: null, weightVersion: null }));
  }

  /** Distinct prompt groups. */
  get groups(): number {
    return this.#groups.size;
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
    this.#observer.started();
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
    for (const item of this.#items) if (item.state === "queued" || item.state === "running") item.answer.cancel();
  }

  /** The job's state without its items (GET /rollouts, the dashboard). */
  brief(): JobBrief {
    return {
      id: this.id,
      status: this.#done ? "ended" : "running",
      size: this.#items.length,
      groups: this.#groups.size,
      started_at_ms: this.startedAtMs,
      summary: { completed: this.#succeeded, failed: this.#failed, cancelled: this.#cancelled, reason: this.#reason, completed_groups: this.#groups.completed() },
    };
  }

  /** The live state of every item. */
  view(): JobBrief & { items: ItemView[] } {
    return { ...this.brief(), items: this.#items.map((i) => ({ index: i.index, group: i.request.group, state: this.#stateOf(i), status: i.status, worker_id: i.workerId, weight_version: i.weightVersion })) };
  }

  #summary(): Omit<RolloutSummary, "id"> {
    return { completed: this.#succeeded, failed: this.#failed, cancelled: this.#cancelled, reason: this.#reason, completedGroups: this.#groups.completed() };
  }

  #stateOf(i: Item): ItemState {
    if (i.state === "queued" && i.answer.workerUrl !== undefined) return "running";
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

  /** The item's request as the dispatch core takes it: its body held (retryable), its answer kept in the item. */
  #contextOf(item: Item): PlannedContext {
    const { path, route, body } = item.request;
    const requestId = `${this.id}-${item.index}`;
    const { routingKey, weightVersion } = this.#options;
    const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(body.length), "x-request-id": requestId };
    if (routingKey !== null) headers["x-routing-key"] = routingKey;
    const ticket = this.#tickets(route.kind, body, "application/json", routingKey);
    ticket.weightVersion = weightVersion;
    ticket.fromJob = true;
    if (item.request.group !== null) ticket.group = this.#groups.pin(item.request.group);
    return { requestId, route, method: "POST", path, headers, bodyBytes: body, bodyStream: null, ticket, sink: item.answer, notes: item.answer, arrivedMs: Date.now(), signal: null };
  }

  async #runItem(item: Item): Promise<void> {
    const answer = item.answer;
    const startedMs = performance.now();
    let error: RouterError | null = null;
    try {
      await this.#dispatch(this.#contextOf(item));
    } catch (err) {
      error = RouterError.from(err);
    }
    if (this.#reason !== null && !answer.ended) {
      // Cancelled before its answer was complete: it never reached a worker, or its connection was closed.
      item.state = "cancelled";
      this.#cancelled++;
      this.#observer.itemEnded("cancelled");
      answer.takeBody(); // what arrived of a cut answer is not kept
      if (item.request.group !== null) this.#groups.resolved(item.request.group, null);
      return;
    }
    const workerUrl = answer.workerUrl ?? null;
    item.workerId = workerUrl === null ? null : workerIdOf(workerUrl);
    let result: RolloutResult;
    if (error !== null) {
      const body = Buffer.from(JSON.stringify(errorBody(error, "openai")));
      result = this.#result(item, error.status, "application/json", body, startedMs);
    } else if (!answer.ended) {
      // The worker's answer was cut after it began: the item failed.
      const cut = new RouterError("upstream_unreachable", `worker ${workerUrl ?? "?"} cut its answer off`);
      result = this.#result(item, 502, "application/json", Buffer.from(JSON.stringify(errorBody(cut, "openai"))), startedMs);
    } else {
      const version = answer.headers["x-weight-version"];
      item.weightVersion = typeof version === "string" ? version : null;
      result = this.#result(item, answer.status, String(answer.headers["content-type"] ?? "application/octet-stream"), answer.takeBody(), startedMs);
    }
    item.status = result.status;
    const ok = result.status >= 200 && result.status < 300;
    item.state = ok ? "succeeded" : "failed";
    if (ok) this.#succeeded++;
    else this.#failed++;
    const emit = () => {
      this.#observer.itemEnded(ok ? "succeeded" : "failed");
      this.#emit({ type: "result", result });
    };
    if (item.request.group === null) return emit();
    this.#groups.resolved(item.request.group, { emit, drop: () => this.#dropped(item) });
  }

  /** A held result of a group that never resolved (the job stopped first): the item counts as cancelled, its answer is not handed out. */
  #dropped(item: Item): void {
    if (item.state === "succeeded") this.#succeeded--;
    else this.#failed--;
    item.state = "cancelled";
    this.#cancelled++;
    this.#observer.itemEnded("cancelled");
  }

  #result(item: Item, status: number, contentType: string, body: Buffer, startedMs: number): RolloutResult {
    const a = item.answer;
    return {
      index: item.index,
      group: item.request.group,
      status,
      workerId: item.workerId,
      weightVersion: item.weightVersion,
      queueMs: a.queueMs ?? Math.round(performance.now() - startedMs),
      serviceMs: a.serviceMs ?? 0,
      attempts: a.retries + (a.workerUrl === undefined ? 0 : 1),
      hedge: a.hedge === undefined ? null : { workerId: workerIdOf(a.hedge.worker), winner: a.hedge.winner },
      contentType,
      body,
    };
  }

  #finish(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#done = true;
    this.endedAtMs = Date.now();
    this.#groups.dropHeld();
    this.#observer.ended(this.#reason);
    this.#emit({ type: "summary", summary: { id: this.id, ...this.#summary() } });
  }
}
