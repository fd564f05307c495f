import { Counter, Gauge, Histogram, Registry as PromRegistry } from "prom-client";
import type { Admission } from "../admission/admission.js";
import { adminPaths, dataPlanePaths, openPaths } from "../http/paths.js";
import type { Registry } from "../registry/registry.js";
import { workerState, type WorkerState } from "../registry/worker.js";
import { VERSION } from "../version.js";

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
  const requests = new Counter({
    name: "sgl_router_requests_total",
    help: "Requests answered, by route, method, status and worker (empty worker: answered by the router itself).",
    labelNames: ["route", "method", "status", "worker"] as const,
    registers: [prom],
  });
  const duration = new Histogram({
    name: "sgl_router_request_duration_seconds",
    help: "Time from request arrival to the end of the answer, by route.",
    labelNames: ["route"] as const,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [prom],
  });
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

  // Label children are looked up once per label set, not hashed per request.
  const requestChildren = new Map<string, { inc(): void }>();
  const durationChildren = new Map<string, { observe(v: number): void }>();

  return {
    contentType: prom.contentType,
    /** One finished request. */
    observe(route: string, method: string, status: number, worker: string, seconds: number, answerBytes: number, retried: number): void {
      const key = `${route} ${method} ${status} ${worker}`;
      let counter = requestChildren.get(key);
      if (counter === undefined) {
        counter = requests.labels({ route, method, status: String(status), worker });
        requestChildren.set(key, counter);
      }
      counter.inc();
      let histogram = durationChildren.get(route);
      if (histogram === undefined) {
        histogram = duration.labels({ route });
        durationChildren.set(route, histogram);
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

/**
 * A bounded route label: ids in paths (workers, videos, images, models)
 * become placeholders so label cardinality stays small.
 */
export function routeLabel(path: string): string {
  if (path.startsWith("/workers/")) return path.endsWith("/update_weights_from_tensor") ? "/workers/{id}/update_weights_from_tensor" : "/workers/{id}";
  if (path.startsWith("/v1/videos/")) return path.endsWith("/content") ? "/v1/videos/{id}/content" : "/v1/videos/{id}";
  if (path.startsWith("/v1/images/") && path.endsWith("/content")) return "/v1/images/{id}/content";
  if (path.startsWith("/v1/models/")) return "/v1/models/{id}";
  if (path.startsWith("/sgl.diffusion.router.v1.") || path.startsWith("/grpc.reflection.")) return path;
  return knownRoutes.has(path) ? path : "other";
}

const knownRoutes: ReadonlySet<string> = new Set([...adminPaths, ...openPaths, ...dataPlanePaths]);
