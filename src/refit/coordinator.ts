import type { BroadcastResult, Control } from "../admin/control.js";
import type { Admission } from "../admission/admission.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import type { RegistryReason } from "../registry/transitions.js";
import type { Worker } from "../registry/worker.js";
import type { PersistedState, StateStore } from "./state-store.js";

/** Options of {@link createRefitCoordinator}. */
export interface RefitCoordinatorOptions {
  registry: Registry;
  admission: Admission;
  control: Control;
  logger: Logger;
  /** Default time to wait for in-flight generation before a refit or sleep. */
  drainTimeoutMs: number;
  /** Default time a two-phase refit may stay open. */
  refitTimeoutMs: number;
  store: StateStore | null;
}

export type RefitPhase = "idle" | "draining" | "updating" | "open" | "sleeping";

/** One worker that did not load the weights, and why. */
export interface FailedWorker {
  worker_url: string;
  status_code: number;
  message: string;
}

/** Counts of a weight load across the pool (field names are the REST answer's). */
export interface RefitSummary {
  targets: number;
  succeeded: number;
  failed: number;
  failed_workers: FailedWorker[];
}

/**
 * What a disk refit did. Typed, not an HTTP answer: REST and RPC each turn
 * it into their own shape once (`failure` set = some worker failed: a 502
 * `upstream_failed` over REST, UNAVAILABLE over RPC, with these results).
 */
export interface DiskRefitResult {
  results: BroadcastResult[];
  weight_version: string;
  previous_weight_version: string;
  summary: RefitSummary;
  /** Null when every worker loaded the weights; else what went wrong, for the error message. */
  failure: string | null;
}

/** What a sleep or wake did on each worker. */
export interface MemoryResult {
  results: BroadcastResult[];
}

/** How one worker's tensor update ended (for the caller's answer and the audit trail). */
export interface TensorUpdateOutcome {
  worker_url: string;
  /** The worker answered 200 without success:false. */
  ok: boolean;
  /** The worker's status; 0 when it never answered. */
  status_code: number;
}

interface Operation {
  kind: "disk" | "tensor" | "sleep";
  phase: RefitPhase;
  startedAtMs: number;
  unhold: () => void;
  /** Tensor refit: workers whose update_weights_from_tensor succeeded. */
  updated: Set<string>;
  /** Tensor refit: workers whose update is still loading. */
  pending: Set<string>;
  timer: NodeJS.Timeout | null;
}

/** A worker's update succeeded when it answered 200 and did not say success:false. */
function succeeded(r: BroadcastResult): boolean {
  return r.status_code === 200 && !(r.body && typeof r.body === "object" && (r.body as { success?: unknown }).success === false);
}

function messageOf(r: BroadcastResult): string {
  const b = r.body as Record<string, unknown> | null;
  const m = b?.message ?? b?.detail ?? b?.error ?? b?.raw;
  return typeof m === "string" ? m : JSON.stringify(m ?? b);
}

/**
 * The state machine of refits and sleep/wake. It is what makes "no answer
 * mixes old and new weights" true:
 * - new generation requests are held (admission.hold) from the moment a
 *   refit starts, the ones in flight finish (drain), and only then do the
 *   workers load new weights;
 * - a worker that failed to load, joined later, came back from the dead or
 *   restarted behind its URL is out of rotation (`syncing`/`stale`) until it
 *   holds the current version: the last disk refit is replayed to it, and a
 *   tensor refit (which the router cannot replay) leaves it for the trainer;
 * - one operation at a time: a second one gets 409.
 */
