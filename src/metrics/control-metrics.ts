import { Counter, Histogram, type Registry as PromRegistry } from "prom-client";
import type { AuditEvent } from "../audit/audit.js";
import { errorCodes } from "../errors.js";

/** The control plane's series: RPCs, audited actions, refits, sleep/wake, launcher restarts. */
export interface ControlMetrics {
  /** One finished RPC. */
  rpc(service: string, method: string, code: string, seconds: number): void;
  /** One finished control action (from the audit trail). */
  controlAction(e: Readonly<AuditEvent>): void;
  /** The launcher restarted a managed worker. */
  workerRestarted(worker: string): void;
}

/**
 * An action refused before it changed anything (409: another refit runs, the
 * label is the pool's current one) is a refusal, not a failed refit: a
 * dashboard of failed refits must show broken workers, not callers' races.
 */
function outcomeOf(e: Readonly<AuditEvent>): string {
  if (e.outcome === "failed" && e.code !== undefined && (errorCodes as Record<string, number>)[e.code] === 409) return "refused";
  return e.outcome;
}

/** A handful of calls per RL step, so prom-client's own label children are fine here. */
export function createControlMetrics(prom: PromRegistry): ControlMetrics {
  const rpcCalls = new Counter({ name: "sgl_router_rpc_calls_total", help: "RPCs answered (Connect, gRPC, gRPC-Web), by service, method and code (ok, invalid_argument, ...).", labelNames: ["service", "method", "code"] as const, registers: [prom] });
  const rpcDuration = new Histogram({ name: "sgl_router_rpc_duration_seconds", help: "Time from an RPC's arrival to its end (a stream's: when it ends), by service and method.", labelNames: ["service", "method"] as const, buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2, 10, 60, 300, 1800], registers: [prom] });
  const actions = new Counter({ name: "sgl_router_control_actions_total", help: "Control actions (the audit trail) by action and outcome (ok, partial: some workers failed, failed, refused: 409 before anything changed).", labelNames: ["action", "outcome"] as const, registers: [prom] });
  const actionDuration = new Histogram({ name: "sgl_router_control_action_duration_seconds", help: "Duration of control actions, by action (refit.begin includes the drain).", labelNames: ["action"] as const, buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900], registers: [prom] });
  const refits = new Counter({ name: "sgl_router_refits_total", help: "Refits by kind (disk, tensor) and outcome (ok, partial, failed, aborted, refused: 409 before anything changed).", labelNames: ["kind", "outcome"] as const, registers: [prom] });
  const refitDuration = new Histogram({ name: "sgl_router_refit_duration_seconds", help: "Refit duration, from its start to the new version (tensor: begin to commit or abort), by kind.", labelNames: ["kind"] as const, buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800], registers: [prom] });
  const memoryOps = new Counter({ name: "sgl_router_memory_operations_total", help: "Sleep (release) and wake (resume) of the pool's GPU memory, by outcome.", labelNames: ["operation", "outcome"] as const, registers: [prom] });
  const restarts = new Counter({ name: "sgl_router_managed_worker_restarts_total", help: "Managed workers restarted by the launcher's restart policy.", labelNames: ["worker"] as const, registers: [prom] });
  // A two-phase refit spans two calls: its start is kept from begin to commit or abort.
  let tensorRefitStartedMs: number | null = null;
  const refitEnded = (kind: "disk" | "tensor", outcome: string, ms: number) => {
    refits.inc({ kind, outcome });
    refitDuration.observe({ kind }, ms / 1000);
  };

  return {
    rpc(service, method, code, seconds) {
      const shortService = service.slice(service.lastIndexOf(".") + 1);
      rpcCalls.inc({ service: shortService, method, code });
      rpcDuration.observe({ service: shortService, method }, seconds);
    },
    controlAction(e) {
      const ms = e.durationMs ?? 0;
      const outcome = outcomeOf(e);
      actions.inc({ action: e.action, outcome });
      actionDuration.observe({ action: e.action }, ms / 1000);
      switch (e.action) {
        case "refit.from_disk":
          if (outcome === "refused") refits.inc({ kind: "disk", outcome });
          else refitEnded("disk", outcome, ms);
          break;
        case "refit.begin":
          if (outcome === "ok") tensorRefitStartedMs = Date.parse(e.startedAt);
          else if (outcome === "refused") refits.inc({ kind: "tensor", outcome });
          else refitEnded("tensor", "failed", ms);
          break;
        case "refit.commit":
        case "refit.abort":
          if (tensorRefitStartedMs !== null && (e.outcome !== "failed" || e.code === undefined)) {
            refitEnded("tensor", e.action === "refit.abort" ? "aborted" : e.outcome, Date.now() - tensorRefitStartedMs);
            tensorRefitStartedMs = null;
          }
          break;
        case "memory.release":
        case "memory.resume":
          memoryOps.inc({ operation: e.action === "memory.release" ? "release" : "resume", outcome });
          break;
      }
    },
    workerRestarted(worker) {
      restarts.inc({ worker });
    },
  };
}
