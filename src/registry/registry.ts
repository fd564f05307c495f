import { EventEmitter } from "node:events";
import { RouterError } from "../errors.js";
import type { RegistryReason, Transition } from "./transitions.js";
import { isRoutable, type Worker, type WorkerCapabilities } from "./worker.js";
import { forgetProcess, kill, newWorkerRecord, revive, type MutableWorker } from "./worker-record.js";

export type RegistryEvent =
  | { type: "added"; worker: Worker }
  | { type: "removed"; worker: Worker }
  | { type: "updated"; worker: Worker; reason: RegistryReason };

/** A failed health probe: what went wrong, and whether nothing listened at the URL. */
export interface ProbeFailure {
  readonly message: string;
  readonly refused: boolean;
}


/**
 * The one source of truth about workers. Every front door (REST, RPC,
 * launcher, health, refit) changes workers through the named transitions
 * below, so the routable sets are rebuilt once per change instead of
 * filtered per request, and listeners (WatchWorkers, metrics, audit, the
 * refit coordinator) see every change with its {@link Transition} name.
 *
 * Two phases, in this order: `change` listeners judge a change and may
 * answer it with transitions of their own (the refit coordinator takes a
 * worker that came back on other weights out of rotation); `settled`
 * listeners (admission, which hands workers to waiting requests) run once
 * the outermost change and every change it caused have been told to all
 * `change` listeners, whatever their registration order: no waiter is handed
 * a worker a judge is about to take back. Load updates have no `settled`.
 */
export class Registry extends EventEmitter<{ change: [RegistryEvent]; settled: [RegistryEvent] }> {
  readonly #workers = new Map<string, MutableWorker>();
  /** Changes told to `change` listeners and not yet to `settled` ones; depth of nested changes. */
  readonly #unsettled: RegistryEvent[] = [];
  #depth = 0;
  #settling = false;
  #routable: Worker[] = [];
  #routableVideo: Worker[] = [];

  get size(): number {
    return this.#workers.size;
  }

  /** Adds a worker (URL already normalized). Returns the existing one if known. */
  add(url: string, init: { managed?: boolean; capabilities?: Partial<WorkerCapabilities> } = {}): { worker: Worker; created: boolean } {
    const existing = this.#workers.get(url);
    if (existing) return { worker: existing, created: false };
    const worker = newWorkerRecord(url, init);
    this.#workers.set(url, worker);
    this.#rebuild();
    this.#tell({ type: "added", worker });
    return { worker, created: true };
  }

  remove(url: string): Worker | undefined {
    const worker = this.#workers.get(url);
    if (!worker) return undefined;
    this.#workers.delete(url);
    this.#rebuild();
    this.#tell({ type: "removed", worker });
    return worker;
  }

  get(url: string): Worker | undefined {
    return this.#workers.get(url);
  }

  /** Like {@link get} but throws the router's 404. */
  require(url: string): Worker {
    const w = this.#workers.get(url);
    if (!w) throw new RouterError("worker_not_found", `Worker not found: ${url}`, { details: { param: "worker_id" } });
    return w;
  }

