import type { Audit, AuditSummary } from "../audit/audit.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import { RouterError } from "../errors.js";
import type { LoraChangeResult, LoraPool } from "./lora-action.js";
import { loraMessage, loraOk } from "./lora-resync.js";

/** The arguments of a LoRA call worth an audit line: its scalars and short nickname lists. */
function loraArgs(json: Record<string, unknown>, drainTimeoutMs: number | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    if (typeof v === "string") out[k] = v.length > 300 ? `${v.slice(0, 300)}...` : v;
    else if (typeof v === "number" || typeof v === "boolean" || v === null) out[k] = v;
    else if (Array.isArray(v) && v.length <= 20 && v.every((x) => typeof x === "string" || typeof x === "number")) out[k] = v;
  }
  if (drainTimeoutMs !== undefined) out.drain_timeout_s = drainTimeoutMs / 1000;
  return out;
}

function summaryOf(r: LoraChangeResult): AuditSummary {
  const summary: AuditSummary = {
    workers: r.results.map((x) => (loraOk(x) ? { worker: x.workerUrl, ok: true, status: x.status } : { worker: x.workerUrl, ok: false, status: x.status, error: loraMessage(x).slice(0, 300) })),
  };
  if (r.failure !== null) {
    summary.code = "upstream_failed";
    summary.message = r.failure;
  }
  return summary;
}

/**
 * The LoRA change on the audit trail (`lora.set`, `lora.merge`,
 * `lora.unmerge` with their arguments and per-worker outcomes), and so in
 * the control-action metrics, whichever door called it.
 */
export function auditedLora(lora: LoraPool, audit: Audit): LoraPool {
  const wrapped: LoraPool = Object.create(lora) as LoraPool;
  Object.assign(wrapped, {
    change(kind: Parameters<LoraPool["change"]>[0], raw: Buffer, json: Record<string, unknown>, drainTimeoutMs?: number) {
      return audit.run(`lora.${kind}`, loraArgs(json, drainTimeoutMs), () => lora.change(kind, raw, json, drainTimeoutMs), summaryOf);
    },
  });
  return wrapped;
}

/**
 * The refit coordinator as the doors call it: a refit or sleep is refused
 * (409 `refit_in_progress`) while a LoRA change runs, as a LoRA change is
 * while they run. The coordinator itself (health re-syncs) is unchanged.
 */
export function refitBesideLora(refit: RefitCoordinator, lora: LoraPool): RefitCoordinator {
  const refuse = (what: string) => {
    const kind = lora.running;
    if (kind !== null) throw new RouterError("refit_in_progress", `a LoRA ${kind} is in progress; retry the ${what} when it ends`);
  };
  const wrapped: RefitCoordinator = Object.create(refit) as RefitCoordinator;
  Object.assign(wrapped, {
    updateWeightsFromDisk(...a: Parameters<RefitCoordinator["updateWeightsFromDisk"]>) {
      refuse("refit");
      return refit.updateWeightsFromDisk(...a);
    },
    begin(...a: Parameters<RefitCoordinator["begin"]>) {
      refuse("refit");
      return refit.begin(...a);
    },
    releaseMemory(...a: Parameters<RefitCoordinator["releaseMemory"]>) {
      refuse("memory release");
      return refit.releaseMemory(...a);
    },
    resumeMemory(...a: Parameters<RefitCoordinator["resumeMemory"]>) {
      refuse("memory resume");
      return refit.resumeMemory(...a);
    },
  });
  return wrapped;
}
