import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import { currentCall, type CallContext, type Caller } from "./call-context.js";
import { RefusalWindow } from "./refusal-window.js";

/** What one worker made of a control action (a weight load, a sleep, a commit). */
export interface AuditWorkerOutcome {
  worker: string;
  ok: boolean;
  /** The worker's HTTP status, when it answered. */
  status?: number;
  error?: string;
}

/** How a control action ended: every worker did it, some did, or it failed (or is still running). */
export type AuditOutcome = "running" | "ok" | "partial" | "failed";

/** One control action, as logged and as `GET /audit` shows it. */
export interface AuditEvent {
  /** Increases by one per action since the router started. */
  id: number;
  requestId: string;
  /** Stable name: `worker.register`, `refit.from_disk`, `memory.release`, `launcher.scale`, ... */
  action: string;
  caller: Caller;
  /** The arguments that matter (never keys or payloads). */
  args: Record<string, unknown>;
  startedAt: string;
  /** Null while running. */
  durationMs: number | null;
  outcome: AuditOutcome;
  /** The error code when it failed or partly failed. */
  code?: string;
  message?: string;
  workers?: AuditWorkerOutcome[];
  /** `auth.refused` only: how many times the same caller host was refused on the route within a minute of this event (1 when once). */
  repeats?: number;
}

/** What a finished action's result says, read by the decorator that knows its shape. */
export interface AuditSummary {
  workers?: AuditWorkerOutcome[];
  /** A result may itself say it failed (a refit answer with status 502). */
  code?: string;
  message?: string;
}

/** A started action; `end` or `fail` it once (later calls are ignored). */
export interface AuditSpan {
  readonly event: Readonly<AuditEvent>;
  end(summary?: AuditSummary): void;
  fail(err: unknown, summary?: AuditSummary): void;
}

export interface AuditOptions {
  logger: Logger;
  /** Events kept for `GET /audit`; default 500. */
  capacity?: number;
  /** Runs once per finished action (metrics), and once per refused call. */
  onFinished?: (event: Readonly<AuditEvent>) => void;
  /** A refusal repeated within this time counts on the first one's event; default 60 s. */
  refusalWindowMs?: number;
}

export interface Audit {
  /** Starts an action now: logs its start line and records it. */
  begin(action: string, args: Record<string, unknown>): AuditSpan;
  /**
   * Runs `fn` as one action: start line, then an end line with its duration
   * and outcome, whether it returns, resolves, throws or rejects. Sync
   * functions stay sync.
   */
  run<T>(action: string, args: Record<string, unknown>, fn: () => T, summarize?: (result: Awaited<T>) => AuditSummary): T;
  /**
   * Records an admin call refused for its key (401): one event, `failed`
   * with code `unauthenticated`, and one warn line, with the route and who
   * called. Nothing ran, so its duration is 0. The same refusal again
   * within a minute only counts on that event (`repeats`).
   */
  refused(route: string, call: CallContext): void;
  /** The latest events, newest first. */
  recent(limit?: number): AuditEvent[];
}

/** A finished action's outcome from what its result says: a result code or failed workers make it partial or failed. */
export function outcomeOf(summary: AuditSummary | undefined): AuditOutcome {
  const workers = summary?.workers ?? [];
  const failed = workers.filter((w) => !w.ok).length;
  if (summary?.code !== undefined) return failed < workers.length ? "partial" : "failed";
  if (failed === 0) return "ok";
  return failed < workers.length ? "partial" : "failed";
}

/**
 * The audit trail of control actions (who changed which workers, weights
 * and memory, when, and what each worker made of it). Two log lines per
 * action, at info (warn when it failed), and the last `capacity` events in
 * memory for `GET /audit` and the dashboard. Only control actions come
 * here: the data plane never does.
 */
