import { performance } from "node:perf_hooks";
import type { Admission, Ticket } from "../admission/admission.js";
import { mayCopy } from "../admission/hedge.js";
import { RouterError } from "../errors.js";
import type { OutlierDetector } from "../health/outlier-detector.js";
import type { SleepCheck } from "../health/sleep-check.js";
import { describeNetworkError } from "../health/probe.js";
import type { Logger } from "../log.js";
import { BodyLimitExceeded, forward, type ForwardOutcome, type ForwardRequest } from "../proxy/forward.js";
import type { H1Client } from "../proxy/h1-pool.js";
import { classifyFailure, WorkerStatusError } from "../proxy/network-errors.js";
import { decideRetry, mayTryAgain, type AttemptFacts } from "../proxy/retry-decision.js";
import type { Worker } from "../registry/worker.js";
import type { AnswerSink } from "./answer-sink.js";
import type { DispatchResult, PlannedContext, RequestContext } from "./context.js";
import { hedgedAttempt, type LaneExchange } from "./hedged-attempt.js";
import type { InFlight } from "./in-flight.js";

/** Options of {@link Dispatcher}. */
export interface DispatcherOptions {
  admission: Admission;
  /** The data plane's HTTP/1.1 client to workers. */
  proxy: H1Client;
  outliers: OutlierDetector;
  /** Tells a 500 of a sleeping worker from a fault (health/sleep-check.ts); without it every 5xx is a fault. */
  sleepCheck?: SleepCheck;
  logger: Logger;
  /** Further workers tried after a failure before any answer byte (--max-retries). */
  maxRetries: number;
  /** No retry starts later than this after the request arrived (--retry-budget). */
  retryBudgetMs: number;
  /** Most bytes of a streamed request body of unknown length (--max-body-bytes). */
  maxBodyBytes: number;
  /** Where every exchange of a placed request is registered while open, so the router can sever them all (dispatch/in-flight.ts). */
  inFlight?: InFlight;
}

class ReceiverGone extends Error {
  constructor() {
    super("the answer's receiver went away while its request was queued");
  }
}

/**
 * One instance for every request: `close` fires after every answer, and a
 * fresh Error (its stack trace) per request was 4% of the router's CPU with
 * requests queued (bench/profile.mjs). Nobody reads its stack.
 */
const RECEIVER_GONE = new ReceiverGone();

// Results without facts of their own are made once.
const CUT_OFF: DispatchResult = { kind: "cut_off" };
const RECEIVER_GONE_RESULT: DispatchResult = { kind: "receiver_gone" };

/** A 413 for a request body over --max-body-bytes. */
export function bodyTooLarge(what: string, limit: number): RouterError {
  return new RouterError("body_too_large", `${what} exceeds the limit of ${limit} bytes (--max-body-bytes)`, { details: { limit } });
}

/** An AbortSignal that fires when the sink's receiver goes away; made only when a request must wait. */
function receiverSignal(sink: AnswerSink): AbortSignal {
  const ac = new AbortController();
  if (sink.closed) ac.abort(RECEIVER_GONE);
  else sink.onClose(() => ac.abort(RECEIVER_GONE));
  return ac.signal;
}

/**
 * The error an exchange was severed with (InFlight.severAll: the router lost
 * its place among the routers on etcd), or null. A RouterError is the only
 * kind no worker or connection produces, so it marks the severing.
 */
function severedBy(outcome: ForwardOutcome | null): RouterError | null {
  if (outcome === null || outcome.kind === "completed" || outcome.kind === "client_aborted") return null;
  return outcome.error instanceof RouterError ? outcome.error : null;
}

function resultOf(outcome: ForwardOutcome): DispatchResult {
  if (outcome.kind === "completed") return { kind: "answered", status: outcome.status };
  return outcome.kind === "client_aborted" ? RECEIVER_GONE_RESULT : CUT_OFF;
}

/** What one failed attempt means: the error to end with, and whether another worker is tried first. */
interface Failure {
  error: RouterError;
  retry: boolean;
}

