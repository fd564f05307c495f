/**
 * The earliest-finish plan: which queued requests to send now, and where.
 *
 * Requests are taken largest first (their queue order; see `priorityKey`),
 * each assigned to the eligible worker on which it would finish earliest,
 * counting the work that worker already has and the work planned for it in
 * this round. A request whose best worker is busy stays in the router's
 * queue (its place on that worker is reserved for this round, so smaller
 * requests behind it plan around it); one whose best worker has a free slot
 * is sent. This is list scheduling by longest processing time on machines
 * of different speeds (LPT/EFT), re-planned at every arrival and
 * completion, so estimates that were wrong are corrected as soon as a
 * worker finishes. Pure: the caller passes times in.
 */

import { bestPacking, loadsOf, maxOf } from "./pack.js";

export interface PlanWorker {
  /** Time (ms, same clock as `nowMs`) at which the worker is predicted to finish what it has. */
  busyUntilMs: number;
  /** Requests it can take now (its batch size, or 1, minus what it runs). */
  freeSlots: number;
  /**
   * Whether its costs are learned well enough to pack a queue on (default
   * true). Packing trusts estimates more than the first pass does (it may
   * leave a free worker idle for a planned better one), so it waits until
   * every worker has been measured.
   */
  learned?: boolean;
  /**
   * How far its service times scatter around their predictions (relative:
   * 0.05 = 5%; default 0). Finishes closer than the larger scatter of two
   * workers (times the request's predicted time on the best one) are not
   * told apart: on a loaded host or with few observations, which of two
   * equal workers measured faster is noise, and always picking it would
   * starve the other of the requests that would correct its estimate.
   */
  noise?: number;
}

export interface PlanItem<W> {
  /** Workers that may serve the request (non-empty). */
  readonly candidates: readonly W[];
  /** Predicted service time (ms) on a candidate. */
  predictMs(worker: W): number;
}

/**
 * A free worker is preferred over a busy one whose finish is at most this
 * much earlier (relative): starting now is certain, a predicted finish is not.
 */
const PREFER_FREE = 0.03;
/** Finishes this close count as equal too: measured service times carry a few ms of noise (network, the worker's event loop). */
const TIE_MS = 10;


/** Up to this many queued requests the whole queue is packed (see pack.ts); beyond, the first pass alone decides. */
const FULL_PLAN_ITEMS = 512;
/** Candidate checks the packing may spend per round: about 10 ms at the limit above. */
const PACK_BUDGET = 400_000;
/** A packing replaces the first pass only if it ends this much sooner (relative; plus TIE_MS): estimates carry error. */
const MIN_PACK_GAIN = 0.002;

/**
 * Returns [item index, worker] pairs to dispatch now, in plan order.
 * `items` must be in priority order; at most `maxItems` are looked at (the
 * rest wait for a later round), which bounds the work per round.
 *
 * First pass: largest first, each to the worker that finishes it earliest
 * (a free one within PREFER_FREE of the best, rotating). When the queue is
 * short enough to plan whole (the end of a burst, where the makespan is
 * decided), the whole queue is then packed (pack.ts) and, if that ends
 * sooner, each worker with free slots gets its planned requests instead.
 */