  all(): Worker[] {
    return [...this.#workers.values()];
  }

  /** Workers that may take new requests; the array is shared, do not mutate. */
  routable(): readonly Worker[] {
    return this.#routable;
  }

  /** Routable workers whose model generates video. */
  routableVideo(): readonly Worker[] {
    return this.#routableVideo;
  }

  // ---- Probes and registration (health/, admin/control.ts) ----

  /** A `/v1/models` probe read the worker's card: a worker warming up is ready now. */
  setCapabilities(url: string, capabilities: WorkerCapabilities): Worker | undefined {
    return this.#apply(url, "capabilities", (w) => {
      w.capabilities = capabilities;
      w.starting = false;
    });
  }

  /** Registered while warming up (its /health answers, its card is held): out of rotation, not dead, until the card arrives. */
  markStarting(url: string): Worker | undefined {
    return this.#apply(url, "starting", (w) => void (w.starting = true));
  }

  capabilitiesUnknown(url: string, lastError: string): Worker | undefined {
    return this.#apply(url, "capabilities_unknown", (w) => void (w.lastError = lastError));
  }

  /** Registered but not reachable: out of rotation until a probe succeeds. */
  unreachableAtRegistration(url: string): Worker | undefined {
    return this.#apply(url, "unreachable_at_registration", (w) => kill(w, "unreachable"));
  }

  /** When the last active probe ran (shown in /workers; no event: nothing routable changes). */
  noteProbe(worker: Worker): void {
    const w: MutableWorker = worker;
    w.lastProbeAtMs = Date.now();
  }

  /**
   * An active probe failed. Returns true when this failure made the worker
   * dead (`failureThreshold` in a row).
   */
  healthProbeFailed(url: string, problem: ProbeFailure, failureThreshold: number): boolean {
    let died = false;
    this.#apply(url, "health_probe_failed", (w) => {
      w.consecutiveFailures++;
      w.consecutiveSuccesses = 0;
      w.lastError = problem.message;
      // Nothing listens at the URL: whatever comes back there later is a new
      // process with its base weights, not the one the router knew.
      if (problem.refused) forgetProcess(w);
      if (!w.dead && w.consecutiveFailures >= failureThreshold) {
        kill(w, "health_check");
        died = true;
      }
    });
    return died;
  }

  /**
   * An active probe succeeded. A dead worker comes back after
   * `successThreshold` good rounds in a row (one for a worker never seen
   * healthy or whose ejection ran out), and only when its model card
   * answered too (`wholeWorker`): a process still starting can answer one and
   * not the other. Returns true when this probe brought it back.
   */
  healthProbeOk(url: string, wholeWorker: boolean, successThreshold: number): boolean {
    let revived = false;
    this.#apply(url, "health_probe_ok", (w) => {
      w.lastError = null;
      if (!w.dead) {
        w.consecutiveFailures = 0;
        // Ejections grow while a worker keeps failing; five quiet minutes reset them.
        if (w.ejectionCount > 0 && Date.now() > w.ejectedUntilMs + 300_000) w.ejectionCount = 0;
        return;
      }
      // An operator's quarantine is lifted only by an operator.
      if (w.deadReason === "manual") return;
      if (!wholeWorker) return;
      w.consecutiveSuccesses++;
      const needed = w.deadReason === "unreachable" || w.deadReason === "ejected" ? 1 : successThreshold;
      if (w.consecutiveSuccesses >= needed) {
        revive(w);
        revived = true;
      }
    });
    return revived;
  }

  /** Another process answers behind the URL: base weights, awake, learned anew. */
  processChanged(url: string): Worker | undefined {
    return this.#apply(url, "process_changed", (w) => {
      forgetProcess(w);
      w.sleeping = false;
      w.sleepFound = false;
    });
  }

  // ---- Passive health (health/outlier-detector.ts) ----

  requestOk(url: string): Worker | undefined {
    return this.#apply(url, "request_ok", (w) => void (w.consecutiveFailures = 0));
  }

  /**
   * A proxied request failed. After `threshold` failures in a row the worker
   * is ejected for `ejectionMs(ejectionCount)`; returns that duration, or 0
   * when it stays in rotation. `processGone`: the connection was refused, so
   * whatever answers at the URL later holds its base weights.
   */
  requestFailed(url: string, failure: { lastError: string; processGone: boolean; threshold: number }, ejectionMs: (count: number) => number): number {
    let ejectedForMs = 0;
    this.#apply(url, "request_failed", (w) => {
      w.consecutiveFailures++;
      w.lastError = failure.lastError;
      if (failure.processGone) forgetProcess(w);
      if (w.dead || w.consecutiveFailures < failure.threshold) return;
      w.ejectionCount++;
      ejectedForMs = ejectionMs(w.ejectionCount);
      kill(w, "ejected");
      w.ejectedUntilMs = Date.now() + ejectedForMs;
    });
    return ejectedForMs;
  }

  /** An ejected worker's probe failed: its next ejection is longer. Returns its length. */
  extendEjection(url: string, ejectionMs: (count: number) => number): number {
    let ms = 0;
    this.#apply(url, "ejection_extended", (w) => {
      w.ejectionCount++;
      ms = ejectionMs(w.ejectionCount);
      w.ejectedUntilMs = Date.now() + ms;
    });
    return ms;
  }

  // ---- Operator actions (admin/control.ts) ----

  /** PUT is_dead: true keeps the worker out until an operator lifts it; false lifts any dead state. */
  setQuarantined(url: string, quarantined: boolean): Worker | undefined {
    return this.#apply(url, quarantined ? "quarantined" : "recovered", (w) => {
      if (quarantined) kill(w, "manual");
      else revive(w);
    });
  }

  setDraining(url: string, draining: boolean): Worker | undefined {
    return this.#apply(url, draining ? "draining" : "undrained", (w) => void (w.draining = draining));
  }

  // ---- Memory (admin/control.ts) ----

  markSleeping(url: string): Worker | undefined {
    return this.#apply(url, "sleeping", (w) => {
      w.sleeping = true;
      w.sleepFound = false;
    });
  }

  /** A sleep check after a 500 is out (`sleep_check`: out of rotation) or answered without finding the sleep (`sleep_check_done`). */
  setSleepCheck(url: string, out: boolean): Worker | undefined {
    return this.#apply(url, out ? "sleep_check" : "sleep_check_done", (w) => void (w.sleepCheckOut = out));
  }

  /**
   * Found asleep (put to sleep behind the router's back): out of rotation as
   * a worker the router put to sleep, and not failing: the failures its
   * sleeping answers caused are forgotten, an ejection they caused lifted.
   */
  markFoundSleeping(url: string): Worker | undefined {
    return this.#apply(url, "found_sleeping", (w) => {
      w.sleeping = true;
      w.sleepFound = true;
      w.sleepCheckOut = false;
      w.consecutiveFailures = 0;
      w.lastError = null;
      if (w.dead && w.deadReason === "ejected") revive(w);
    });
  }

  /** A worker found asleep answers generations again. */
  markFoundAwake(url: string): Worker | undefined {
    return this.#apply(url, "found_awake", (w) => {
      w.sleeping = false;
      w.sleepFound = false;
    });
  }

  /** Woken: a worker marked dead while asleep (not by an operator) is back too. */
  markAwake(url: string): Worker | undefined {
    return this.#apply(url, "awake", (w) => {
      w.sleeping = false;
      w.sleepFound = false;
      w.consecutiveFailures = 0;
      if (w.dead && w.deadReason !== "manual") {
        w.dead = false;
        w.deadReason = null;
      }
    });
  }

  // ---- Weights (refit/) ----

  /** The worker holds `version` and takes traffic (`weights`: loaded now; `weights_restored`: known from the state file). */
  weightsLoaded(url: string, version: string, reason: "weights" | "weights_restored" = "weights"): Worker | undefined {
    return this.#apply(url, reason, (w) => {
      w.weightVersion = version;
      w.sync = "in_sync";
      w.lastError = null;
    });
  }

  /** The worker was found holding the pool's version: back in sync. */
  weightsCurrent(url: string): Worker | undefined {
    return this.#apply(url, "weights_current", (w) => void (w.sync = "in_sync"));
  }

  /** Out of rotation while the last refit is replayed to it (`clearError`: the replay starts now, an older error no longer applies). */
  beginSync(url: string, clearError = false): Worker | undefined {
    return this.#apply(url, "syncing", (w) => {
      w.sync = "syncing";
      if (clearError) w.lastError = null;
    });
  }

  /**
   * Out of rotation until brought to the pool's weights: `stale_weights` (it
   * missed a refit), `sync_failed` (a replay failed). The version it holds is
   * kept: it may still be the right one for a later check.
   */
  markStale(url: string, reason: "stale_weights" | "sync_failed", lastError?: string): Worker | undefined {
    return this.#apply(url, reason, (w) => {
      w.sync = "stale";
      if (lastError !== undefined) w.lastError = lastError;
    });
  }

  /**
   * Out of rotation with weights unknown (`refit_failed`: a disk refit failed
   * on it, it rolled back or half loaded; `stale_weights`: it holds
   * uncommitted tensors): only a replay or a trainer's update brings it back.
   */
  weightsUnknown(url: string, reason: "refit_failed" | "stale_weights", lastError: string): Worker | undefined {
    return this.#apply(url, reason, (w) => {
      w.weightVersion = null;
      w.sync = "stale";
      w.lastError = lastError;
    });
  }

  // ---- Load (admission/) ----

  /** A request was handed this worker. Per request: no event here, see {@link notifyLoad}. */
  requestStarted(worker: Worker): void {
    const w: MutableWorker = worker;
    w.activeRequests++;
  }

  /** A request on this worker ended (works on a worker removed meanwhile, whose counter nobody reads). */
  requestEnded(worker: Worker): void {
    const w: MutableWorker = worker;
    if (w.activeRequests > 0) w.activeRequests--;
  }

  /** Load counters change per request: only notify when someone listens for them. */
  notifyLoad(worker: Worker): void {
    if (this.listenerCount("change") > 0) this.emit("change", { type: "updated", worker, reason: "load" });
  }

  /** Applies one named transition and tells the listeners. */
  #apply(url: string, reason: Transition, mutate: (w: MutableWorker) => void): Worker | undefined {
    const worker = this.#workers.get(url);
    if (!worker) return undefined;
    mutate(worker);
    this.#rebuild();
    this.#tell({ type: "updated", worker, reason });
    return worker;
  }

  /** Tells `change` listeners now, and `settled` listeners once no change is being told any more (see the class comment). */
  #tell(e: RegistryEvent): void {
    this.#unsettled.push(e);
    this.#depth++;
    try {
      this.emit("change", e);
    } finally {
      this.#depth--;
    }
    // An outer change, or the loop below (a settled listener's own transition), settles it.
    if (this.#depth > 0 || this.#settling) return;
    this.#settling = true;
    try {
      for (let next = this.#unsettled.shift(); next !== undefined; next = this.#unsettled.shift()) this.emit("settled", next);
    } finally {
      this.#settling = false;
    }
  }

  #rebuild(): void {
    const routable: Worker[] = [];
    const video: Worker[] = [];
    for (const w of this.#workers.values()) {
      if (!isRoutable(w)) continue;
      routable.push(w);
      if (w.capabilities.videoSupport === true) video.push(w);
    }
    this.#routable = routable;
    this.#routableVideo = video;
  }
}
