import type { Run } from "./ticket.js";

/**
 * A worker's runs in time (LoadBook keeps them per worker, in start order):
 * when each began on the GPU, when the worker is free, how much slower than
 * predicted it runs now. Pure functions over the run set, allocation-free but
 * for slotEndsMs: the planner asks them for every worker it considers.
 *
 * A one-slot ("serial") worker runs its queue in order (SGLang's scheduler is
 * FIFO): a run begins at the latest of its send, the previous run's predicted
 * end and the worker's last answer.
 */

/**
 * How much slower than predicted a worker is running right now: a request
 * past its prediction says so before it ends (1.5 × its elapsed/predicted,
 * as it is not done yet). A slow GPU's first request thus shows it slow
 * while it still runs, and no more work is planned onto it as if fast.
 * Its last answer, if 2x or more off its prediction (`lastMiss`), counts until the next:
 * the cost model moves the worker's speed only on a second such answer (one
 * may be a stall), and a GPU that became 3x slower would otherwise be sent
 * a large request as if fast right after its first slow answer (issue 20).
 */
export function runningSlowdown(runs: Iterable<Run>, lastDoneMs: number, serial: boolean, lastMiss: number, nowMs: number): number {
  let s = Math.max(1, lastMiss);
  let prevEnd = 0;
  for (const r of runs) {
    const began = serial ? Math.max(r.startedMs, prevEnd, lastDoneMs) : r.startedMs;
    const elapsed = nowMs - began;
    if (elapsed > r.predictedMs && r.predictedMs > 0) s = Math.max(s, (1.5 * elapsed) / r.predictedMs);
    prevEnd = began + r.predictedMs;
  }
  return s;
}

/**
 * When `run` began on a one-slot worker's GPU: hedging judges a run overdue
 * from this, as a request queued behind a straggler's probe did not run while
 * it waited. Its send time if it is not among `runs`.
 */
export function runBeganMs(runs: Iterable<Run>, lastDoneMs: number, run: Run): number {
  let prevEnd = 0;
  for (const r of runs) {
    const began = Math.max(r.startedMs, prevEnd, lastDoneMs);
    if (r === run) return began;
    prevEnd = began + r.predictedMs;
  }
  return run.startedMs;
}

/**
 * The earliest time at which {@link runningSlowdown} may change without a
 * run starting or ending: when one of the runs passes its prediction
 * (Infinity with none). Until then the planner may keep its state.
 */
export function slowdownChangeMs(runs: Iterable<Run>, lastDoneMs: number, serial: boolean): number {
  let at = Infinity;
  let prevEnd = 0;
  for (const r of runs) {
    const began = serial ? Math.max(r.startedMs, prevEnd, lastDoneMs) : r.startedMs;
    if (r.predictedMs > 0) at = Math.min(at, began + r.predictedMs);
    prevEnd = began + r.predictedMs;
  }
  return at;
}

/**
 * When a one-slot worker is predicted to finish what it has: its runs one
 * after another in start order, each from the later of its start and the
 * previous one's end, stretched by the worker's current slowdown.
 */
export function queueEndMs(runs: Iterable<Run>, lastDoneMs: number, nowMs: number, slow: number): number {
  let t = 0;
  for (const r of runs) t = Math.max(t, r.startedMs, lastDoneMs) + r.predictedMs * slow;
  return Math.max(t, nowMs);
}

/** When each of `slots` parallel slots is predicted free, earliest first: the runs in start order, each on the slot that frees first. */
export function slotEndsMs(runs: Iterable<Run>, slots: number, nowMs: number, slow: number): number[] {
  const ends = new Array<number>(slots).fill(0);
  for (const r of runs) {
    let i = 0;
    for (let j = 1; j < slots; j++) if (ends[j]! < ends[i]!) i = j;
    ends[i] = Math.max(ends[i]!, r.startedMs) + r.predictedMs * slow;
  }
  return ends.map((e) => Math.max(e, nowMs)).sort((a, b) => a - b);
}

/** Predicted ms of the runs' work not finished at `nowMs`. */
export function workLeftMs(runs: Iterable<Run>, nowMs: number): number {
  let t = 0;
  let left = 0;
  for (const r of runs) {
    t = Math.max(t, r.startedMs) + r.predictedMs;
    left = Math.max(0, t - nowMs);
  }
  return left;
}
