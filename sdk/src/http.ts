import type { IncomingHttpHeaders } from "node:http";
import { request, type Dispatcher, type FormData } from "undici";
import { RouterClientError, errorFromAnswer } from "./errors.js";
import type { RetryOptions } from "./types.js";

/** Bytes of an error answer kept for the message and `body`. */
const ERROR_BODY_LIMIT = 1 << 20;
/** A `Retry-After` longer than this is treated as this. */
const RETRY_AFTER_CAP_MS = 5 * 60_000;

export interface ResolvedRetry {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export function resolveRetry(retry: RetryOptions | false | undefined): ResolvedRetry | null {
  if (retry === undefined || retry === false) return null;
  const attempts = retry.attempts;
  const baseDelayMs = retry.baseDelayMs ?? 500;
  const maxDelayMs = retry.maxDelayMs ?? Math.max(10_000, baseDelayMs);
  if (!Number.isInteger(attempts) || attempts < 1) throw new TypeError(`retry.attempts must be an integer >= 1, got ${attempts}`);
  if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0) throw new TypeError(`retry.baseDelayMs must be >= 0, got ${baseDelayMs}`);
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < baseDelayMs) throw new TypeError(`retry.maxDelayMs must be >= baseDelayMs, got ${maxDelayMs}`);
  return { attempts, baseDelayMs, maxDelayMs };
}

/**
 * The life of one call: its own AbortController, fired by the caller's
 * signal (code `aborted`) or by the time limit (code `timeout`). The abort
 * reason is the RouterClientError itself, so undici rejects pending work and
 * destroys a body stream with exactly that error.
 */
export class CallScope {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private unlink: (() => void) | undefined;
  private disposed = false;

  constructor(what: string, signal: AbortSignal | undefined, timeoutMs: number | undefined) {
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) throw new TypeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
    if (signal) {
      const onAbort = () => this.controller.abort(abortError(what, signal.reason));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        this.unlink = () => signal.removeEventListener("abort", onAbort);
      }
    }
    if (timeoutMs && !this.controller.signal.aborted) {
      this.timer = setTimeout(() => {
        this.controller.abort(new RouterClientError({ status: 0, code: "timeout", message: `${what} timed out after ${timeoutMs} ms` }));
      }, timeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The error this scope was aborted with, if it was. */
  abortError(): RouterClientError | undefined {
    const s = this.controller.signal;
    return s.aborted ? (s.reason as RouterClientError) : undefined;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.timer);
    this.unlink?.();
  }
}

function abortError(what: string, reason: unknown): RouterClientError {
  // A parent scope's error (e.g. waitForVideo's overall timeout) keeps its code.
  if (reason instanceof RouterClientError) return reason;
  return new RouterClientError({ status: 0, code: "aborted", message: `${what} was aborted`, cause: reason });
}

/** Resolves after `ms`, or rejects with the signal's reason. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** `Retry-After` as ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = headerValue(value)?.trim();
  if (!v) return undefined;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), RETRY_AFTER_CAP_MS);
}

function backoffMs(retry: ResolvedRetry, failedAttempt: number): number {
  const full = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (failedAttempt - 1));
  return full / 2 + (Math.random() * full) / 2;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const cause = err.cause instanceof Error ? `: ${describe(err.cause)}` : "";
  return `${typeof code === "string" ? `${code} ` : ""}${err.message}${cause}`;
}

/** Failures of `request()` that are programming errors, not the network. */
const notNetwork = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_NOT_SUPPORTED", "ERR_INVALID_ARG_TYPE", "ERR_INVALID_URL"]);

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return !(typeof code === "string" && notNetwork.has(code));
}

export interface HttpContext {
  baseUrl: string;
  dispatcher: Dispatcher;
  /** Headers on every request (authorization, user-agent). */
  headers: Record<string, string>;
}

export interface Exchange {
  method: "GET" | "POST" | "DELETE";
  /** Path and query, starting with "/". */
  path: string;
  json?: unknown;
  /** A multipart body (undici's FormData: it sets the content type and boundary, and can be sent again on retry). */
  form?: FormData;
  accept?: string;
  headers?: Record<string, string> | undefined;
  retry: ResolvedRetry | null;
  /** Non-2xx statuses that are answers, not errors (e.g. 503 of /health). */
  okStatuses?: readonly number[];
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData["body"];
}

