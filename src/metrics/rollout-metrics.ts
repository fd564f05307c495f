import { Counter, Gauge, Histogram, type Registry as PromRegistry } from "prom-client";
import type { JobObserver } from "../rollouts/job-observer.js";

/** The rollout jobs' series: jobs started, running and ended by reason, items by final status, groups completed, time to K. */
export interface RolloutMetrics {
  /** Told by every rollout job as it runs. */
  readonly rolloutJobs: JobObserver;
}

/** A few events per item: prom-client's label children are fine here. */
export function createRolloutMetrics(prom: PromRegistry): RolloutMetrics {
  const started = new Counter({ name: "sgl_router_rollout_jobs_started_total", help: "Rollout jobs started (POST /v1/rollouts and RolloutService.Run).", registers: [prom] });
  const running = new Gauge({ name: "sgl_router_rollout_jobs_running", help: "Rollout jobs not ended.", registers: [prom] });
  const ended = new Counter({ name: "sgl_router_rollout_jobs_ended_total", help: "Rollout jobs ended, by reason: completed (every item ran), min_complete, min_complete_groups, deadline, cancelled, client_closed, weight_version_mismatch.", labelNames: ["reason"] as const, registers: [prom] });
  const items = new Counter({ name: "sgl_router_rollout_items_total", help: "Rollout items ended, by status (succeeded, failed, cancelled; a result held for its group and dropped counts as cancelled).", labelNames: ["status"] as const, registers: [prom] });
  const groups = new Counter({ name: "sgl_router_rollout_groups_completed_total", help: "Prompt groups of rollout jobs with every item answered 2xx.", registers: [prom] });
  const timeToK = new Histogram({ name: "sgl_router_rollout_time_to_k_seconds", help: "Time from a rollout job's start until min_complete items or min_complete_groups groups were complete.", buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600], registers: [prom] });
  return {
    rolloutJobs: {
      started() {
        started.inc();
        running.inc();
      },
      itemEnded(status) {
        items.inc({ status });
      },
      groupCompleted() {
        groups.inc();
      },
      reachedK(ms) {
        timeToK.observe(ms / 1000);
      },
      ended(reason) {
        running.dec();
        ended.inc({ reason: reason ?? "completed" });
      },
    },
  };
}
