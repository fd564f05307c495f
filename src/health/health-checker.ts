import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { createFingerprintJudge } from "./fingerprint.js";
import { probeCapabilities, probeHealth, probeParallelSlots, type ProbeProblem } from "./probe.js";

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
  const fingerprints = createFingerprintJudge();
  registry.on("change", (e) => {
    if (e.type === "removed") fingerprints.forget(e.worker.url);
  });
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
      registry.noteProbe(worker);
      if (problem !== null) onFailure(worker, problem);
      else await onSuccess(worker);
    } finally {
      inFlight.delete(worker.url);
    }
  }

  function onFailure(worker: Worker, problem: ProbeProblem): void {
    if (registry.healthProbeFailed(worker.url, problem, options.failureThreshold)) {
      logger.warn({ worker: worker.url, failures: worker.consecutiveFailures, problem: problem.message }, "worker failed consecutive health checks: marked dead");
    }
    if (worker.dead && worker.deadReason === "ejected") options.onEjectedProbeFailed?.(worker);
  }

  async function onSuccess(worker: Worker): Promise<void> {
    // The model card gives capabilities, and maybe a process fingerprint.
    let capsOk = false;
    try {
      const caps = await probeCapabilities(upstream, worker.url, options.timeoutMs);
      capsOk = true;
      const stored = worker.capabilities.instanceFingerprint;
      const { fingerprint, change } = fingerprints.judge(worker.url, caps.instanceFingerprint, stored, Date.now());
      caps.instanceFingerprint = fingerprint;
      // A worker warming up is ready once its card answers.
      const cardChanged = change !== null || stored !== fingerprint || worker.capabilities.taskType !== caps.taskType || worker.starting;
      caps.parallelSlots = await parallelSlotsNow(upstream, worker, cardChanged, options.timeoutMs);
      if (cardChanged || caps.parallelSlots !== worker.capabilities.parallelSlots) registry.setCapabilities(worker.url, caps);
      if (change !== null) options.onProcessChanged?.(worker, change.previous, change.current);
    } catch (err) {
      logger.debug({ worker: worker.url, err }, "capability probe failed");
    }
    if (registry.healthProbeOk(worker.url, capsOk, options.successThreshold)) {
      logger.info({ worker: worker.url }, "worker passed health checks: back in rotation");
    }
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

/**
 * A worker's parallel slots after a good probe: dp_size is read again only
 * when the worker may be another process (a changed card, or coming back),
 * so a healthy round stays two requests.
 */
async function parallelSlotsNow(upstream: Upstream, worker: Worker, cardChanged: boolean, timeoutMs: number): Promise<number | undefined> {
  if (!cardChanged && !worker.dead) return worker.capabilities.parallelSlots;
  return probeParallelSlots(upstream, worker.url, timeoutMs);
}