/**
 * The transport-free dispatch core: choose a worker (admission: at once, or
 * after waiting in the queue), forward the exchange (src/proxy/forward.ts),
 * judge the outcome (done, or an error and whether to retry elsewhere, by
 * src/proxy/retry-decision.ts), and loop. Front doors make the
 * {@link RequestContext}; this answers with a {@link DispatchResult} or
 * throws a RouterError, and knows nothing of status codes of its own.
 */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  /** A hedged race's exchanges, made once. */
  readonly #lane: LaneExchange = (ctx, sink, ticket, worker, mayRetry, lost) => this.#exchange(ctx, sink, ticket, worker, mayRetry, lost);

  constructor(options: DispatcherOptions) {
    this.#o = options;
  }

  /**
   * A request admission places: failover to another worker while nothing
   * reached the sink. The error code it ends with is noted on the context.
   */
  async dispatch(ctx: PlannedContext): Promise<DispatchResult> {
    const { admission, maxRetries, retryBudgetMs } = this.#o;
    const ticket = ctx.ticket;
    const notes = ctx.notes;
    // What happened on the last worker tried: a request that reached workers
    // and found none left to try ends with that (502), not with the
    // "no worker" 503 meant for requests that never found one.
    let lastFailure: RouterError | null = null;
    try {
      for (let attempt = 0; ; attempt++) {
        const waitFromMs = performance.now();
        const w = await this.#choose(ctx, ticket, lastFailure);
        if (w === null) return RECEIVER_GONE_RESULT;
        const facts: AttemptFacts = {
          attempt,
          maxRetries,
          elapsedMs: Date.now() - ctx.arrivedMs,
          retryBudgetMs,
          replayableBody: ctx.bodyBytes !== null,
          // Asked last, and only when everything else allows a retry: it walks the pool.
          get otherWorker() {
            return admission.hasOtherWorker(ticket, w.url);
          },
        };
        notes.workerUrl = w.url;
        notes.queueMs = Math.round(performance.now() - waitFromMs);
        const mayRetry = mayTryAgain(ctx.route.retry, facts);
        let outcome: ForwardOutcome;
        let worker = w;
        if (this.#mayHedge(ctx)) {
          ({ outcome, worker } = await hedgedAttempt(admission, ctx, w, mayRetry, this.#lane));
          notes.workerUrl = worker.url;
        } else {
          outcome = await this.#exchange(ctx, ctx.sink, ticket, w, mayRetry, null);
        }
        const failure = this.#judge(ctx, worker, outcome, facts);
        if (failure === null) return resultOf(outcome);
        lastFailure = failure.error;
        if (!failure.retry || ctx.sink.closed) throw failure.error;
        (ticket.exclude ??= new Set()).add(worker.url);
        notes.retries = attempt + 1;
      }
    } catch (err) {
      throw this.#noted(ctx, err);
    }
  }

  /**
   * A request that must reach one given worker (id affinity, admin
   * passthroughs): never held, capped or retried elsewhere.
   */
  async toWorker(ctx: RequestContext, worker: Worker): Promise<DispatchResult> {
    const admission = this.#o.admission;
    ctx.notes.workerUrl = worker.url;
    admission.acquireSpecific(worker);
    let outcome: ForwardOutcome;
    try {
      outcome = await forward(this.#o.proxy, ctx.sink, this.#forwardRequest(ctx, worker, false));
    } finally {
      admission.release(worker, null);
    }
    if (outcome.kind !== "failed_before_response") return resultOf(outcome);
    const error =
      outcome.error instanceof BodyLimitExceeded
        ? bodyTooLarge("request body", this.#o.maxBodyBytes)
        : new RouterError("upstream_unreachable", `Worker request failed: ${worker.displayId} failed before answering: ${describeNetworkError(outcome.error)}`, { cause: outcome.error });
    throw this.#noted(ctx, error);
  }

  #noted(ctx: RequestContext, err: unknown): RouterError {
    const e = RouterError.from(err);
    ctx.notes.errorCode = e.code;
    return e;
  }

  /** A worker for the next attempt: at once, or after waiting in the queue; null when the receiver left meanwhile. */
  async #choose(ctx: RequestContext, ticket: Ticket, lastFailure: RouterError | null): Promise<Worker | null> {
    const admission = this.#o.admission;
    try {
      const now = admission.tryAcquire(ticket);
      if (now !== null) return now;
      ctx.signal ??= receiverSignal(ctx.sink);
      return await admission.wait(ticket, ctx.signal);
    } catch (err) {
      if (err instanceof ReceiverGone) return null;
      throw lastFailure ?? err;
    }
  }

  /**
   * Whether an attempt may be raced by one copy on an idle worker
   * (admission/hedge.ts decides when): hedging is on, the request's answer
   * is the same on any worker (mayCopy: its body names its seed), the router
   * holds its body (the copy gets the same bytes), and no copy ran yet.
   */
  #mayHedge(ctx: PlannedContext): boolean {
    return this.#o.admission.hedging && ctx.bodyBytes !== null && ctx.route.retry === "generation" && ctx.notes.hedge === undefined && mayCopy(ctx.ticket);
  }

  /** One exchange into `sink`: streamed both ways, then the worker's slot released with what was learned (nothing, when `lost()`: a hedged race's loser). */
  async #exchange(ctx: RequestContext, sink: AnswerSink, ticket: Ticket, w: Worker, mayRetry: boolean, lost: (() => boolean) | null): Promise<ForwardOutcome> {
    const admission = this.#o.admission;
    let outcome: ForwardOutcome | null = null;
    const dispatchedMs = performance.now();
    try {
      outcome = await forward(this.#o.proxy, sink, this.#forwardRequest(ctx, w, mayRetry && ctx.route.retry === "generation"));
      return outcome;
    } finally {
      const completed = outcome?.kind === "completed" ? outcome : null;
      // A video create answers at once; the job runs on the worker after it. It counts as
      // that worker's work before the slot is released, so no re-plan sees the worker idle.
      if (completed !== null && ctx.route.kind === "video" && completed.status < 300 && completed.learned !== undefined) admission.jobStarted(w, completed.learned, ticket);
      // Only a 2xx answer is a service time worth learning from.
      const ok = completed !== null && completed.status < 300;
      // A severed exchange still runs on the worker's GPU, like a hedged race's loser: released as cut (the worker counted busy for its rest).
      if (lost?.() === true || severedBy(outcome) !== null) admission.cut(w, ticket);
      else admission.release(w, ticket, ok ? { ok, doneMs: completed.headAtMs } : { ok: false });
      if (completed !== null) ctx.notes.serviceMs = Math.round(completed.headAtMs - dispatchedMs);
    }
  }

  #forwardRequest(ctx: RequestContext, w: Worker, holdBack5xx: boolean): ForwardRequest {
    const route = ctx.route;
    return {
      origin: w.url,
      path: ctx.path,
      method: ctx.method,
      headers: ctx.headers,
      body: ctx.bodyBytes ?? ctx.bodyStream,
      requestId: ctx.requestId,
      workerId: w.id,
      // A request to one given worker does not run on the router's weight version.
      weightVersion: ctx.ticket === null ? undefined : w.weightVersion,
      captureBytes: route.capture,
      beforeEnd: route.onAnswer,
      holdBack5xx,
      stats: ctx.notes,
      maxBodyBytes: this.#o.maxBodyBytes,
      // Only requests admission placed: what a refit's drain waits for is what a severing ends.
      inFlight: ctx.ticket === null ? undefined : this.#o.inFlight,
    };
  }

  /**
   * A worker's 5xx to a generation: a fault for outlier detection, unless it
   * is a 500 of a worker found to be asleep (a sleeping SGLang worker fails
   * generations with a plain 500, like a fault: the sleep check asks).
   */
  #serverError(ctx: RequestContext, w: Worker, status: number): void {
    const { outliers, sleepCheck } = this.#o;
    const countFailure = () => outliers.onFailure(w, "status_5xx", `answered ${status}`);
    if (status === 500 && sleepCheck !== undefined && ctx.ticket !== null) sleepCheck.onServerError(w, countFailure);
    else countFailure();
  }

  /**
   * What an attempt's outcome means: null when the request is done (answered,
   * or cut off after answer bytes went out), else the error to end with and
   * whether another worker should be tried first. Feeds outlier detection.
   */
  #judge(ctx: RequestContext, w: Worker, outcome: ForwardOutcome, facts: AttemptFacts): Failure | null {
    const { outliers, logger } = this.#o;
    // Severed by the router itself: no fault of the worker's, and no other worker is tried (the router holds generation now).
    const severed = severedBy(outcome);
    if (severed !== null) return { error: severed, retry: false };
    switch (outcome.kind) {
      case "completed":
        if (outcome.status >= 500) this.#serverError(ctx, w, outcome.status);
        else outliers.onSuccess(w);
        return null;
      case "client_aborted":
        return null;
      case "failed_mid_response":
        outliers.onFailure(w, classifyFailure(outcome.error), describeNetworkError(outcome.error));
        logger.warn({ worker: w.url, requestId: ctx.requestId, err: describeNetworkError(outcome.error) }, "worker answer cut off");
        return null;
      case "failed_before_response": {
        // The client's fault, not the worker's: no outlier count, no retry.
        if (outcome.error instanceof BodyLimitExceeded) return { error: bodyTooLarge("request body", this.#o.maxBodyBytes), retry: false };
        const kind = classifyFailure(outcome.error);
        const detail = describeNetworkError(outcome.error);
        if (outcome.error instanceof WorkerStatusError) this.#serverError(ctx, w, outcome.error.status);
        else outliers.onFailure(w, kind, detail);
        const retry = decideRetry(kind, ctx.route.retry, facts) === "retry";
        logger.warn({ worker: w.url, requestId: ctx.requestId, kind, err: detail, attempt: facts.attempt, retry }, "worker failed before answering");
        const error =
          kind === "timeout"
            ? new RouterError("upstream_timeout", `Worker request failed: ${w.displayId} sent nothing for longer than --timeout`, { cause: outcome.error })
            : new RouterError("upstream_unreachable", `Worker request failed: ${w.displayId} failed before answering: ${detail}`, { cause: outcome.error });
        return { error, retry };
      }
    }
  }
}
