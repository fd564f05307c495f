import { EventEmitter } from "node:events";
import { RouterError } from "../errors.js";
import { displayIdOf, workerIdOf } from "./worker-url.js";
import type { RegistryReason, Transition } from "./transitions.js";
import { isRoutable, type Worker, type WorkerCapabilities } from "./worker.js";

export type RegistryEvent =
  | { type: "added"; worker: Worker }
  | { type: "removed"; worker: Worker }
  | { type: "updated"; worker: Worker; reason: RegistryReason };

/**
 * The one source of truth about workers. Every front door (REST, RPC,
 * launcher, health) changes workers through these methods, so the routable
 * sets below are rebuilt once per change instead of filtered per request.
 */
export class Registry extends EventEmitter<{ change: [RegistryEvent] }> {
  readonly #workers = new Map<string, Worker>();
  #routable: Worker[] = [];
  #routableVideo: Worker[] = [];

  get size(): number {
    return this.#workers.size;
  }

  /** Adds a worker (URL already normalized). Returns the existing one if known. */
  add(url: string, init: { managed?: boolean; capabilities?: Partial<WorkerCapabilities> } = {}): { worker: Worker; created: boolean } {
    const existing = this.#workers.get(url);
    if (existing) return { worker: existing, created: false };
    const worker: Worker = {
      url,
      id: workerIdOf(url),
      displayId: displayIdOf(url),
      registeredAtMs: Date.now(),
      activeRequests: 0,
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      dead: false,
      deadReason: null,
      lastError: null,
      sleeping: false,
      draining: false,
      sync: "in_sync",
      weightVersion: null,
      capabilities: { taskType: null, videoSupport: null, models: [], instanceFingerprint: null, ...init.capabilities },
      managed: init.managed ?? false,
      ejectedUntilMs: 0,
      ejectionCount: 0,
      processEpoch: 0,
      lastProbeAtMs: 0,
    };
    this.#workers.set(url, worker);
    this.#rebuild();
    this.emit("change", { type: "added", worker });
    return { worker, created: true };
  }

  remove(url: string): Worker | undefined {
    const worker = this.#workers.get(url);
    if (!worker) return undefined;
    this.#workers.delete(url);
    this.#rebuild();
    this.emit("change", { type: "removed", worker });
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

  /**
   * Applies a change to a worker's state and republishes the routable sets.
   * All state changes go through here so that listeners (WatchWorkers,
   * metrics, logs) see every one.
   */
  update(url: string, reason: Transition, mutate: (w: Worker) => void): Worker | undefined {
    const worker = this.#workers.get(url);
    if (!worker) return undefined;
    mutate(worker);
    this.#rebuild();
    this.emit("change", { type: "updated", worker, reason });
    return worker;
  }

  /** Load counters change per request: only notify when someone listens for them. */
  notifyLoad(worker: Worker): void {
    if (this.listenerCount("change") > 0) this.emit("change", { type: "updated", worker, reason: "load" });
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
