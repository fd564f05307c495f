import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Candidates } from "./candidates.js";
import type { LoadBook } from "./loads.js";
import type { WaitQueue } from "./queue.js";

/** What /workers, the RPC and /metrics show of a worker's scheduling. */
export interface WorkerScheduling {
  /** Learned speed relative to the fleet average for its model (1 = average). */
  speed: number;
  /** Observed service times the speed rests on. */
  observations: number;
  /** Relative scatter of its service times around the predictions (see CostModelSnapshot.noise). */
  noise: number;
  /** Predicted ms of work dispatched to it and not finished. */
  inFlightWorkMs: number;
  /** Predicted ms of the queued requests that only it can serve, or that the last plan placed on it. */
  queuedWorkMs: number;
}

/** Scheduling facts of every registered worker (one pass over the queue). */
export function schedulingView(registry: Registry, loads: LoadBook, queue: WaitQueue, candidates: Candidates, nowMs: number): Map<Worker, WorkerScheduling> {
  const out = new Map<Worker, WorkerScheduling>();
  for (const w of registry.all()) {
    const snap = loads.snapshot(w);
    out.set(w, { speed: snap.speed, observations: snap.observations, noise: snap.noise, inFlightWorkMs: Math.round(loads.inFlightWorkMs(w, nowMs)), queuedWorkMs: 0 });
  }
  // A queued request counts on the worker it can only go to, or in equal
  // shares on the workers it may go to.
  for (const waiter of queue.live()) {
    if (waiter.settled) continue;
    const cands = candidates.of(waiter.ticket);
    for (const w of cands) {
      const s = out.get(w);
      if (s) s.queuedWorkMs += loads.predictMs(waiter.ticket.facts.work, w) / cands.length;
    }
  }
  for (const s of out.values()) s.queuedWorkMs = Math.round(s.queuedWorkMs);
  return out;
}
