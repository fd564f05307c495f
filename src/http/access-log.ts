import { performance } from "node:perf_hooks";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { accessLogLevel } from "../access-log-level.js";
import { remoteOf } from "../audit/call-context.js";
import { displayIdOf } from "../registry/worker-url.js";
import type { RestCall } from "./rest-call.js";

/**
 * The end of a REST request: its metrics, and its access-log line (at info,
 * refusals at warn, unless its path is excluded), with the caller's address.
 * Reads what the call noted on the way.
 */
export function createAccessLog(metrics: Metrics, logger: Logger, excludedPrefixes: readonly string[]) {
  return function finished(call: RestCall): void {
    const { req, res } = call;
    const seconds = (performance.now() - call.startedMs) / 1000;
    const status = res.headersSent ? res.statusCode : 499;
    metrics.observe(call.routeLabel, req.method ?? "GET", status, call.workerUrl ? displayIdOf(call.workerUrl) : "", seconds, call.answerBytes, call.retries);
    const level = accessLogLevel(call.errorCode, status);
    if (!logger.isLevelEnabled(level)) return;
    const path = call.path;
    for (const p of excludedPrefixes) if (path.startsWith(p)) return;
    // retries only when there were some, as the line always had it; hedge (which copy's answer the client got) and hedgeWorker only for a hedged request.
    logger[level]({ requestId: call.requestId, method: req.method, path, status, code: call.errorCode, remote: remoteOf(req.socket), ms: Math.round(seconds * 1000), queueMs: call.queueMs, worker: call.workerUrl, retries: call.retries === 0 ? undefined : call.retries, hedge: call.hedge?.winner, hedgeWorker: call.hedge?.worker }, "request");
  };
}
