import { createControl, type Control } from "../admin/control.js";
import { createAdmission, type Admission } from "../admission/admission.js";
import type { AffinityMap } from "../admission/affinity.js";
import { createAudit, type Audit } from "../audit/audit.js";
import { createPolicy } from "../balancer/index.js";
import type { RouterOptions } from "../config/options.js";
import { createHealthChecker, type HealthChecker } from "../health/health-checker.js";
import { createOutlierDetector, type OutlierDetector } from "../health/outlier-detector.js";
import { createSleepCheck, type SleepCheck } from "../health/sleep-check.js";
import type { Logger } from "../log.js";
import { ManagedView } from "../launcher/managed-view.js";
import { createMetrics, type Metrics } from "../metrics/metrics.js";
import { createUpstream, type Upstream } from "../proxy/upstream.js";
import { createRefitCoordinator, type RefitCoordinator } from "../refit/coordinator.js";
import { Registry } from "../registry/registry.js";
import { createLoraPool, type LoraPool } from "../lora/lora-action.js";
import type { RouterState } from "../state/router-state.js";

/** The parts every front door shares: one of each, built once. */
export interface Core {
  readonly registry: Registry;
  readonly upstream: Upstream;
  /** Which worker holds each image / video id. */
  readonly images: AffinityMap;
  readonly videos: AffinityMap;
  readonly meshes: AffinityMap;
  readonly health: HealthChecker;
  readonly outliers: OutlierDetector;
  /** Tells a sleeping worker's 500s from faults. */
  readonly sleepCheck: SleepCheck;
  readonly audit: Audit;
  /** Unaudited: the refit coordinator and the health checks use it inside actions already audited. */
  readonly control: Control;
  readonly admission: Admission;
  /** --state-file, --state-store (etcd, shared with other routers) or nothing: opened before the core. */
  readonly state: RouterState;
  readonly refit: RefitCoordinator;
  /** `refit` under the cluster-wide refit lock (etcd), as the doors call it; `refit` itself without etcd. */
  readonly lockedRefit: RefitCoordinator;
  /** The pool's LoRA: changes as control actions, re-sync of joining workers (unaudited, like control). */
  readonly lora: LoraPool;
  readonly metrics: Metrics;
  /** The launcher's workers as the views show them (failed ones too); attached once the launcher is built. */
  readonly managed: ManagedView;
}

/**
 * The core, in dependency order: the registry; health (active probes) and
 * the outlier detector (passive), which call each other late; control;
 * admission; the refit coordinator (with its part of the state); the
 * metrics that read them all. Nothing here runs per request.
 */
export function buildCore(options: RouterOptions, logger: Logger, state: RouterState): Core {
  const registry = new Registry();
  const upstream = createUpstream({ maxConnections: options.maxConnections, timeoutMs: options.timeoutMs });
  // With --state-store the id maps are shared through etcd.
  const { images, videos, meshes } = state;
  // Health probes an ejected worker through the outlier detector and vice versa: each reaches the other through a closure.
  let outliers: OutlierDetector | null = null;
  const health = createHealthChecker({
    registry,
    upstream,
    logger,
    intervalMs: options.healthCheckIntervalMs,
    timeoutMs: options.healthCheckTimeoutMs,
    failureThreshold: options.healthCheckFailureThreshold,
    successThreshold: options.healthCheckSuccessThreshold,
    onEjectedProbeFailed: (w) => outliers?.probeFailed(w),
    // Another process answers behind the URL: it holds its base weights and
    // is awake, whatever the router knew of the old one.
    onProcessChanged: (w, previous, current) => {
      logger.warn({ worker: w.url, previous, current }, "the process behind a worker URL changed: treated as a new worker");
      registry.processChanged(w.url);
    },
  });
  let metrics: Metrics | null = null;
  const audit = createAudit({ logger, onFinished: (e) => metrics?.controlAction(e) });
  const control = createControl({ registry, upstream, health, logger, probeTimeoutMs: options.healthCheckTimeoutMs, broadcastTimeoutMs: options.weightCallTimeoutMs, affinities: [images, videos, meshes] });
  const admission = buildAdmission(registry, options);
  // The refit's weights and the pool's workers, each written by its owner.
  const refit = createRefitCoordinator({ registry, admission, control, logger, drainTimeoutMs: options.drainTimeoutMs, refitTimeoutMs: options.refitTimeoutMs, store: state.refit, drainPeers: state.drainPeers ?? null });
  const managed = new ManagedView(registry);
  const refitKinds: Record<string, string> = { disk: "disk refit", tensor: "tensor refit", sleep: "memory release" };
  const op = () => refit.status().operation;
  // The coordinator as admin callers use it: under the cluster-wide refit lock with etcd (the LoRA change too).
  const lockedRefit = state.lockRefit(refit);
  // A LoRA change is the pool's operation "lora" while it runs: not another operation it must wait for.
  const lora = createLoraPool({ registry, control, logger, drainTimeoutMs: options.drainTimeoutMs, refitOperation: () => (op() === null || op() === "lora" ? null : (refitKinds[op()!] ?? op())), operation: (ms, run) => lockedRefit.loraChange(ms, run), weightVersion: () => refit.version, sweep: () => refit.sweep() });
  refit.shareLora(() => lora.snapshot());
  // The pool's LoRA as the state left it, before any worker registers: on etcd another router set it (the workers it lists are trusted, as the routers serving them do); after a restart on the file each worker is replayed before traffic.
  lora.adopt(state.refit?.load()?.lora, state.kind === "etcd");
  const builtMetrics = createMetrics({ registry, admission, weightVersion: () => refit.version, failedManaged: () => managed.failed() });
  metrics = builtMetrics;
  outliers = createOutlierDetector({
    registry,
    logger,
    consecutiveFailures: options.ejectAfterFailures,
    baseEjectionMs: 1_000,
    maxEjectionMs: 60_000,
    probe: (w) => void health.checkOne(w).catch(() => undefined),
    onEject: (w) => builtMetrics.ejected(w.displayId),
  });
  const sleepCheck = createSleepCheck({ registry, upstream, logger, timeoutMs: options.healthCheckTimeoutMs, recheckMs: options.healthCheckIntervalMs });
  return { registry, upstream, images, videos, meshes, health, outliers, sleepCheck, audit, control, admission, state, refit, lockedRefit, lora, metrics: builtMetrics, managed };
}

function buildAdmission(registry: Registry, options: RouterOptions): Admission {
  // earliest-finish plans in admission; the balancer's policy is then unused (least-request is passed for completeness).
  const planned = options.routingAlgorithm === "earliest-finish";
  return createAdmission({
    registry,
    policy: createPolicy(planned ? "least-request" : options.routingAlgorithm),
    mode: planned ? "earliest-finish" : "policy",
    workerBatchSize: options.workerBatchSize,
    hedge: options.hedge === "on",
    maxConcurrencyPerWorker: options.maxConcurrencyPerWorker,
    queueSize: options.queueSize,
    queueTimeoutMs: options.queueTimeoutMs,
  });
}
