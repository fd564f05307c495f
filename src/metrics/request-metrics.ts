import { Counter, Histogram, type MetricValue, type Registry as PromRegistry } from "prom-client";

/** Upper bounds of `sgl_router_request_duration_seconds` (seconds). */
const durationBuckets = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const durationName = "sgl_router_request_duration_seconds";
const durationHelp = "Time from request arrival to the end of the answer, by route.";

type HistogramValue = MetricValue<string> & { metricName: string; sharedLabels: Record<string, string> };
type RequestLabels = { route: string; method: string; status: string; worker: string };

/** The data plane's per-request series. */
export interface RequestMetrics {
  /** One finished request. */
  observe(route: string, method: string, status: number, worker: string, seconds: number, answerBytes: number, retried: number): void;
  /** A worker was ejected by passive health. */
  ejected(worker: string): void;
}

/**
 * Request counts, durations, retries, ejections and proxied bytes. The two
 * per-request series are counted in plain objects and handed to prom-client
 * only when /metrics is scraped (it still writes the text and escapes the
 * labels): its label children hash their labels on every inc/observe, which
 * showed in profiles of small requests.
 */
export function createRequestMetrics(prom: PromRegistry): RequestMetrics {
  const requestCounts = new Map<string, { labels: RequestLabels; value: number }>();
  new Counter({
    name: "sgl_router_requests_total",
    help: "Requests answered, by route, method, status and worker (empty worker: answered by the router itself).",
    labelNames: ["route", "method", "status", "worker"] as const,
    registers: [prom],
    collect() {
      this.reset();
      for (const c of requestCounts.values()) this.inc(c.labels, c.value);
    },
  });
  const durations = new RouteDurations(prom);
  const retries = new Counter({ name: "sgl_router_retries_total", help: "Requests moved to another worker after a failure before any answer byte.", labelNames: ["route"] as const, registers: [prom] });
  const ejections = new Counter({ name: "sgl_router_worker_ejections_total", help: "Workers taken out of rotation by failed requests (passive health).", labelNames: ["worker"] as const, registers: [prom] });
  const bytes = new Counter({ name: "sgl_router_proxied_bytes_total", help: "Answer bytes streamed from workers to clients.", registers: [prom] });
  return {
    observe(route, method, status, worker, seconds, answerBytes, retried) {
      const key = `${route} ${method} ${status} ${worker}`;
      let counter = requestCounts.get(key);
      if (counter === undefined) {
        counter = { labels: { route, method, status: String(status), worker }, value: 0 };
        requestCounts.set(key, counter);
      }
      counter.value++;
      durations.observeRoute(route, seconds);
      if (answerBytes > 0) bytes.inc(answerBytes);
      if (retried > 0) retries.inc({ route }, retried);
    },
    ejected(worker) {
      ejections.inc({ worker });
    },
  };
}

/**
 * `sgl_router_request_duration_seconds`: prom-client's Histogram, whose
 * samples come from plain per-route counters. prom-client's registry writes
 * the text from `getForPromString` when a metric has one, and Histogram's
 * own `get` (the JSON form) reads it too, merging the shared labels.
 */
class RouteDurations extends Histogram<string> {
  private readonly routes = new Map<string, DurationSeries>();

  constructor(prom: PromRegistry) {
    super({ name: durationName, help: durationHelp, labelNames: ["route"], buckets: durationBuckets, registers: [prom] });
  }

  observeRoute(route: string, seconds: number): void {
    let series = this.routes.get(route);
    if (series === undefined) {
      series = new DurationSeries(route);
      this.routes.set(route, series);
    }
    series.observe(seconds);
  }

  async getForPromString() {
    const values: HistogramValue[] = [];
    for (const s of this.routes.values()) s.export(values);
    return { name: durationName, help: durationHelp, type: "histogram", aggregator: "sum", values };
  }
}

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
