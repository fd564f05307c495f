import { RouterError } from "../errors.js";

/** Node timers hold at most 2^31-1 ms (about 24.8 days); a longer one fires at once. */
export const maxTimerMs = 2_147_483_647;

/**
 * A per-call duration in seconds (`drain_timeout_s`, `timeout_s`, from a
 * query, a JSON body or an RPC field) as ms, or undefined when not given.
 * Refuses what is not a positive number a Node timer can hold.
 */
export function secondsToMs(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = typeof value === "number" || typeof value === "string" ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0 || n * 1000 > maxTimerMs) {
    throw new RouterError("invalid_request", `${name} must be a positive number of seconds up to ${Math.floor(maxTimerMs / 1000)}, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`, { details: { param: name } });
  }
  return n * 1000;
}