export function planDispatch<W>(items: readonly PlanItem<W>[], state: Map<W, PlanWorker>, nowMs: number, maxItems = 2048, rotation = 0): [number, W][] {
  const out: [number, W][] = [];
  let free = 0;
  for (const s of state.values()) free += s.freeSlots;
  if (free === 0) return out;
  const n = Math.min(items.length, maxItems);
  let learned = true;
  for (const s of state.values()) if (s.learned === false) learned = false;
  // Packing can only move a request between workers: with one worker, or
  // with every request allowed on one worker only, there is nothing to move.
  let movable = false;
  for (let i = 0; i < n && !movable; i++) movable = items[i]!.candidates.length > 1;
  const full = learned && movable && state.size > 1 && n > 1 && n <= FULL_PLAN_ITEMS;
  const workers = full ? [...state.keys()] : [];
  const index = new Map<W, number>(workers.map((w, i) => [w, i]));
  const W = workers.length;
  const cost = full ? new Float64Array(n * W).fill(Infinity) : null;
  const base = full ? Float64Array.from(workers, (w) => Math.max(state.get(w)!.busyUntilMs, nowMs) - nowMs) : null;
  const slots = full ? workers.map((w) => state.get(w)!.freeSlots) : null;
  const first = full ? new Int32Array(n).fill(-1) : null;
  const finishes: number[] = [];
  const times: number[] = [];
  for (let i = 0; i < n && (full || free > 0); i++) {
    const item = items[i]!;
    const cands = item.candidates;
    let best = -1;
    let bestFinish = Infinity;
    for (let c = 0; c < cands.length; c++) {
      const s = state.get(cands[c]!);
      if (s === undefined) {
        finishes[c] = Infinity;
        continue;
      }
      const ms = item.predictMs(cands[c]!);
      times[c] = ms;
      if (cost !== null) cost[i * W + index.get(cands[c]!)!] = ms;
      finishes[c] = Math.max(s.busyUntilMs, nowMs) + ms;
      if (finishes[c]! < bestFinish) {
        best = c;
        bestFinish = finishes[c]!;
      }
    }
    if (best < 0) continue;
    // Among free workers within PREFER_FREE of the best finish, take the
    // first from a rotating start: equal workers share an idle fleet's
    // requests (and keep their speed estimates fresh) instead of the first
    // one taking them all.
    // "Within" counts the scatter of the two workers' times too (noiseMs).
    const limit = nowMs + (bestFinish - nowMs) * (1 + PREFER_FREE) + TIE_MS;
    const bestNoise = state.get(cands[best]!)!.noise ?? 0;
    const start = cands.length > 0 ? (rotation + i) % cands.length : 0;
    for (let k = 0; k < cands.length; k++) {
      const c = (start + k) % cands.length;
      const s = state.get(cands[c]!);
      if (s !== undefined && s.freeSlots > 0 && finishes[c]! <= limit + times[best]! * Math.max(bestNoise, s.noise ?? 0)) {
        best = c;
        break;
      }
    }
    const w = cands[best]!;
    const s = state.get(w)!;
    s.busyUntilMs = Math.max(s.busyUntilMs, nowMs) + times[best]!;
    if (first !== null) first[i] = index.get(w)!;
    if (s.freeSlots > 0) {
      s.freeSlots--;
      free--;
      out.push([i, w]);
    }
  }
  if (first === null) return out;
  const problem = { base: base!, cost: cost!, n, w: W };
  const order = Array.from({ length: n }, (_, i) => i);
  const startMs = maxOf(loadsOf(problem, first));
  const packed = bestPacking(problem, first, order, PACK_BUDGET, TIE_MS + MIN_PACK_GAIN * startMs);
  if (packed === first) return out;
  // Each worker with free slots gets its planned requests, highest priority first.
  const packedOut: [number, W][] = [];
  for (let i = 0; i < n; i++) {
    const w = packed[i]!;
    if (w >= 0 && slots![w]! > 0) {
      slots![w]!--;
      packedOut.push([i, workers[w]!]);
    }
  }
  return packedOut;
}

/**
 * The queue order: largest predicted work first, with ageing so nothing
 * starves. A request that has waited `w` ms gains `w × ageing` ms of
 * priority; since every queued request ages at the same rate, the order
 * between two requests never changes while they wait, so the key is fixed at
 * arrival and the queue stays sorted without re-sorting: key = work − ageing ×
 * arrival time. With ageing 1, a request that arrived 10 s earlier goes before
 * one that is up to 10 s of GPU time larger.
 */
export function priorityKey(referenceMs: number, arrivedMs: number, ageing: number): number {
  return referenceMs - ageing * arrivedMs;
}