/**
 * Sends one request, retrying per `retry`, and returns the answer with its
 * body unread, or throws a RouterClientError for a non-2xx answer (body read,
 * at most 1 MiB) and for network failures.
 */
export async function exchange(ctx: HttpContext, ex: Exchange, scope: CallScope): Promise<Answer> {
  const url = ctx.baseUrl + ex.path;
  const headers: Record<string, string> = { ...ctx.headers };
  if (ex.accept) headers["accept"] = ex.accept;
  let body: string | FormData | undefined;
  if (ex.json !== undefined) {
    body = JSON.stringify(ex.json);
    headers["content-type"] = "application/json";
  } else if (ex.form !== undefined) {
    body = ex.form;
  }
  Object.assign(headers, ex.headers);
  const attempts = ex.retry?.attempts ?? 1;
  const what = `${ex.method} ${ex.path}`;

  for (let attempt = 1; ; attempt++) {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: ex.method, headers, body, signal: scope.signal, dispatcher: ctx.dispatcher });
    } catch (err) {
      const aborted = scope.abortError();
      if (aborted) throw aborted;
      if (attempt < attempts && isConnectionError(err)) {
        await sleep(backoffMs(ex.retry!, attempt), scope.signal);
        continue;
      }
      throw new RouterClientError({ status: 0, code: "network_error", message: `${what} failed: ${describe(err)}`, cause: err });
    }
    const status = res.statusCode;
    if ((status >= 200 && status < 300) || ex.okStatuses?.includes(status)) {
      return { status, headers: res.headers, body: res.body };
    }
    if (status === 503 && attempt < attempts) {
      const retryAfter = parseRetryAfter(res.headers["retry-after"]);
      await res.body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => undefined);
      await sleep(Math.max(backoffMs(ex.retry!, attempt), retryAfter ?? 0), scope.signal);
      continue;
    }
    throw await errorOf(res, scope);
  }
}

async function errorOf(res: Dispatcher.ResponseData, scope: CallScope): Promise<RouterClientError> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= ERROR_BODY_LIMIT) break;
    }
  } catch {
    const aborted = scope.abortError();
    if (aborted) return aborted;
    // Keep what arrived: a cut error body still says something.
  } finally {
    if (!res.body.destroyed) res.body.destroy();
  }
  const text = Buffer.concat(chunks).subarray(0, ERROR_BODY_LIMIT).toString("utf8");
  return errorFromAnswer(res.statusCode, headerValue(res.headers["content-type"]) ?? "", text, res.headers);
}

/** Reads a whole body; errors become RouterClientErrors. */
export async function readAll(answer: Answer, scope: CallScope, what: string): Promise<Buffer> {
  const len = Number(headerValue(answer.headers["content-length"]));
  try {
    if (Number.isSafeInteger(len) && len >= 0) {
      // Known length: one allocation, no second copy of a large answer.
      const out = Buffer.allocUnsafe(len);
      let at = 0;
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        if (at + chunk.length > len) throw new Error(`body longer than its content-length ${len}`);
        chunk.copy(out, at);
        at += chunk.length;
      }
      if (at !== len) throw new Error(`body ended after ${at} of ${len} bytes`);
      return out;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of answer.body as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks);
  } catch (err) {
    const aborted = scope.abortError();
    if (aborted) throw aborted;
    if (!answer.body.destroyed) answer.body.destroy();
    throw new RouterClientError({ status: 0, code: "network_error", message: `${what}: reading the answer failed: ${describe(err)}`, cause: err });
  }
}

export async function readJson<T>(answer: Answer, scope: CallScope, what: string): Promise<T> {
  const bytes = await readAll(answer, scope, what);
  const text = bytes.toString("utf8");
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new RouterClientError({ status: answer.status, code: "invalid_response", message: `${what}: answer is not JSON: ${text.slice(0, 200)}`, body: text, cause: err });
  }
}

export function contentTypeOf(headers: IncomingHttpHeaders): string {
  return headerValue(headers["content-type"]) ?? "application/octet-stream";
}

export function contentLengthOf(headers: IncomingHttpHeaders): number | null {
  const n = Number(headerValue(headers["content-length"]));
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
