import type { Policy } from "../balancer/index.js";
import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";

/** Which workers a request may go to. */
export type Pool = "any" | "video";

/** Options of {@link createAdmission}. */
export interface AdmissionOptions {
  registry: Registry;
  policy: Policy;
  /** Most generation requests in flight on one worker; 0 = unlimited (default, as the original). */
  maxConcurrencyPerWorker: number;
  /** Most requests waiting in the router; beyond it, 503 queue_full. Default 10000. */
  queueSize: number;
  /** Longest wait in the queue; then 503 queue_timeout. Default 300 s. */
  queueTimeoutMs: number;
}

interface Waiter {
  readonly pool: Pool;
  readonly exclude: ReadonlySet<string> | null;
  readonly resolve: (w: Worker) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | null;
  readonly onAbort: (() => void) | null;
  settled: boolean;
}

/**
 * Decides when a generation request may be dispatched and to which worker,
 * and counts it until {@link Admission.release}. The only place that holds
 * requests: during a refit or a sleep (hold), while every worker is at its
 * concurrency cap, or while the workers that could serve are asleep or being
 * synced. Waiters are served first-in first-out.
 */
export interface Admission {
  /** A worker right now, or null when the request must wait ({@link wait}). Throws when nothing could ever serve it. */
  tryAcquire(pool: Pool, exclude?: ReadonlySet<string> | null): Worker | null;
  /** Queues until a worker is free; rejects with queue_full / queue_timeout, or the abort reason. */
  wait(pool: Pool, signal: AbortSignal | null, exclude?: ReadonlySet<string> | null): Promise<Worker>;
  /** Counts a request that must reach a given worker (id affinity); never held. */
  acquireSpecific(worker: Worker): Worker;
  /** Ends a request counted by tryAcquire/wait (`generation` true) or acquireSpecific (false). */
  release(worker: Worker, generation: boolean): void;
  /** Holds new generation requests until the returned function is called. */
  hold(reason: string): () => void;
  readonly held: boolean;
  /** Generation requests dispatched and not finished. */
  readonly inFlight: number;
  readonly queued: number;
  /** Resolves true once no generation request is in flight, false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean>;
  /** Answers every waiter with `err`, and every later one (shutdown). */
  rejectAll(err: Error): void;
}

