import type { ManagedWorker } from "../launcher/launcher-api.js";
import { collectDefaultMetrics, Registry as PromRegistry } from "prom-client";
import type { Admission } from "../admission/admission.js";
import type { Registry } from "../registry/registry.js";
import { createControlMetrics, type ControlMetrics } from "./control-metrics.js";
import { createRequestMetrics, type RequestMetrics } from "./request-metrics.js";
import { createRolloutMetrics, type RolloutMetrics } from "./rollout-metrics.js";
import { registerHedgeCounters, registerSchedulingGauges } from "./scheduling-gauges.js";
import { registerPoolGauges, registerVersionGauges } from "./worker-gauges.js";

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  registry: Registry;
  admission: Admission;
  weightVersion: () => string;
  /** Launcher-managed workers that failed (not in the registry): shown as state `failed`. */
  failedManaged?: () => readonly ManagedWorker[];
}

/** The router's /metrics: every series, and the text a scrape reads. */
export interface Metrics extends RequestMetrics, ControlMetrics, RolloutMetrics {
  readonly contentType: string;
  text(): Promise<string>;
}

/**
 * Prometheus metrics (prom-client: the text format, label escaping and
 * histogram buckets are its job). Per-request work is two counter increments
 * and one histogram observation; worker gauges are read from the registry
 * only when /metrics is scraped. prom-client's default process and Node.js
 * metrics come last.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const prom = new PromRegistry();
  const requests = createRequestMetrics(prom);
  registerPoolGauges(prom, options.registry, options.admission, options.failedManaged ?? (() => []));
  registerSchedulingGauges(prom, options.admission);
  registerHedgeCounters(prom, options.admission);
  registerVersionGauges(prom, options.registry, options.weightVersion);
  const control = createControlMetrics(prom);
  const rollouts = createRolloutMetrics(prom);
  // process_* (CPU, memory, open files, start time) and nodejs_* (event-loop
  // lag, heap, GC): whether the router itself is the bottleneck.
  collectDefaultMetrics({ register: prom });
  return {
    contentType: prom.contentType,
    observe: requests.observe,
    ejected: requests.ejected,
    rpc: control.rpc,
    controlAction: control.controlAction,
    workerRestarted: control.workerRestarted,
    rolloutJobs: rollouts.rolloutJobs,
    text: () => prom.metrics(),
  };
}
