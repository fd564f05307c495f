import type { Logger } from "../log.js";
import type { Worker } from "../registry/worker.js";
import type { RecordedWorker } from "./pool-record.js";

/** What applying another router's record needs from this one (plain control and registry, not audited: no operator acted here). */
export interface PoolApplier {
  get(url: string): Worker | undefined;
  addWorker(url: string): Promise<unknown>;
  remove(url: string): void;
  setQuarantined(url: string, quarantined: boolean): void;
  setDraining(url: string, draining: boolean): void;
  setSleeping(url: string, sleeping: boolean): void;
}

/** Brings a registered worker's operator states to the record's. */
function applyStates(rec: RecordedWorker, w: Worker, applier: PoolApplier): void {
  const quarantined = w.dead && w.deadReason === "manual";
  if (rec.quarantined !== quarantined) applier.setQuarantined(rec.url, rec.quarantined);
  if (rec.draining !== w.draining) applier.setDraining(rec.url, rec.draining);
  if (rec.sleeping !== w.sleeping) applier.setSleeping(rec.url, rec.sleeping);
}

/**
 * Applies a worker record written by another router: registers the worker
 * if this router lacks it (probed here like any registration: this router
 * judges its health itself), then its operator states. `apply` runs a
 * synchronous step with this router's own recording switched off, so the
 * record is not written back.
 */
export function applyRecorded(rec: RecordedWorker, applier: PoolApplier, apply: (run: () => void) => void, latest: () => RecordedWorker | undefined, logger: Logger): void {
  const known = applier.get(rec.url);
  if (known) {
    apply(() => applyStates(rec, known, applier));
    return;
  }
  let added!: Promise<unknown>;
  // registry.add runs synchronously inside addWorker: its "added" event is not written back.
  apply(() => (added = applier.addWorker(rec.url)));
  added.then(
    () => {
      // The newest record: another change may have arrived while this one registered.
      const w = applier.get(rec.url);
      const now = latest();
      if (w && now) apply(() => applyStates(now, w, applier));
      logger.info({ worker: rec.url }, "state store: worker registered through another router");
    },
    (err: unknown) => logger.warn({ err, worker: rec.url }, "state store: could not register a worker another router registered"),
  );
}