export function createAdmission(options: AdmissionOptions): Admission {
  const { registry, policy } = options;
  const cap = options.maxConcurrencyPerWorker;
  const holds = new Map<number, string>();
  let nextHold = 0;
  let queue: Waiter[] = [];
  let queued = 0;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  /** Set by rejectAll (shutdown): every later wait() fails with it. */
  let closed: Error | null = null;

  function candidates(pool: Pool): readonly Worker[] {
    return pool === "video" ? registry.routableVideo() : registry.routable();
  }

  /** The policy's pick among workers under the cap and not excluded; null if none. */
  function pick(pool: Pool, exclude: ReadonlySet<string> | null | undefined): Worker | null {
    const all = candidates(pool);
    if (all.length === 0) return null;
    if (cap === 0 && !exclude) return policy.pick(all);
    const free = all.filter((w) => (cap === 0 || w.activeRequests < cap) && !exclude?.has(w.url));
    return free.length === 0 ? null : policy.pick(free);
  }

  function take(worker: Worker): Worker {
    worker.activeRequests++;
    inFlight++;
    registry.notifyLoad(worker);
    return worker;
  }

  /**
   * Whether waiting can help: some worker of the pool exists that is only
   * temporarily unable to serve (busy, asleep, syncing, draining, ejected,
   * or held).
   * An empty pool, or one where every worker is dead, fails at once so that
   * clients' own retries take over.
   */
  function mayWait(pool: Pool): boolean {
    for (const w of registry.all()) {
      if (pool === "video" && w.capabilities.videoSupport !== true) continue;
      // An ejection ends with a probe within a minute: waiting for it beats failing.
      if (!w.dead || holds.size > 0 || w.deadReason === "ejected") return true;
    }
    return false;
  }

  function pump(): void {
    // Waiters that timed out or left are dropped lazily; under a long hold
    // nothing is served, so compact here to keep the array bounded.
    if (queue.length > 2 * queued + 64) queue = queue.filter((w) => !w.settled);
    if (holds.size > 0 || queued === 0) return;
    const exhausted = new Set<Pool>();
    let live = 0;
    for (const waiter of queue) {
      if (waiter.settled) continue;
      if (exhausted.has(waiter.pool)) {
        queue[live++] = waiter;
        continue;
      }
      const w = pick(waiter.pool, waiter.exclude);
      if (w === null) {
        if (!waiter.exclude) exhausted.add(waiter.pool);
        queue[live++] = waiter;
        continue;
      }
      settle(waiter);
      waiter.resolve(take(w));
    }
    queue.length = live;
  }

  function settle(waiter: Waiter): void {
    waiter.settled = true;
    queued--;
    clearTimeout(waiter.timer);
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener("abort", waiter.onAbort);
  }

  // Any change of worker state can free capacity (a worker woke, was added,
  // recovered). Deferred to a microtask: other listeners of the same change
  // (the refit coordinator marking a returning worker `syncing`) must run
  // first, or a waiter could be handed a worker on old weights.
  let pumpQueued = false;
  registry.on("change", (e) => {
    if (queued === 0 || pumpQueued || (e.type === "updated" && e.reason === "load")) return;
    pumpQueued = true;
    queueMicrotask(() => {
      pumpQueued = false;
      pump();
    });
  });

  const admission: Admission = {
    tryAcquire(pool, exclude) {
      if (holds.size === 0) {
        const w = pick(pool, exclude);
        if (w !== null) return take(w);
      }
      if (!mayWait(pool)) throw noWorkerError(registry, pool);
      return null;
    },

    wait(pool, signal, exclude = null) {
      if (closed !== null) return Promise.reject(closed);
      if (queued >= options.queueSize) {
        return Promise.reject(new RouterError("queue_full", `router queue is full (${options.queueSize} requests waiting)`, { details: { retryAfterS: 1 } }));
      }
      return new Promise<Worker>((resolve, reject) => {
        const waiter: Waiter = {
          pool,
          exclude,
          resolve,
          reject,
          signal,
          settled: false,
          timer: setTimeout(() => {
            if (waiter.settled) return;
            settle(waiter);
            const why = holds.size > 0 ? `held by ${[...new Set(holds.values())].join(", ")}` : "no worker became free";
            reject(new RouterError("queue_timeout", `request waited ${Math.round(options.queueTimeoutMs / 1000)} s in the router queue (${why})`, { details: { retryAfterS: 5 } }));
          }, options.queueTimeoutMs),
          onAbort: signal
            ? () => {
                if (waiter.settled) return;
                settle(waiter);
                reject(signal.reason instanceof Error ? signal.reason : new Error("client went away while queued"));
              }
            : null,
        };
        waiter.timer.unref();
        if (signal) {
          if (signal.aborted) {
            clearTimeout(waiter.timer);
            reject(signal.reason instanceof Error ? signal.reason : new Error("client went away"));
            return;
          }
          signal.addEventListener("abort", waiter.onAbort!, { once: true });
        }
        queue.push(waiter);
        queued++;
        pump();
      });
    },

    acquireSpecific(worker) {
      worker.activeRequests++;
      registry.notifyLoad(worker);
      return worker;
    },

    release(worker, generation) {
      if (worker.activeRequests > 0) worker.activeRequests--;
      if (generation) {
        inFlight--;
        if (inFlight === 0 && idleWaiters.length) {
          const ws = idleWaiters;
          idleWaiters = [];
          for (const w of ws) w();
        }
      }
      registry.notifyLoad(worker);
      if (queued > 0) pump();
    },

    hold(reason) {
      const id = nextHold++;
      holds.set(id, reason);
      return () => {
        if (holds.delete(id)) pump();
      };
    },

    get held() {
      return holds.size > 0;
    },
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return queued;
    },

    whenIdle(timeoutMs) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = () => {
          clearTimeout(t);
          resolve(true);
        };
        const t = setTimeout(() => {
          idleWaiters = idleWaiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs);
        idleWaiters.push(done);
      });
    },

    rejectAll(err) {
      // Requests still reading their body or retrying must not queue after this.
      closed = err;
      for (const waiter of queue) {
        if (waiter.settled) continue;
        settle(waiter);
        waiter.reject(err);
      }
      queue = [];
    },
  };
  return admission;
}

/** The precise reason nothing can take a request, for the client's error. */
export function noWorkerError(registry: Registry, pool: Pool): RouterError {
  // A video request that no registered worker could ever serve is the
  // client's mistake (400, as the original), even in an empty pool.
  if (pool === "video") {
    const video = registry.all().filter((w) => w.capabilities.videoSupport === true);
    if (video.length === 0) {
      return new RouterError("no_video_workers", "No video-capable workers available in current worker pool (no worker's /v1/models task_type is T2V, I2V or TI2V).");
    }
    return new RouterError("no_healthy_workers", `No healthy video-capable workers available (${video.length} registered, none routable)`, { details: { retryAfterS: 1 } });
  }
  if (registry.size === 0) return new RouterError("no_healthy_workers", "No workers registered in the pool", { details: { retryAfterS: 1 } });
  return new RouterError("no_healthy_workers", "No healthy workers available in the pool", { details: { retryAfterS: 1 } });
}
