import { Gauge, type Registry as PromRegistry } from "prom-client";
import type { Admission } from "../admission/admission.js";
import type { Registry } from "../registry/registry.js";
import { workerState, type WorkerState } from "../registry/worker.js";
import { VERSION } from "../version.js";
import type { ManagedWorker } from "../launcher/launcher-api.js";
import { displayIdOf } from "../registry/worker-url.js";

const states: (WorkerState | "failed")[] = ["healthy", "suspect", "starting", "dead", "sleeping", "syncing", "draining", "stale", "failed"];

/** The pool's load and each worker's state, read from admission and the registry when /metrics is scraped. */
export function registerPoolGauges(prom: PromRegistry, registry: Registry, admission: Admission, failedManaged: () => readonly ManagedWorker[]): void {
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
      // A managed worker past max_restarts is in no registry, but still the operator's problem.
      for (const m of failedManaged()) {
        const worker = m.url === "" ? m.name : displayIdOf(m.url);
        for (const st of states) this.set({ worker, state: st }, st === "failed" ? 1 : 0);
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
}

/** Which weights each worker and the pool hold, and the router's build. */
export function registerVersionGauges(prom: PromRegistry, registry: Registry, weightVersion: () => string): void {
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
      this.set({ version: weightVersion() }, 1);
    },
  });
  new Gauge({ name: "sgl_router_info", help: "Router build.", labelNames: ["version"] as const, registers: [prom] }).set({ version: VERSION }, 1);
}
