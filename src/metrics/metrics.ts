import { Counter, Gauge, Registry as PromRegistry, type MetricValue } from "prom-client";
import type { Admission } from "../admission/admission.js";
import type { Registry } from "../registry/registry.js";
import { workerState, type Worker, type WorkerState } from "../registry/worker.js";
import type { WorkerScheduling } from "../admission/admission.js";
import { VERSION } from "../version.js";
import { createControlMetrics } from "./control-metrics.js";

const states: WorkerState[] = ["healthy", "suspect", "dead", "sleeping", "syncing", "draining", "stale"];

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  registry: Registry;
  admission: Admission;
  weightVersion: () => string;
}

/**
 * Prometheus metrics (prom-client: the text format, label escaping and
 * histogram buckets are its job). Per-request work is two counter increments
 * and one histogram observation; worker gauges are read from the registry
 * only when /metrics is scraped.
 */
export function createMetrics(options: MetricsOptions) {
  const prom = new PromRegistry();
  // The two per-request series are counted in plain objects and handed to
  // prom-client only when /metrics is scraped (it still writes the text and
  // escapes the labels): its label children hash their labels on every
  // inc/observe, which showed in profiles of small requests.
  const requestCounts = new Map<string, { labels: { route: string; method: string; status: string; worker: string }; value: number }>();
  prom.registerMetric(
    scrapedMetric("sgl_router_requests_total", "Requests answered, by route, method, status and worker (empty worker: answered by the router itself).", "counter", () =>
      Array.from(requestCounts.values(), (c) => ({ labels: { ...c.labels }, value: c.value })),
    ),
  );
  const durations = new Map<string, DurationSeries>();
  prom.registerMetric(
    scrapedMetric("sgl_router_request_duration_seconds", "Time from request arrival to the end of the answer, by route.", "histogram", () => {
      const values: HistogramValue[] = [];
      for (const s of durations.values()) s.export(values);
      return values;
    }),
  );
  const retries = new Counter({ name: "sgl_router_retries_total", help: "Requests moved to another worker after a failure before any answer byte.", labelNames: ["route"] as const, registers: [prom] });
  const ejections = new Counter({ name: "sgl_router_worker_ejections_total", help: "Workers taken out of rotation by failed requests (passive health).", labelNames: ["worker"] as const, registers: [prom] });
  const bytes = new Counter({ name: "sgl_router_proxied_bytes_total", help: "Answer bytes streamed from workers to clients.", registers: [prom] });
  const { registry, admission } = options;

  new Gauge({ name: "sgl_router_in_flight_requests", help: "Generation requests dispatched to workers and not finished.", registers: [prom], collect() { this.set(admission.inFlight); } });
  new Gauge({ name: "sgl_router_queued_requests", help: "Requests waiting in the router queue (refit, sleep, concurrency caps).", registers: [prom], collect() { this.set(admission.queued); } });
  new Gauge({
    name: "sgl_router_worker_state",
    help: "1 for the worker's current state.",
    labelNames: ["worker", "state"] as const,
    registers: [prom],
    collect() {
      this.reset();
      for (const w of registry.all()) {
        const s = workerState(w);
        for (const st of states) this.set({ worker: w.displayId, state: st }, st === s ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "sgl_router_worker_active_requests",
    help: "Requests in flight per worker.",
    labelNames: ["worker"] as const,
    registers: [prom],
    collect() {
      this.reset();
      for (const w of registry.all()) this.set({ worker: w.displayId }, w.activeRequests);
    },
  });
  // The scheduler's view, computed once per scrape for all three gauges.
  let scrape: { at: number; view: Map<Worker, WorkerScheduling> } | null = null;
  const schedulingView = () => {
    const now = Date.now();
    if (scrape === null || now - scrape.at > 100) scrape = { at: now, view: admission.scheduling() };
    return scrape.view;
  };
  const schedulingGauge = (name: string, help: string, pick: (s: WorkerScheduling) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["worker"] as const,
      registers: [prom],
      collect() {
        this.reset();
        for (const [w, s] of schedulingView()) this.set({ worker: w.displayId }, pick(s));
      },
    });
  schedulingGauge("sgl_router_worker_speed", "Learned speed per worker, relative to the fleet average for its model (1 = average).", (s) => s.speed);
  schedulingGauge("sgl_router_worker_speed_noise", "Relative scatter of the worker's service times around the predictions (0.05 = 5%); closer predicted finishes are a tie.", (s) => s.noise);
  schedulingGauge("sgl_router_worker_in_flight_work_seconds", "Predicted GPU seconds of work dispatched to the worker and not finished.", (s) => s.inFlightWorkMs / 1000);
  schedulingGauge("sgl_router_worker_queued_work_seconds", "Predicted GPU seconds of queued requests that may go to the worker (shared among their candidates).", (s) => s.queuedWorkMs / 1000);
  new Gauge({
    name: "sgl_router_worker_weight_version_info",
    help: "1 labelled with the weight version each worker holds.",
    labelNames: ["worker", "version"] as const,
    registers: [prom],
    collect() {
      this.reset();
      for (const w of registry.all()) this.set({ worker: w.displayId, version: w.weightVersion ?? "unknown" }, 1);
    },
  });
  new Gauge({
    name: "sgl_router_weight_version_info",
    help: "1 labelled with the pool's current weight version.",
    labelNames: ["version"] as const,
    registers: [prom],
    collect() {
      this.reset();
      this.set({ version: options.weightVersion() }, 1);
    },
  });
  new Gauge({ name: "sgl_router_info", help: "Router build.", labelNames: ["version"] as const, registers: [prom] }).set({ version: VERSION }, 1);

  return {
    contentType: prom.contentType,
    ...createControlMetrics(prom),
    /** One finished request. */
    observe(route: string, method: string, status: number, worker: string, seconds: number, answerBytes: number, retried: number): void {
      const key = `${route} ${method} ${status} ${worker}`;
      let counter = requestCounts.get(key);
      if (counter === undefined) {
        counter = { labels: { route, method, status: String(status), worker }, value: 0 };
        requestCounts.set(key, counter);
      }
      counter.value++;
      let histogram = durations.get(route);
      if (histogram === undefined) {
        histogram = new DurationSeries(route);
        durations.set(route, histogram);
      }
      histogram.observe(seconds);
      if (answerBytes > 0) bytes.inc(answerBytes);
      if (retried > 0) retries.inc({ route }, retried);
    },
    /** A worker was ejected by passive health. */
    ejected(worker: string): void {
      ejections.inc({ worker });
    },
    text: () => prom.metrics(),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Upper bounds of `sgl_router_request_duration_seconds` (seconds). */
const durationBuckets = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const durationName = "sgl_router_request_duration_seconds";

type HistogramValue = MetricValue<string> & { metricName: string; sharedLabels: Record<string, string> };

/** One route's duration histogram: a count per bucket, the sum and the count. */
class DurationSeries {
  readonly counts = new Array<number>(durationBuckets.length).fill(0);
  sum = 0;
  count = 0;
  /** Shared by every sample line of the series, as prom-client does. */
  readonly shared: Record<string, string>;

  constructor(route: string) {
    this.shared = { route };
  }

  observe(seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < durationBuckets.length; i++) {
      if (seconds <= durationBuckets[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  /** The sample lines prom-client's Histogram writes: cumulative buckets, +Inf, _sum, _count. */
  export(out: HistogramValue[]): void {
    let acc = 0;
    for (let i = 0; i < durationBuckets.length; i++) {
      acc += this.counts[i]!;
      out.push({ labels: { le: durationBuckets[i]! }, value: acc, metricName: `${durationName}_bucket`, sharedLabels: this.shared });
    }
    out.push({ labels: { le: "+Inf" }, value: this.count, metricName: `${durationName}_bucket`, sharedLabels: this.shared });
    out.push({ labels: {}, value: this.sum, metricName: `${durationName}_sum`, sharedLabels: this.shared });
    out.push({ labels: {}, value: this.count, metricName: `${durationName}_count`, sharedLabels: this.shared });
  }
}

/**
 * A metric whose samples are computed when the registry is read (the shape
 * prom-client's registry reads from its own metric classes).
 */
function scrapedMetric(name: string, help: string, type: "counter" | "histogram", values: () => MetricValue<string>[]) {
  const metric = {
    name,
    help,
    type,
    aggregator: "sum" as const,
    get: async () => ({ name, help, type, aggregator: "sum", values: values().map(splay) }),
    getForPromString: async () => ({ name, help, type, aggregator: "sum", values: values() }),
    reset() {},
  };
  return metric as unknown as Parameters<PromRegistry["registerMetric"]>[0];
}

/** JSON form of a sample: the shared labels merged into its labels. */
function splay(v: MetricValue<string>): MetricValue<string> {
  const { sharedLabels, ...rest } = v as HistogramValue;
  return sharedLabels ? { ...rest, labels: { ...rest.labels, ...sharedLabels } } : v;
}
