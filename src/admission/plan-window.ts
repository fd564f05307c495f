import { PACK_CELLS, type Board } from "../scheduler/board-plan.js";
import type { Pool } from "./plan-board.js";

/**
 * Requests planned per eligible pool beyond its free slots. A request whose
 * best worker is busy reserves that worker and the plan moves on to the
 * next, so a round needs more requests than free slots; how many more
 * depends on how often the best worker is a busy one. 32 covers a fleet
 * whose slow free worker is passed over by the larger requests of a burst.
 */
export const LOOK_AHEAD_MARGIN = 32;

/** Which queued requests a round plans. */
export interface Window {
  /** Live indices, in queue order. */
  readonly at: number[];
  /** The whole queue (so the plan may pack it). */
  readonly whole: boolean;
  /** Live indices below this were looked at. */
  readonly scanned: number;
}

/**
 * The queued requests a round plans: the whole queue when it is short
 * (requests × workers within the packing's limit, or within the margin),
 * else, per eligible pool, as many requests as the pool has free slots plus
 * LOOK_AHEAD_MARGIN, in queue order. The scan stops once every worker with a
 * free slot belongs to a pool that got its share, so a round reads as many
 * requests as can matter to the free workers, not the whole queue; a pool
 * whose requests sit deep in the queue (another model's) is still reached.
 * `always`: requests planned wherever they wait (held video creates, which
 * take a worker with no free slot); when given, the whole queue is scanned
 * for them (the other requests still by the rule above).
 */
export function chooseWindow<T extends { readonly settled: boolean }>(live: readonly T[], queued: number, board: Board, poolOf: (w: T) => Pool, always: ((w: T) => boolean) | null = null): Window {
  const size = board.free.length;
  const at: number[] = [];
  if (queued * size <= PACK_CELLS || queued <= LOOK_AHEAD_MARGIN) {
    for (let i = 0; i < live.length; i++) if (!live[i]!.settled) at.push(i);
    return { at, whole: true, scanned: live.length };
  }
  let freeLeft = 0;
  for (let k = 0; k < size; k++) freeLeft += board.free[k]!;
  const budget = new Map<Pool, number>();
  const covered = new Uint8Array(size);
  let i = 0;
  for (; i < live.length && (freeLeft > 0 || always !== null); i++) {
    const waiter = live[i]!;
    if (waiter.settled) continue;
    if (always?.(waiter) === true) {
      at.push(i);
      continue;
    }
    if (freeLeft <= 0) continue;
    const pool = poolOf(waiter);
    let b = budget.get(pool);
    if (b === undefined) {
      b = LOOK_AHEAD_MARGIN;
      for (const k of pool.idx) b += board.free[k]!;
    }
    if (b <= 0) continue;
    at.push(i);
    budget.set(pool, --b);
    if (b > 0) continue;
    // This pool had its share: its free workers need no further requests.
    for (const k of pool.idx) {
      if (covered[k] === 1) continue;
      covered[k] = 1;
      freeLeft -= board.free[k]!;
    }
  }
  return { at, whole: false, scanned: i };
}
