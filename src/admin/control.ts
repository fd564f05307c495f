import type { AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import type { HealthChecker } from "../health/health-checker.js";
import { describeNetworkError, probeCapabilities, probeHealth, probeParallelSlots } from "../health/probe.js";
import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import { normalizeWorkerUrl } from "../registry/worker-url.js";
import { createBroadcast, type Broadcast } from "./broadcast.js";
import { poolStatus, type PoolStatus } from "./pool-status.js";

export type { PoolStatus } from "./pool-status.js";

export interface WorkerPatch {
  /** Quarantine (true) or recover (false). */
  isDead?: boolean;
  /** Re-read `/v1/models` (task type, video support). */
  refreshVideoSupport?: boolean;
  /** Stop sending new requests, keep the worker registered. */
  draining?: boolean;
}

export interface ControlOptions {
  registry: Registry;
  upstream: Upstream;
  health: HealthChecker;
  logger: Logger;
  probeTimeoutMs: number;
  /** Limit of one broadcast call (a weight load, sleep, wake); see {@link createBroadcast}. */
  broadcastTimeoutMs: number;
  /** Id-affinity maps to clean when a worker leaves. */
  affinities: readonly AffinityMap[];
}

/**
 * The admin operations, written once. REST handlers and RPC handlers are thin
 * adapters that parse their input, call these and shape the output.
 */
export interface Control {
  /**
   * `process`: the worker's process identity when its launcher knows it
   * ({@link launcherProcessId}), kept as its fingerprint instead of one
   * learned from its model card.
   */
  addWorker(rawUrl: unknown, options?: { managed?: boolean; process?: string }): Promise<{ worker: Worker; created: boolean }>;
  removeWorker(rawUrl: string): Worker;
  getWorker(rawUrl: string): Worker;
  listWorkers(): Worker[];
  status(): PoolStatus;
  updateWorker(rawUrl: string, patch: WorkerPatch): Promise<Worker>;
  /** Posts one body to each target at once; never throws for a worker's failure. */
  broadcast: Broadcast;
}

async function refreshCapabilities(options: ControlOptions, worker: Worker): Promise<void> {
  const { registry, upstream } = options;
  try {
    const [caps, parallelSlots] = await Promise.all([probeCapabilities(upstream, worker.url, options.probeTimeoutMs), probeParallelSlots(upstream, worker.url, options.probeTimeoutMs)]);
    // A fingerprint is trusted only once health probes saw it stable.
    registry.setCapabilities(worker.url, { ...caps, parallelSlots, instanceFingerprint: worker.capabilities.instanceFingerprint });
  } catch (err) {
    registry.capabilitiesUnknown(worker.url, `GET /v1/models failed: ${describeNetworkError(err)}`);
    throw err;
  }
}

/**
 * The card did not come: a worker that answers /health is warming up
 * (SGLang holds /v1/models until its pipeline is loaded) and waits as
 * `starting`; one that does not answer at all is dead until a probe succeeds.
 */
async function markUnready(options: ControlOptions, url: string, err: unknown): Promise<void> {
  const { registry, upstream, logger } = options;
  if ((await probeHealth(upstream, url, options.probeTimeoutMs)) === null) {
    registry.markStarting(url);
    logger.info({ worker: url }, "worker warming up at registration (its model card is held): routed once the card arrives");
    return;
  }
  registry.unreachableAtRegistration(url);
  logger.warn({ worker: url, problem: describeNetworkError(err) }, "worker not reachable at registration: kept out of rotation until a health probe succeeds");
}

export function createControl(options: ControlOptions): Control {
  const { registry, upstream, logger } = options;

  const control: Control = {
    async addWorker(rawUrl, opts = {}) {
      const url = normalizeWorkerUrl(rawUrl);
      const { worker, created } = registry.add(url, { managed: opts.managed ?? false, ...(opts.process === undefined ? {} : { capabilities: { instanceFingerprint: opts.process } }) });
      if (!created) return { worker, created };
      logger.info({ worker: url }, "worker registered");
      // Probe at once: capabilities decide where video goes, and a worker
      // that cannot be reached must not take traffic before a probe says so.
      try {
        await refreshCapabilities(options, worker);
      } catch (err) {
        await markUnready(options, url, err);
      }
      return { worker, created };
    },

    removeWorker(rawUrl) {
      const url = normalizeWorkerUrl(rawUrl);
      const worker = registry.remove(url);
      if (!worker) throw new RouterError("worker_not_found", `Worker not found: ${url}`, { details: { param: "worker_id" } });
      for (const a of options.affinities) a.forgetWorker(url);
      logger.info({ worker: url }, "worker removed");
      return worker;
    },

    getWorker(rawUrl) {
      return registry.require(normalizeWorkerUrl(rawUrl));
    },

    listWorkers() {
      return registry.all();
    },

    status: () => poolStatus(registry),

    async updateWorker(rawUrl, patch) {
      const worker = registry.require(normalizeWorkerUrl(rawUrl));
      if (patch.isDead !== undefined) {
        registry.setQuarantined(worker.url, patch.isDead);
      }
      if (patch.draining !== undefined) {
        registry.setDraining(worker.url, patch.draining);
      }
      if (patch.refreshVideoSupport) {
        // The original answers with video_support null when the probe fails, not an error.
        await refreshCapabilities(options, worker).catch(() => undefined);
      }
      return worker;
    },

    broadcast: createBroadcast(upstream, options.broadcastTimeoutMs),
  };
  return control;
}