export function createAudit(options: AuditOptions): Audit {
  const logger = options.logger.child({ component: "audit" });
  const capacity = options.capacity ?? 500;
  const ring: AuditEvent[] = [];
  const refusals = new RefusalWindow(options.refusalWindowMs ?? 60_000);
  let nextId = 1;

  function record(action: string, args: Record<string, unknown>, call: CallContext, startedMs: number): AuditEvent {
    const event: AuditEvent = {
      id: nextId++,
      requestId: call.requestId,
      action,
      caller: call.caller,
      args,
      startedAt: new Date(startedMs).toISOString(),
      durationMs: null,
      outcome: "running",
    };
    ring.push(event);
    if (ring.length > capacity) ring.shift();
    return event;
  }

  function begin(action: string, args: Record<string, unknown>): AuditSpan {
    const startedMs = Date.now();
    const event = record(action, args, currentCall(), startedMs);
    logger.info({ audit: "start", auditId: event.id, requestId: event.requestId, action, caller: event.caller, args }, `${action} started`);
    return openSpan(event, startedMs, logger, options.onFinished);
  }

  function refused(fullRoute: string, call: CallContext): void {
    // The path is the caller's to choose: a line and a ring entry, not a buffer.
    const route = fullRoute.length > 300 ? `${fullRoute.slice(0, 300)}...` : fullRoute;
    const nowMs = Date.now();
    const key = RefusalWindow.keyOf(call.caller, route);
    const repeated = refusals.repeat(key, nowMs);
    if (repeated !== undefined) return notify(options.onFinished, repeated, logger);
    const event = record("auth.refused", { route }, call, nowMs);
    refusals.remember(key, event, nowMs);
    event.durationMs = 0;
    event.outcome = "failed";
    event.code = "unauthenticated";
    event.message = "admin API key missing or wrong";
    const { id: auditId, requestId, action, caller, args, outcome, code, message } = event;
    logger.warn({ audit: "refused", auditId, requestId, action, caller, args, outcome, code, message }, `refused ${route}: ${message}`);
    notify(options.onFinished, event, logger);
  }

  return {
    begin,
    refused,
    run: (action, args, fn, summarize) => runAsAction(begin(action, args), fn, summarize, logger),
    recent(limit = 100) {
      const n = Math.max(0, Math.min(limit, ring.length));
      const out: AuditEvent[] = [];
      for (let i = ring.length - 1; i >= ring.length - n; i--) out.push({ ...ring[i]! });
      return out;
    },
  };
}

/** The span of a started event: its first `end` or `fail` completes the event, logs the end line and tells `onFinished`. */
function openSpan(event: AuditEvent, startedMs: number, logger: Logger, onFinished: AuditOptions["onFinished"]): AuditSpan {
  let done = false;
  const finish = (outcome: AuditOutcome, summary: AuditSummary | undefined, code?: string, message?: string) => {
    if (done) return;
    done = true;
    event.durationMs = Date.now() - startedMs;
    event.outcome = outcome;
    if (code !== undefined) event.code = code;
    if (message !== undefined) event.message = message;
    if (summary?.workers) event.workers = summary.workers;
    const { action } = event;
    const line = { audit: "end", auditId: event.id, requestId: event.requestId, action, caller: event.caller, outcome, code, message, durationMs: event.durationMs, workers: event.workers };
    if (outcome === "ok") logger.info(line, `${action} ${outcome}`);
    else logger.warn(line, `${action} ${outcome}`);
    notify(onFinished, event, logger);
  };
  return {
    event,
    end(summary) {
      finish(outcomeOf(summary), summary, summary?.code, summary?.message);
    },
    fail(err, summary) {
      const e = RouterError.from(err);
      finish("failed", summary, e.code, e.message);
    },
  };
}

/** Tells the listener (metrics) of a finished event; a listener that throws is logged, never the caller's problem. */
function notify(onFinished: AuditOptions["onFinished"], event: Readonly<AuditEvent>, logger: Logger): void {
  try {
    onFinished?.(event);
  } catch (err) {
    logger.error({ err }, "audit listener failed");
  }
}

/** Runs `fn` under `span`, ending it when `fn` returns or resolves and failing it when `fn` throws or rejects; sync stays sync. */
function runAsAction<T>(span: AuditSpan, fn: () => T, summarize: ((result: Awaited<T>) => AuditSummary) | undefined, logger: Logger): T {
  const summaryOf = (value: Awaited<T>): AuditSummary | undefined => {
    try {
      return summarize?.(value);
    } catch (err) {
      logger.error({ err, action: span.event.action }, "audit summary failed");
      return undefined;
    }
  };
  let result: T;
  try {
    result = fn();
  } catch (err) {
    span.fail(err);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(
      (value: Awaited<T>) => {
        span.end(summaryOf(value));
        return value;
      },
      (err: unknown) => {
        span.fail(err);
        throw err;
      },
    ) as T;
  }
  span.end(summaryOf(result as Awaited<T>));
  return result;
}
