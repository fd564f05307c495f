import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues, type Interceptor } from "@connectrpc/connect";
import type { Auth } from "../auth/api-keys.js";
import { callContext, remoteOf, type CallContext, type Caller } from "../audit/call-context.js";
import type { Logger } from "../log.js";
import { accessLogLevel } from "../access-log-level.js";

/** The caller of an RPC, made once per call from the Node request (remote address, key, protocol). */
const callKey = createContextKey<CallContext | null>(null);

/** `Unauthenticated` -> `unauthenticated`, `FailedPrecondition` -> `failed_precondition`. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Node's errors for a write to a response the client already closed (HTTP/1.1, HTTP/2). */
const closedStreamCodes: ReadonlySet<string> = new Set(["ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_CANCEL", "ECONNRESET", "EPIPE"]);

/**
 * Whether a stream's error only says that the client closed it (it hung up,
 * or aborted the call) while the router was still writing: no error of
 * anyone's, so it is logged as a cancel, not with Node's write error.
 */
export function clientClosed(err: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return true;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && closedStreamCodes.has(code)) return true;
  }
  return false;
}

function transportOf(contentType: string | undefined): Caller["transport"] {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** For connectNodeAdapter's `contextValues`: who calls, read from the Node request before any handler runs. */
export function rpcContextValues(auth: Auth): (req: { headers: Record<string, string | string[] | undefined>; socket?: { remoteAddress?: string; remotePort?: number } | null }) => ContextValues {
  const idPrefix = randomUUID().slice(0, 8);
  let counter = 0;
  return (req) => {
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && given !== "" && given.length <= 200 ? given : `rpc-${idPrefix}-${(counter++).toString(36)}`;
    const authorization = req.headers["authorization"];
    const values = createContextValues();
    values.set(callKey, {
      requestId,
      caller: {
        remote: remoteOf(req.socket),
        key: auth.keyOf(typeof authorization === "string" ? authorization : undefined),
        transport: transportOf(req.headers["content-type"] as string | undefined),
      },
    });
    return values;
  };
}

export interface CallLogOptions {
  logger: Logger;
  /** Skip the access-log line (as --access-log-exclude-prefixes does for REST paths). */
  excluded: (path: string) => boolean;
  /** Every finished call, for metrics. */
  onFinished: (service: string, method: string, code: string, seconds: number) => void;
}

/**
 * The outermost RPC interceptor: enters the caller's context (so control
 * actions know who called), answers with `x-request-id`, and writes one
 * access-log line per call when it ends, as the REST handler does for
 * every request. A stream's line is written when the stream ends.
 */
export function callLogInterceptor(options: CallLogOptions): Interceptor {
  const { logger } = options;
  return (next) => async (req) => {
    const call = req.contextValues.get(callKey) ?? { requestId: "", caller: { remote: "", key: "none", transport: "connect" } };
    const startedMs = performance.now();
    const service = req.service.typeName;
    const method = req.method.name;
    const path = `/${service}/${method}`;
    let done = false;
    const finish = (code: string, err?: unknown, message?: string) => {
      if (done) return;
      done = true;
      const seconds = (performance.now() - startedMs) / 1000;
      options.onFinished(service, method, code, seconds);
      const level = accessLogLevel(code);
      if (!logger.isLevelEnabled(level) || options.excluded(path)) return;
      const line: Record<string, unknown> = { requestId: call.requestId, rpc: path, transport: call.caller.transport, remote: call.caller.remote, key: call.caller.key, code, ms: Math.round(seconds * 1000) };
      if (err !== undefined || message !== undefined) line.message = message ?? ConnectError.from(err).rawMessage;
      logger[level](line, "rpc");
    };
    try {
      const res = await callContext.run(call, () => next(req));
      if (call.requestId) res.header.set("x-request-id", call.requestId);
      if (!res.stream) {
        finish("ok");
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
            finish("ok");
          } catch (err) {
            if (clientClosed(err, req.signal)) finish("canceled", undefined, "client closed the stream");
            else finish(codeName(ConnectError.from(err).code), err);
            throw err;
          } finally {
            // A client that went away ends the stream without an error.
            finish("canceled");
          }
        })(),
      };
    } catch (err) {
      const e = ConnectError.from(err);
      if (call.requestId) e.metadata.set("x-request-id", call.requestId);
      finish(codeName(e.code), e);
      throw e;
    }
  };
}
