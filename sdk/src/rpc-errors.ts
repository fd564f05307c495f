import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { RouterClientError } from "./errors.js";

/** The HTTP status the Connect protocol answers each code with. */
const httpStatusOf: Readonly<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** `Code.FailedPrecondition` -> `failed_precondition`, Connect's own name of the code. */
function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

function flatMetadata(metadata: Headers): Record<string, string> {
  const flat: Record<string, string> = {};
  metadata.forEach((value, name) => (flat[name] = value));
  return flat;
}

/**
 * An RPC failure as a RouterClientError. The router's code comes from the
 * `x-router-error-code` metadata; its auth check refuses with
 * `Unauthenticated` alone, which is the router's `unauthenticated` (no other
 * failure of the router maps to that code). Without an answer (a refused
 * connection, the caller's abort, the time limit) the status is 0 and the
 * code the data plane's (`network_error`, `aborted`, `timeout`).
 */
export function errorFromRpc(reason: unknown, method: DescMethod): RouterClientError {
  if (reason instanceof RouterClientError) return reason;
  const err = ConnectError.from(reason);
  const headers = flatMetadata(err.metadata);
  const answered = Object.keys(headers).length > 0;
  const routerCode = headers["x-router-error-code"] || (err.code === Code.Unauthenticated ? "unauthenticated" : null);
  const unanswered = routerCode !== null || answered ? null : err.code === Code.Canceled ? "aborted" : err.code === Code.DeadlineExceeded ? "timeout" : err.code === Code.Unavailable ? "network_error" : null;
  if (unanswered !== null) {
    const message = `${method.parent.name}.${method.name} failed: ${err.rawMessage}`;
    return new RouterClientError({ status: 0, code: unanswered, routerCode, rpcCode: err.code, message, headers, cause: err });
  }
  const status = httpStatusOf[err.code] ?? 500;
  return new RouterClientError({ status, code: routerCode ?? codeName(err.code), routerCode, rpcCode: err.code, message: err.rawMessage, headers, cause: err });
}

async function* rethrown<T>(messages: AsyncIterable<T>, method: DescMethod): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw errorFromRpc(err, method);
  }
}

/**
 * A transport whose failures are RouterClientErrors, so that the generated
 * clients on it throw the SDK's one error type. Connect re-wraps whatever
 * an interceptor throws into a ConnectError, hence a transport, not an
 * interceptor.
 */
export function routerErrorTransport(inner: Transport): Transport {
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      try {
        return await inner.unary(method, signal, timeoutMs, header, input, contextValues);
      } catch (err) {
        throw errorFromRpc(err, method);
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      try {
        const res = await inner.stream(method, signal, timeoutMs, header, input, contextValues);
        return { ...res, message: rethrown(res.message, method) };
      } catch (err) {
        throw errorFromRpc(err, method);
      }
    },
  };
}