export function createRefitCoordinator(options: RefitCoordinatorOptions) {
  const { registry, admission, control, logger, store } = options;
  let version = "0";
  let refits = 0;
  let last: PersistedState["last"] = null;
  let op: Operation | null = null;
  /** Workers the persisted state says held `version` in a given process. */
  let remembered: PersistedState["workers"] = {};
  const syncing = new Set<string>();
  const nextSyncAtMs = new Map<string, number>();
  const syncFailures = new Map<string, number>();

  // Restore: a router restarted mid-refit cannot know which workers loaded
  // what, so it trusts none of them and converges them to the target.
  const saved = store?.load() ?? null;
  if (saved) {
    version = saved.version;
    refits = saved.refits;
    last = saved.last;
    remembered = saved.workers ?? {};
    if (saved.inProgress?.kind === "disk") {
      version = saved.inProgress.targetVersion;
      refits++; // the next default version must not repeat this label
      last = { kind: "disk", body: saved.inProgress.body };
      remembered = {};
      logger.warn({ version }, "state file: the router stopped during a disk refit; every worker is re-synced to the refit's weights before it takes traffic");
    } else if (saved.inProgress?.kind === "tensor") {
      last = { kind: "tensor" };
      remembered = {};
      logger.warn("state file: the router stopped during a tensor refit; every worker stays out of rotation until a trainer updates it");
    }
  }

  function persist(inProgress: PersistedState["inProgress"] = null): void {
    if (!store) return;
    const workers: PersistedState["workers"] = {};
    for (const w of registry.all()) workers[w.url] = { version: w.weightVersion, fingerprint: w.capabilities.instanceFingerprint };
    try {
      store.save({ version, refits, last, inProgress, workers });
    } catch (err) {
      // A full disk must not take the router down; the state is one write behind.
      logger.error({ err, path: store.path }, "could not write the state file");
    }
  }

  /**
   * Brings a worker to the current weights, or keeps it out of rotation.
   * Called when it joins, comes back, wakes, restarts, and after each refit.
   */
  function reconcile(w: Worker): void {
    if (registry.get(w.url) !== w || w.dead || op?.kind === "disk" || op?.kind === "tensor") return;
    if (w.weightVersion === version) {
      if (w.sync !== "in_sync") registry.weightsCurrent(w.url);
      return;
    }
    if (last === null) {
      // No refit ever happened: every worker holds the base weights, except
      // one marked stale (it took tensors of a refit that was not committed).
      if (w.sync === "stale") return;
      registry.weightsLoaded(w.url, version);
      return;
    }
    const mem = remembered[w.url];
    if (mem && mem.version === version && mem.fingerprint !== null && mem.fingerprint === w.capabilities.instanceFingerprint) {
      // Same process that held the current version before the router restarted.
      registry.weightsLoaded(w.url, version, "weights_restored");
      return;
    }
    if (last.kind === "tensor") {
      if (w.sync !== "stale") registry.markStale(w.url, "stale_weights", `holds weights ${w.weightVersion ?? "unknown"}, pool is on ${version} from a tensor refit the router cannot replay: update it through /refit/begin, /workers/{id}/update_weights_from_tensor, /refit/commit`);
      return;
    }
    if (w.sleeping) {
      // A sleeping worker cannot load weights; it is re-synced when it wakes.
      if (w.sync === "in_sync") registry.markStale(w.url, "stale_weights", `asleep while the pool moved to ${version}`);
      return;
    }
    replay(w, last.body).catch((err: unknown) => logger.error({ err, worker: w.url }, "re-sync failed unexpectedly"));
  }

  async function replay(w: Worker, body: string): Promise<void> {
    if (syncing.has(w.url)) return;
    const waitUntil = nextSyncAtMs.get(w.url) ?? 0;
    if (Date.now() < waitUntil) {
      if (w.sync === "in_sync") registry.markStale(w.url, "stale_weights");
      return;
    }
    syncing.add(w.url);
    const target = version;
    registry.beginSync(w.url, true);
    logger.info({ worker: w.url, version: target }, "re-syncing worker: replaying the last update_weights_from_disk");
    try {
      const [result] = await control.broadcast("/update_weights_from_disk", body, [w]);
      if (registry.get(w.url) !== w) return;
      if (result && succeeded(result) && target === version) {
        syncFailures.delete(w.url);
        nextSyncAtMs.delete(w.url);
        registry.weightsLoaded(w.url, target);
        persist();
        logger.info({ worker: w.url, version: target }, "worker re-synced: back in rotation");
      } else {
        const n = (syncFailures.get(w.url) ?? 0) + 1;
        syncFailures.set(w.url, n);
        nextSyncAtMs.set(w.url, Date.now() + Math.min(300_000, 5_000 * 2 ** (n - 1)));
        registry.markStale(w.url, "sync_failed", `replaying weights ${target} failed: ${result ? messageOf(result) : "no answer"}`);
        logger.warn({ worker: w.url, version: target, attempt: n }, "re-sync failed: worker stays out of rotation");
      }
    } finally {
      syncing.delete(w.url);
    }
  }

  /** Re-checks every worker (after a refit, and on each health round for backoff retries). */
  function sweep(): void {
    for (const w of registry.all()) reconcile(w);
  }

  // "added" is not here: a new worker's process fingerprint (needed to trust a
  // restored state) is known only after the capability probe ("capabilities").
  // health_probe_failed / request_failed: a refused connection makes the
  // worker's weights unknown (a restart would bring base weights back).
  const reconcileOn = new Set<RegistryReason>(["capabilities", "health_probe_ok", "health_probe_failed", "request_failed", "recovered", "awake", "process_changed", "request_ok"]);
  registry.on("change", (e: RegistryEvent) => {
    if (e.type === "removed" || (e.type === "updated" && e.reason === "process_changed")) {
      // A fresh process (or none) at this URL holds none of the refit's tensors.
      op?.updated.delete(e.worker.url);
      op?.pending.delete(e.worker.url);
    }
    if (e.type === "removed") {
      syncFailures.delete(e.worker.url);
      nextSyncAtMs.delete(e.worker.url);
      return;
    }
    const w = e.worker;
    if (e.type === "added") {
      if (last === null) reconcile(w);
      else registry.beginSync(w.url);
      return;
    }
    if (!reconcileOn.has(e.reason)) return;
    if (w.dead) return;
    if (w.weightVersion !== version || w.sync !== "in_sync") {
      // Out of rotation at once (synchronously, before any request can pick
      // it), then brought up to date.
      if (w.sync === "in_sync" && last !== null) registry.beginSync(w.url);
      queueMicrotask(() => reconcile(w));
    }
  });

  function begin(kind: Operation["kind"], reason: string): Operation {
    if (op) {
      throw new RouterError("refit_in_progress", `a ${op.kind === "sleep" ? "memory release" : `${op.kind} refit`} is in progress (phase ${op.phase}, started ${Math.round((Date.now() - op.startedAtMs) / 1000)} s ago); retry when it ends`);
    }
    op = { kind, phase: "draining", startedAtMs: Date.now(), unhold: admission.hold(reason), updated: new Set(), pending: new Set(), timer: null };
    return op;
  }

  /**
   * Ends `current` (only if it is still the running operation): workers are
   * reconciled first, so that nothing out of date is routable when the held
   * requests are released.
   */
  function end(current: Operation): void {
    if (op !== current) return;
    if (current.timer) clearTimeout(current.timer);
    op = null;
    sweep();
    current.unhold();
  }

  /** Out of rotation, weights unknown: only a replay or a trainer's update brings it back. */
  function markUnknown(url: string, reason: "refit_failed" | "stale_weights", lastError: string): void {
    registry.weightsUnknown(url, reason, lastError);
  }

  async function drain(timeoutMs: number): Promise<void> {
    const ok = await admission.whenIdle(timeoutMs);
    if (!ok) {
      throw new RouterError("drain_timeout", `${admission.inFlight} generation request(s) still in flight after ${Math.round(timeoutMs / 1000)} s: nothing was changed (raise drain_timeout_s or --drain-timeout)`, { details: { in_flight: admission.inFlight } });
    }
  }

  /** Starts a per-worker tensor update: throws 409 without an open refit, else returns the refit it belongs to. */
  function tensorStarted(workerUrl: string): Operation {
    if (op?.kind !== "tensor" || op.phase !== "open") {
      throw new RouterError("no_refit_in_progress", "update_weights_from_tensor needs an open refit: POST /refit/begin first (it holds and drains traffic so no answer mixes weights), then /refit/commit");
    }
    op.pending.add(workerUrl);
    return op;
  }

  /**
   * Records a worker's tensor update answer; true when it loaded them. An
   * answer that arrives after its refit ended (aborted, timed out,
   * committed) leaves the worker with weights nobody committed: out of rotation.
   */
  function tensorUpdated(token: Operation, workerUrl: string, status: number, answer: Buffer): boolean {
    let ok = status === 200;
    try {
      if (ok && (JSON.parse(answer.toString("utf8")) as { success?: unknown }).success === false) ok = false;
    } catch {
      // Not JSON: status decides.
    }
    if (token !== op) {
      if (ok && registry.get(workerUrl)) markUnknown(workerUrl, "stale_weights", "a tensor update finished after its refit ended: holds uncommitted weights");
      return ok;
    }
    token.pending.delete(workerUrl);
    if (ok) token.updated.add(workerUrl);
    else token.updated.delete(workerUrl);
    return ok;
  }

  function summaryOf(results: BroadcastResult[]): RefitSummary {
    const ok = results.filter(succeeded).map((r) => r.worker_url);
    const failed = results
      .filter((r) => !succeeded(r))
      .map((r) => {
        // A sleeping worker refuses to load weights: say so, with the way out.
        const asleep = registry.get(r.worker_url)?.sleeping === true;
        return { worker_url: r.worker_url, status_code: r.status_code, message: asleep ? `worker is sleeping (call /resume_memory_occupation first): ${messageOf(r)}` : messageOf(r) };
      });
    return { targets: results.length, succeeded: ok.length, failed: failed.length, failed_workers: failed };
  }

  return {
    get version() {
      return version;
    },

    status() {
      return {
        weight_version: version,
        refits,
        phase: op?.phase ?? "idle",
        operation: op?.kind ?? null,
        started_at_ms: op?.startedAtMs ?? null,
        updated_workers: op ? [...op.updated] : [],
        replayable: last?.kind === "disk",
        held_requests: admission.queued,
        in_flight: admission.inFlight,
      };
    },

    /**
     * `POST /update_weights_from_disk`: hold, drain, broadcast, then bump the
     * version if any worker loaded the weights. Workers that failed leave
     * rotation (`stale`) rather than serve the old weights.
     */
    async updateWeightsFromDisk(raw: Buffer, json: Record<string, unknown>, drainTimeoutMs = options.drainTimeoutMs): Promise<DiskRefitResult> {
      const current = begin("disk", "refit");
      try {
        const targetVersion = json.weight_version !== undefined && json.weight_version !== null ? String(json.weight_version) : String(refits + 1);
        persist({ kind: "disk", body: raw.toString("utf8"), targetVersion, startedAtMs: current.startedAtMs });
        await drain(drainTimeoutMs);
        current.phase = "updating";
        const targets = registry.all().filter((w) => !w.dead);
        if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
        const results = await control.broadcast("/update_weights_from_disk", raw, targets);
        const summary = summaryOf(results);
        const previous = version;
        if (summary.succeeded > 0) {
          version = targetVersion;
          refits++;
          last = { kind: "disk", body: raw.toString("utf8") };
          for (const r of results) {
            const ok = succeeded(r);
            if (ok) {
              registry.weightsLoaded(r.worker_url, version);
              continue;
            }
            // It rolled back to the old weights: keep it away from traffic
            // (half loaded or rolled back, never trusted again without a replay),
            // and give it time before the first replay (the same load just failed).
            syncFailures.set(r.worker_url, 1);
            nextSyncAtMs.set(r.worker_url, Date.now() + 5_000);
            markUnknown(r.worker_url, "refit_failed", `update_weights_from_disk to ${version} failed: ${messageOf(r)}`);
          }
        }
        persist();
        const failure =
          summary.failed === 0
            ? null
            : `update_weights_from_disk: ${summary.succeeded === 0 ? `no worker loaded the weights; the pool stays on ${version}` : `${summary.failed} of ${summary.targets} worker(s) failed and left rotation until they hold ${version}`}`;
        return { results, weight_version: version, previous_weight_version: previous, summary, failure };
      } catch (err) {
        persist();
        throw err;
      } finally {
        end(current);
      }
    },

    /** `POST /refit/begin`: hold and drain, then leave the refit open for per-worker tensor updates. */
    async begin(drainTimeoutMs = options.drainTimeoutMs, timeoutMs = options.refitTimeoutMs) {
      const current = begin("tensor", "refit");
      try {
        persist({ kind: "tensor", startedAtMs: current.startedAtMs });
        await drain(drainTimeoutMs);
      } catch (err) {
        end(current);
        persist();
        throw err;
      }
      current.phase = "open";
      current.timer = setTimeout(() => {
        if (op !== current) return;
        logger.warn({ timeoutMs }, "two-phase refit left open past its timeout: aborting and releasing held requests");
        abort("timed out");
      }, timeoutMs);
      current.timer.unref();
      return { weight_version: version, phase: "open", timeout_s: timeoutMs / 1000, workers: registry.all().filter((w) => !w.dead).map((w) => w.url) };
    },

    /**
     * One worker's tensor update inside an open refit, whatever carries it
     * (REST streams the client's body through, the RPC posts its JSON):
     * `send` delivers it and calls `answered` with the worker's answer before
     * the caller sees its end. Throws 409 without an open refit. A send that
     * fails before the worker answered leaves the worker not updated.
     */
    async updateTensors(workerUrl: string, send: (answered: (status: number, answer: Buffer) => void) => Promise<void>): Promise<TensorUpdateOutcome> {
      const token = tensorStarted(workerUrl);
      let outcome: TensorUpdateOutcome | null = null;
      const answered = (status: number, answer: Buffer) => {
        if (outcome === null) outcome = { worker_url: workerUrl, ok: tensorUpdated(token, workerUrl, status, answer), status_code: status };
      };
      try {
        await send(answered);
      } finally {
        if (outcome === null) outcome = { worker_url: workerUrl, ok: tensorUpdated(token, workerUrl, 0, Buffer.alloc(0)), status_code: 0 };
      }
      return outcome;
    },

    /** `POST /refit/commit`: the updated workers take the new version; the others leave rotation. */
    commit(weightVersion: unknown) {
      if (op?.kind !== "tensor" || op.phase !== "open") throw new RouterError("no_refit_in_progress", "no open refit to commit: POST /refit/begin first");
      if (op.updated.size === 0) throw new RouterError("invalid_request", "no worker was updated in this refit: POST /workers/{worker_id}/update_weights_from_tensor to each worker before committing (or /refit/abort)");
      const current = op;
      const updated = current.updated;
      const previous = version;
      version = weightVersion !== undefined && weightVersion !== null && weightVersion !== "" ? String(weightVersion) : String(refits + 1);
      refits++;
      last = { kind: "tensor" };
      const stale: string[] = [];
      for (const w of registry.all()) {
        if (updated.has(w.url)) {
          registry.weightsLoaded(w.url, version);
        } else {
          // Not updated (or still loading, or dead): its weights are not these.
          if (!w.dead) stale.push(w.url);
          markUnknown(w.url, "stale_weights", current.pending.has(w.url) ? `its tensor update was still loading when refit ${version} was committed` : `not updated in tensor refit ${version}`);
        }
      }
      persist();
      end(current);
      return { weight_version: version, previous_weight_version: previous, updated_workers: [...updated], stale_workers: stale };
    },

    abort,

    /** `POST /release_memory_occupation`: drain, then put every awake worker to sleep. */
    async releaseMemory(raw: Buffer, drainTimeoutMs = options.drainTimeoutMs): Promise<MemoryResult> {
      const current = begin("sleep", "sleep");
      try {
        await drain(drainTimeoutMs);
        current.phase = "sleeping";
        return { results: await control.releaseMemoryOccupation(raw) };
      } finally {
        end(current);
      }
    },

    /** `POST /resume_memory_occupation`: wake the sleeping workers; held requests then flow. */
    async resumeMemory(raw: Buffer): Promise<MemoryResult> {
      if (op) throw new RouterError("refit_in_progress", `a ${op.kind} operation is in progress (phase ${op.phase}); retry when it ends`);
      const results = await control.resumeMemoryOccupation(raw);
      sweep();
      return { results };
    },

    sweep,
  };

  function abort(why = "aborted by request") {
    if (op?.kind !== "tensor") {
      throw new RouterError("no_refit_in_progress", op ? `a ${op.kind === "sleep" ? "memory release" : "disk refit"} cannot be aborted; it ends by itself` : "no refit in progress to abort");
    }
    const current = op;
    // Workers that took (or are taking) new tensors hold weights nobody
    // committed: out of rotation before the held requests are released.
    const stale = [...new Set([...current.updated, ...current.pending])];
    for (const url of stale) if (registry.get(url)) markUnknown(url, "stale_weights", `holds uncommitted weights from an aborted refit (${why})`);
    persist();
    end(current);
    return { weight_version: version, aborted: true, reason: why, stale_workers: stale };
  }
}

export type RefitCoordinator = ReturnType<typeof createRefitCoordinator>;
