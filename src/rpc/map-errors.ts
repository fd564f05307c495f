import { toConnectError } from "./errors.js";

/**
 * Wraps each handler so that a RouterError becomes the matching Connect code
 * (one mapping, in rpc/errors.ts) instead of an opaque internal error.
 */
export function mapErrors<T extends Record<string, (...args: never[]) => unknown>>(impl: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl)) {
    out[name] = async function (this: unknown, ...args: never[]) {
      try {
        return await fn.apply(this, args);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  }
  return out as T;
}
