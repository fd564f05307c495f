import type { Logger } from "../log.js";
import type { FailureKind } from "../proxy/network-errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";

/** Options of {@link createOutlierDetector}. */
export interface OutlierDetectorOptions {
  registry: Registry;
  logger: Logger;
  /** Consecutive failed requests (connection errors, 5xx, timeouts) before ejection; default 3. */
  consecutiveFailures: number;
  /** First ejection lasts this long; each further one doubles it. Default 1 s. */
  baseEjectionMs: number;
  /** Longest ejection; default 60 s. */
  maxEjectionMs: number;
  /** Probes the worker when its ejection ends. */
  probe: (worker: Worker) => void;
  /** Told of each ejection (metrics). */
  onEject?: (worker: Worker) => void;
}

export interface OutlierDetector {
  /** A request finished well: clears the failure streak (cheap when there is none). */
  onSuccess(worker: Worker): void;
  onFailure(worker: Worker, kind: FailureKind, detail: string): void;
  /** The probe at the end of an ejection failed: eject again, twice as long, and probe again then. */
  probeFailed(worker: Worker): void;
}

/**
 * Passive health: real traffic tells about a worker long before the next
 * active probe. A worker that fails fast has the fewest active requests and
 * would attract least-request traffic, so failures take it out of rotation
 * at once; it comes back only after a probe at the end of an exponentially
 * growing ejection.
 */
export function createOutlierDetector(options: OutlierDetectorOptions): OutlierDetector {
  const { registry, logger } = options;
  return {
    onSuccess(worker) {
      if (worker.consecutiveFailures === 0 || worker.dead) return;
      registry.requestOk(worker.url);
    },
    onFailure(worker, kind, detail) {
      if (registry.get(worker.url) !== worker) return;
      // A refused connection is certain: the process is not there (one is
      // enough to eject), and whatever answers at the URL later holds its base weights.
      const processGone = kind === "not_sent";
      const threshold = processGone ? 1 : options.consecutiveFailures;
      const ejectedForMs = registry.requestFailed(worker.url, { lastError: `${kind}: ${detail}`, processGone, threshold }, ejectionMs);
      if (ejectedForMs > 0) {
        logger.warn({ worker: worker.url, kind, detail, ejectedForMs, ejections: worker.ejectionCount }, "worker ejected after failed requests");
        options.onEject?.(worker);
        schedule(worker, ejectedForMs);
      }
    },
    probeFailed(worker) {
      if (registry.get(worker.url) !== worker || !worker.dead || worker.deadReason !== "ejected") return;
      const ms = registry.extendEjection(worker.url, ejectionMs);
      logger.info({ worker: worker.url, ejectedForMs: ms, ejections: worker.ejectionCount }, "ejected worker still failing: ejection extended");
      schedule(worker, ms);
    },
  };

  function ejectionMs(count: number): number {
    return Math.min(options.maxEjectionMs, options.baseEjectionMs * 2 ** (count - 1));
  }

  function schedule(worker: Worker, ms: number): void {
    setTimeout(() => {
      if (registry.get(worker.url) === worker) options.probe(worker);
    }, ms).unref();
  }
}
