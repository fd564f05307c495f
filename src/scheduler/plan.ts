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

import { planBoard, type Board, type BoardItem } from "./board-plan.js";

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
 * Returns [item index, worker] pairs to dispatch now, in plan order.
 * `items` must be in priority order; at most `maxItems` are looked at (the
 * rest wait for a later round), which bounds the work per round.
 *
 * First pass: largest first, each to the worker that finishes it earliest
 * (a free one within PREFER_FREE of the best, rotating). When the queue is
 * short enough to plan whole (the end of a burst, where the makespan is
 * decided), the whole queue is then packed (pack.ts) and, if that ends
 * sooner, each worker with free slots gets its planned requests instead.
 *
 * This is board-plan.ts behind maps and closures (workers indexed in the
 * state's order, one cost array per item): the router's driver
 * (admission/plan-board.ts) calls board-plan.ts directly with costs shared
 * per demand class; tests and callers with few workers use this form. Like
 * before, it changes `state` (busy times, free slots) as it plans.
 */
export function planDispatch<W>(items: readonly PlanItem<W>[], state: Map<W, PlanWorker>, nowMs: number, maxItems = 2048, rotation = 0): [number, W][] {
  const workers = [...state.keys()];
  const index = new Map<W, number>(workers.map((w, i) => [w, i]));
  const states = workers.map((w) => state.get(w)!);
  const board: Board = {
    busy: Float64Array.from(states, (s) => s.busyUntilMs),
    free: Int32Array.from(states, (s) => s.freeSlots),
    noise: Float64Array.from(states, (s) => s.noise ?? 0),
    learned: Uint8Array.from(states, (s) => (s.learned === false ? 0 : 1)),
    other: states.map((s) => s.otherSlotsMs ?? null),
  };
  const n = Math.min(items.length, maxItems);
  const boardItems: BoardItem[] = [];
  for (let i = 0; i < n; i++) {
    const item = items[i]!;
    const cost = new Float64Array(workers.length);
    const pool: number[] = [];
    for (const w of item.candidates) {
      const k = index.get(w);
      if (k === undefined) continue;
      pool.push(k);
      cost[k] = item.predictMs(w);
    }
    boardItems.push({ pool: Int32Array.from(pool), cost });
  }
  const plan = planBoard(boardItems, board, nowMs, rotation, true);
  states.forEach((s, k) => {
    s.busyUntilMs = board.busy[k]!;
    s.freeSlots = board.free[k]!;
  });
  return plan.map(([i, k]) => [i, workers[k]!]);
}

/**
 * The queue order: largest predicted work first, with ageing so nothing
 * starves. A request that has waited `w` ms gains `w × ageing` ms of
 * priority; since every queued request ages at the same rate, the order
 * between two requests never changes while they wait, so the key is fixed at
 * arrival and the queue stays sorted without re-sorting: key = work − ageing ×
 * arrival time. With ageing 1, a request that arrived 10 s earlier goes before
 * one that is up to 10 s of GPU time larger. `work` is the fleet's prediction,
 * which a learning fleet revises: when its shape is replaced the keys move by
 * the change of their prediction and the queue is re-sorted once
 * (admission/queue-keys.ts); the arrival part stays.
 */
export function priorityKey(referenceMs: number, arrivedMs: number, ageing: number): number {
  return referenceMs - ageing * arrivedMs;
}
