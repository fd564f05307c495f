/**
 * REFERENCE ONLY (test/plan-differential.test.ts): src/scheduler/plan.ts as
 * it was before issue 25 (maps, closures, one prediction per request and
 * worker), kept unchanged so that the planner that replaced it
 * (src/scheduler/board-plan.ts) can be compared with it on the same inputs.
 *
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

import { bestPacking, loadsOf, maxOf } from "../../src/scheduler/pack.js";

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
  /**
   * Ends (ms) of the worker's other parallel slots (dp_size > 1), whose
   * earliest free one is `busyUntilMs`: a request planned on the worker takes
   * that slot, and the worker is next free when its earliest slot is. Absent:
   * one slot. The whole-queue packing assumes one slot per worker and is not
   * used when any worker has more.
   */
  otherSlotsMs?: number[];
}

/** Plans a request finishing at `finishMs` on the worker's earliest free slot. */
export function occupy(s: PlanWorker, finishMs: number): void {
  const others = s.otherSlotsMs;
  if (others === undefined || others.length === 0) {
    s.busyUntilMs = finishMs;
    return;
  }
  let k = 0;
  for (let i = 1; i < others.length; i++) if (others[i]! < others[k]!) k = i;
  if (others[k]! >= finishMs) {
    s.busyUntilMs = finishMs;
    return;
  }
  s.busyUntilMs = others[k]!;
  others[k] = finishMs;
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
  let free = 0;
  for (const s of state.values()) free += s.freeSlots;
  if (free === 0) return [];
  const n = Math.min(items.length, maxItems);
  const table = wholeQueueTable(items, state, n, nowMs);
  const out = firstPass(items, state, n, nowMs, rotation, free, table);
  return table === null ? out : (packedPlan(table, n) ?? out);
}

/** The costs the packing works on, filled by the first pass; null when the whole queue is not packed. */
interface PackTable<W> {
  readonly workers: W[];
  readonly index: Map<W, number>;
  /** Predicted ms of item i on worker w at i × workers + w (Infinity: not a candidate). */
  readonly cost: Float64Array;
  /** Each worker's work before this round, from now. */
  readonly base: Float64Array;
  readonly slots: number[];
  /** The first pass's worker index per item (-1: none). */
  readonly first: Int32Array;
}

function wholeQueueTable<W>(items: readonly PlanItem<W>[], state: Map<W, PlanWorker>, n: number, nowMs: number): PackTable<W> | null {
  // Packing trusts learned estimates only, and models one slot per worker.
  let packable = true;
  for (const s of state.values()) if (s.learned === false || (s.otherSlotsMs?.length ?? 0) > 0) packable = false;
  // Packing can only move a request between workers: with one worker, or
  // with every request allowed on one worker only, there is nothing to move.
  let movable = false;
  for (let i = 0; i < n && !movable; i++) movable = items[i]!.candidates.length > 1;
  if (!(packable && movable && state.size > 1 && n > 1 && n <= FULL_PLAN_ITEMS)) return null;
  const workers = [...state.keys()];
  return {
    workers,
    index: new Map<W, number>(workers.map((w, i) => [w, i])),
    cost: new Float64Array(n * workers.length).fill(Infinity),
    base: Float64Array.from(workers, (w) => Math.max(state.get(w)!.busyUntilMs, nowMs) - nowMs),
    slots: workers.map((w) => state.get(w)!.freeSlots),
    first: new Int32Array(n).fill(-1),
  };
}

/**
 * Largest first, each item to the worker that finishes it earliest (a free
 * one within PREFER_FREE of the best, rotating); items whose worker has a
 * free slot are sent. Fills `table` when the whole queue is packed after.
 */
function firstPass<W>(items: readonly PlanItem<W>[], state: Map<W, PlanWorker>, n: number, nowMs: number, rotation: number, free: number, table: PackTable<W> | null): [number, W][] {
  const out: [number, W][] = [];
  const finishes: number[] = [];
  const times: number[] = [];
  for (let i = 0; i < n && (table !== null || free > 0); i++) {
    const cands = items[i]!.candidates;
    const best = earliestFinish(items[i]!, state, nowMs, finishes, times, table, i);
    if (best < 0) continue;
    const c = preferFree(cands, state, nowMs, finishes, times, best, (rotation + i) % cands.length);
    const w = cands[c]!;
    const s = state.get(w)!;
    occupy(s, Math.max(s.busyUntilMs, nowMs) + times[c]!);
    if (table !== null) table.first[i] = table.index.get(w)!;
    if (s.freeSlots > 0) {
      s.freeSlots--;
      free--;
      out.push([i, w]);
    }
  }
  return out;
}

/** The candidate (index) finishing `item` earliest, or -1; fills each candidate's finish and time (and the pack table's costs). */
function earliestFinish<W>(item: PlanItem<W>, state: Map<W, PlanWorker>, nowMs: number, finishes: number[], times: number[], table: PackTable<W> | null, i: number): number {
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
    if (table !== null) table.cost[i * table.workers.length + table.index.get(cands[c]!)!] = ms;
    finishes[c] = Math.max(s.busyUntilMs, nowMs) + ms;
    if (finishes[c]! < bestFinish) {
      best = c;
      bestFinish = finishes[c]!;
    }
  }
  return best;
}

/**
 * Among free workers within PREFER_FREE of the best finish, the first from a
 * rotating start: equal workers share an idle fleet's requests (and keep
 * their speed estimates fresh) instead of the first one taking them all.
 * "Within" counts the scatter of the two workers' times too (noise), for a
 * worker about as fast for the request as the best.
 */
function preferFree<W>(cands: readonly W[], state: Map<W, PlanWorker>, nowMs: number, finishes: number[], times: number[], best: number, start: number): number {
  const limit = nowMs + (finishes[best]! - nowMs) * (1 + PREFER_FREE) + TIE_MS;
  const bestNoise = state.get(cands[best]!)!.noise ?? 0;
  for (let k = 0; k < cands.length; k++) {
    const c = (start + k) % cands.length;
    const s = state.get(cands[c]!);
    if (s === undefined || s.freeSlots <= 0) continue;
    // The scatter makes a tie only of workers about as fast for this request (board-plan.ts).
    const noise = Math.max(bestNoise, s.noise ?? 0);
    if (finishes[c]! <= limit + (times[c]! <= times[best]! * (1 + noise) ? times[best]! * noise : 0)) return c;
  }
  return best;
}

/** The whole queue packed (pack.ts) when that ends sooner than the first pass: each worker with free slots gets its planned requests, highest priority first. */
function packedPlan<W>(table: PackTable<W>, n: number): [number, W][] | null {
  const problem = { base: table.base, cost: table.cost, n, w: table.workers.length };
  const order = Array.from({ length: n }, (_, i) => i);
  const startMs = maxOf(loadsOf(problem, table.first));
  const packed = bestPacking(problem, table.first, order, PACK_BUDGET, TIE_MS + MIN_PACK_GAIN * startMs);
  if (packed === table.first) return null;
  const slots = [...table.slots];
  const out: [number, W][] = [];
  for (let i = 0; i < n; i++) {
    const w = packed[i]!;
    if (w >= 0 && slots[w]! > 0) {
      slots[w]!--;
      out.push([i, table.workers[w]!]);
    }
  }
  return out;
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
