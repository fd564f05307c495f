import type { Admission } from "../admission/admission.js";
import { RouterError } from "../errors.js";
import type { Worker } from "../registry/worker.js";
import type { OperationKind, RefitPhase } from "./types.js";

/** The one refit or sleep running now. */
export interface Operation {
  kind: OperationKind;
  phase: RefitPhase;
  startedAtMs: number;
  unhold: () => void;
  /** Tensor refit: workers whose update_weights_from_tensor succeeded. */
  updated: Set<string>;
  /** Tensor refit: workers whose update is still loading. */
  pending: Set<string>;
  /** Tensor refit: aborts it when left open too long. */
  timer: NodeJS.Timeout | null;
}

export interface Operations {
  readonly current: Operation | null;
  /**
   * Holds new generation requests and starts `kind`; 409 `refit_in_progress`
   * while another runs. `hold` false: an operation on one model's workers,
   * which takes them out of rotation itself while the others keep serving.
   */
  begin(kind: OperationKind, reason: string, hold?: boolean): Operation;
  /**
   * Ends `op` (only if it is still the running one): workers are reconciled
   * first, so that nothing out of date is routable when the held requests
   * are released.
   */
  end(op: Operation): void;
  /** Waits for in-flight generation; `drain_timeout` (nothing changed) when it does not finish in time. */
  drain(timeoutMs: number): Promise<void>;
  /** The same for the requests on `workers` only (already out of rotation). */
  drainWorkers(workers: readonly Worker[], timeoutMs: number): Promise<void>;
  /** A worker left or restarted: it holds none of the open refit's tensors. */
  forget(workerUrl: string): void;
}

export function describeOperation(op: Operation): string {
  return op.kind === "sleep" ? "memory release" : op.kind === "lora" ? "LoRA change" : `${op.kind} refit`;
}

/**
 * Waits until the other routers on a shared store have drained their own
 * generation requests for the refit in progress (state/peer-drain.ts);
 * throws drain_timeout when they do not by `deadlineMs`. Absent: one router.
 */
export type PeerDrain = (deadlineMs: number) => Promise<void>;

export function createOperations(admission: Admission, reconcileAll: () => void, drainPeers: PeerDrain | null = null): Operations {
  let op: Operation | null = null;
  return {
    get current() {
      return op;
    },
    begin(kind, reason, hold = true) {
      if (op) {
        throw new RouterError("refit_in_progress", `a ${describeOperation(op)} is in progress (phase ${op.phase}, started ${Math.round((Date.now() - op.startedAtMs) / 1000)} s ago); retry when it ends`);
      }
      op = { kind, phase: "draining", startedAtMs: Date.now(), unhold: hold ? admission.hold(reason) : () => undefined, updated: new Set(), pending: new Set(), timer: null };
      return op;
    },
    end(current) {
      if (op !== current) return;
      if (current.timer) clearTimeout(current.timer);
      op = null;
      reconcileAll();
      current.unhold();
    },
    async drain(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const ok = await admission.whenIdle(timeoutMs);
      if (!ok) {
        throw new RouterError("drain_timeout", `${admission.inFlight} generation request(s) still in flight after ${Math.round(timeoutMs / 1000)} s: nothing was changed (raise drain_timeout_s or --drain-timeout)`, { details: { in_flight: admission.inFlight } });
      }
      await drainPeers?.(deadline);
    },
    async drainWorkers(workers, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const busy = () => workers.reduce((n, w) => n + w.activeRequests, 0);
      // Polled: admission signals idleness for the whole pool only, and a few
      // checks a second cost nothing next to a weight load.
      while (busy() > 0) {
        if (Date.now() >= deadline) {
          throw new RouterError("drain_timeout", `${busy()} generation request(s) still in flight on the model's workers after ${Math.round(timeoutMs / 1000)} s: nothing was changed (raise drain_timeout_s or --drain-timeout)`, { details: { in_flight: busy() } });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await drainPeers?.(deadline);
    },
    forget(workerUrl) {
      op?.updated.delete(workerUrl);
      op?.pending.delete(workerUrl);
    },
  };
}
