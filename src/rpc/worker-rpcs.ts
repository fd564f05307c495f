import type { WorkerScheduling } from "../admission/admission.js";
import type { Control } from "../admin/control.js";
import type { Worker } from "../registry/worker.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import type { ManagedWorker } from "../launcher/index.js";
import { failedManagedToPb, workerToPb } from "./convert.js";

export interface WorkerRpcsOptions {
  control: Control;
  /** The scheduler's view of every worker (learned speed, estimated work). */
  scheduling: () => Map<Worker, WorkerScheduling>;
  /** Launcher-managed workers that failed and stand for no registered worker (launcher/managed-view.ts). */
  failedManaged: () => ManagedWorker[];
  /** Where this router keeps its state, and whether it holds the shared refit lock (ListWorkers says both, as GetRouterStatus). */
  stateStore: string;
  holdsRefitLock: () => boolean;
}

/** The worker registry RPCs. A worker is named by URL (any accepted spelling) or by its REST worker_id. */
export function createWorkerRpcs({ control, scheduling, failedManaged, stateStore, holdsRefitLock }: WorkerRpcsOptions) {
  return {
    async listWorkers() {
      const view = scheduling();
      // As GET /workers: failed managed workers are in no pool, listed last so that they do not vanish.
      const workers = [...control.listWorkers().map((w) => workerToPb(w, view.get(w))), ...failedManaged().map(failedManagedToPb)];
      return { workers, stateStore, holdsRefitLock: holdsRefitLock() };
    },
    async getWorker(req: { url: string }) {
      const worker = control.getWorker(decodeWorkerId(req.url));
      return { worker: workerToPb(worker, scheduling().get(worker)) };
    },
    async addWorker(req: { url: string }) {
      const { worker, created } = await control.addWorker(req.url);
      return { worker: workerToPb(worker), created };
    },
    async updateWorker(req: { url: string; isDead?: boolean; refreshCapabilities: boolean; draining?: boolean }) {
      const worker = await control.updateWorker(decodeWorkerId(req.url), { isDead: req.isDead, draining: req.draining, refreshVideoSupport: req.refreshCapabilities });
      return { worker: workerToPb(worker) };
    },
    async removeWorker(req: { url: string }) {
      return { worker: workerToPb(control.removeWorker(decodeWorkerId(req.url))) };
    },
  };
}
