import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { probeCapabilities, probeHealth } from "./probe.js";

/** Options of {@link createHealthChecker}. */
export interface HealthCheckerOptions {
  registry: Registry;
  upstream: Upstream;
  logger: Logger;
  intervalMs: number;
  timeoutMs: number;
  /** Failed probes in a row before a worker is dead. */
  failureThreshold: number;
  /** Good probes in a row before a dead worker is back. */
  successThreshold: number;
  /** Called when the probe that ends an ejection fails (the outlier detector extends it). */
  onEjectedProbeFailed?: (worker: Worker) => void;
  /** Called when a probe finds another process behind a worker URL (issue: refit re-sync). */
  onProcessChanged?: (worker: Worker, previous: string, current: string) => void;
}

export interface HealthChecker {
  start(): void;
  stop(): void;
  /** Probes every worker once now (tests, and right after registration). */
  checkAll(): Promise<void>;
  checkOne(worker: Worker): Promise<void>;
}

/**
 * Active health checks. Workers are probed concurrently, at most one probe per
 * worker at a time, so a worker whose probe hangs does not delay the others.
 * Quarantined workers (manual) are not probed back in; every other dead
 * worker is, and returns after `successThreshold` good probes.
 */
export function createHealthChecker(options: HealthCheckerOptions): HealthChecker {
  const { registry, upstream, logger } = options;
  const inFlight = new Set<string>();
  let timer: NodeJS.Timeout | null = null;

  async function checkOne(worker: Worker): Promise<void> {
    if (inFlight.has(worker.url)) return;
    // An ejected worker is left alone until its ejection ends.
    // (A timer may fire a few ms early: allow for it.)
    if (worker.dead && worker.deadReason === "ejected" && Date.now() + 50 < worker.ejectedUntilMs) return;
    inFlight.add(worker.url);
    try {
      const problem = await probeHealth(upstream, worker.url, options.timeoutMs);
      if (registry.get(worker.url) !== worker) return; // removed meanwhile
      worker.lastProbeAtMs = Date.now();
      if (problem !== null) onFailure(worker, problem);
      else await onSuccess(worker);
    } finally {
      inFlight.delete(worker.url);
    }
  }

  function onFailure(worker: Worker, problem: string): void {
    registry.update(worker.url, "health_probe_failed", (w) => {
      w.consecutiveFailures++;
      w.consecutiveSuccesses = 0;
      w.lastError = problem;
      if (!w.dead && w.consecutiveFailures >= options.failureThreshold) {
        w.dead = true;
        w.deadReason = "health_check";
        logger.warn({ worker: w.url, failures: w.consecutiveFailures, problem }, "worker failed consecutive health checks: marked dead");
      }
    });
    if (worker.dead && worker.deadReason === "ejected") options.onEjectedProbeFailed?.(worker);
  }

  async function onSuccess(worker: Worker): Promise<void> {
    // The model card also tells whether the process behind the URL changed
    // (its `created` time): a restarted worker holds its base weights again.
    try {
      const caps = await probeCapabilities(upstream, worker.url, options.timeoutMs);
      const previous = worker.capabilities.instanceFingerprint;
      const changed = previous !== null && caps.instanceFingerprint !== null && previous !== caps.instanceFingerprint;
      if (changed || worker.capabilities.taskType === null) {
        registry.update(worker.url, "capabilities", (w) => {
          w.capabilities = caps;
        });
      }
      if (changed) options.onProcessChanged?.(worker, previous, caps.instanceFingerprint!);
    } catch (err) {
      logger.debug({ worker: worker.url, err }, "capability probe failed");
    }
    registry.update(worker.url, "health_probe_ok", (w) => {
      w.lastError = null;
      if (!w.dead) {
        w.consecutiveFailures = 0;
        // Ejections grow while a worker keeps failing; five quiet minutes reset them.
        if (w.ejectionCount > 0 && Date.now() > w.ejectedUntilMs + 300_000) w.ejectionCount = 0;
        return;
      }
      if (w.deadReason === "manual" || w.deadReason === "refit_failed" || w.deadReason === "stale_weights") return;
      w.consecutiveSuccesses++;
      // A worker never seen healthy, or one whose ejection ran out, needs one good probe.
      const needed = w.deadReason === "unreachable" || w.deadReason === "ejected" ? 1 : options.successThreshold;
      if (w.consecutiveSuccesses >= needed) {
        w.dead = false;
        w.deadReason = null;
        w.consecutiveFailures = 0;
        w.consecutiveSuccesses = 0;
        logger.info({ worker: w.url }, "worker passed health checks: back in rotation");
      }
    });
  }

  async function checkAll(): Promise<void> {
    await Promise.all(registry.all().map((w) => checkOne(w).catch((err: unknown) => logger.error({ err, worker: w.url }, "health check error"))));
  }

  return {
    start() {
      if (timer) return;
      timer = setInterval(() => void checkAll(), options.intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    checkAll,
    checkOne,
  };
}
