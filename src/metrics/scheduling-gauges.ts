import { Counter, Gauge, type Registry as PromRegistry } from "prom-client";
import type { Admission, WorkerScheduling } from "../admission/admission.js";
import type { Worker } from "../registry/worker.js";

/** The scheduler's view per worker: learned speed and its scatter, in-flight and queued work. */
export function registerSchedulingGauges(prom: PromRegistry, admission: Admission): void {
  // The scheduler's view, computed once per scrape for every gauge.
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
}

/** Hedged tails (admission/hedge.ts): copies started, and how they ended, read from admission at scrape. */
export function registerHedgeCounters(prom: PromRegistry, admission: Admission): void {
  new Counter({
    name: "sgl_router_hedge_copies_started_total",
    help: "Copies of running requests started on idle workers (hedged tails).",
    registers: [prom],
    collect() {
      this.reset();
      this.inc(admission.hedgeCounts().started);
    },
  });
  new Counter({
    name: "sgl_router_hedge_copies_ended_total",
    help: "Hedge copies ended, by outcome: won (the client got the copy's answer), cut (the original won, a refit or sleep began, or the client left), failed.",
    labelNames: ["outcome"] as const,
    registers: [prom],
    collect() {
      this.reset();
      const c = admission.hedgeCounts();
      this.inc({ outcome: "won" }, c.won);
      this.inc({ outcome: "cut" }, c.cut);
      this.inc({ outcome: "failed" }, c.failed);
    },
  });
}
