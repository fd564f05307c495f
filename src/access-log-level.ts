/** Codes of refusals an operator should see at warn: a key missing or wrong, a body over the limit, a full queue (REST and RPC names). */
const refusalCodes: ReadonlySet<string> = new Set(["unauthenticated", "body_too_large", "queue_full", "resource_exhausted"]);

/**
 * The level of an access-log line (REST `"request"`, RPC `"rpc"`): refusals
 * at warn, so that they show at `--log-level warning` and stand out in a log
 * store; every other answer, errors included, at info (errors of the router's
 * own are logged at error where they happen). `status` is the HTTP status,
 * when there is one: a worker's own 401 or 413 is a refusal too.
 */
export function accessLogLevel(code: string | undefined, status?: number): "info" | "warn" {
  if (status === 401 || status === 413) return "warn";
  return code !== undefined && refusalCodes.has(code) ? "warn" : "info";
}
