/**
 * The earliest-finish plan over dense arrays: the same rule as plan.ts
 * describes (largest first, each request to the worker that finishes it
 * earliest, a free one within PREFER_FREE of the best, rotating; the whole
 * queue packed when it is short), on worker indices and flat cost arrays
 * instead of maps and closures.
 *
 * Why a second form: at a thousand workers the map-and-closure plan spent
 * the router's CPU on lookups, allocations and one cost-model prediction per
 * (request, worker) pair. Here requests of one demand class (same work on
 * the same pool) share one cost array, computed once and kept across rounds
 * by the caller (admission/plan-board.ts), so a plan only adds and compares
 * numbers. plan.ts's `planDispatch` is this function behind the old
 * interface. Pure: the caller passes times in.
 */

import { FreeTimeIndex } from "./free-time-index.js";
import { bestPacking, loadsOf, maxOf } from "./pack.js";

/** The workers as the plan sees them, by index. The plan changes `busy`, `free` and `other` (it reserves places): pass a copy. */
export interface Board {
  /** When each worker is predicted free (ms; earliest of its slots). */
  readonly busy: Float64Array;
  /** Requests it can take now. */
  readonly free: Int32Array;
  /** Relative scatter of its service times (see PlanWorker.noise). */
  readonly noise: Float64Array;
  /** Factor on every predicted time (its current slowdown, never below 1); 1 when absent. */
  readonly slow?: Float64Array;
  /** Group of each worker (workers of about equal costs, see free-time-index.ts); all in group 0 when absent. */
  readonly group?: Int32Array;
  /** Whether its costs are learned (1) well enough to pack on. */
  readonly learned: Uint8Array;
  /** Ends of its other parallel slots, or null (one slot). */
  readonly other: (number[] | null)[];
}

/** One queued request (or an unplaced prompt group): the workers it may go to and its time on each. */
export interface BoardItem {
  /** Worker indices (empty: not planned now). */
  readonly pool: Int32Array;
  /** Predicted ms by worker index (read at pool indices only); shared by the items of a class. */
  readonly cost: Float64Array;
  /**
   * By group (Board.group): at most the item's time on any worker of the
   * group in its pool (the least cost; the slowdown is never below 1). Given,
   * a large pool is searched by free time (free-time-index.ts) instead of
   * worker by worker.
   */
  readonly floors?: Float64Array;
}

/** Pools at least this large are searched by free time (smaller ones are scanned: as cheap, and exact on ties). */
const INDEXED_POOL = 64;
/**
 * How far (relative to its cost) a request planned on a large pool may
 * finish after the earliest finish: the free-time search stops once no
 * worker left can beat the best found by more. Workers of a group differ by
 * up to ~2% in cost (their learned fits), and looking for the last 2% would
 * walk most of a group; finishes closer than 3% are already treated as
 * equal when a free worker is among them (PREFER_FREE).
 */
const INDEX_SLACK = 0.02;

/** A free worker is preferred over a busy one whose finish is at most this much earlier (relative): starting now is certain, a predicted finish is not. */
export const PREFER_FREE = 0.03;
/** Finishes this close count as equal too: measured service times carry a few ms of noise (network, the worker's event loop). */
export const TIE_MS = 10;
/** Up to this many queued requests the whole queue is packed (see pack.ts); beyond, the first pass alone decides. */
export const FULL_PLAN_ITEMS = 512;
/**
 * ...and only while requests × workers stays under this: the packing's
 * table and its search grow with both, and with hundreds of workers a
 * short queue has about one request per worker, where there is little to
 * pack. 512 × 16: every fleet of the benches (8-10 workers) packs as before.
 */
export const PACK_CELLS = 8192;
/** Candidate checks the packing may spend per round: about 10 ms at the limit above. */
export const PACK_BUDGET = 400_000;
/** A packing replaces the first pass only if it ends this much sooner (relative; plus TIE_MS): estimates carry error. */
export const MIN_PACK_GAIN = 0.002;

/**
 * Returns [item index, worker index] pairs to dispatch now, in plan order.
 * `items` are in priority order. `whole`: the items are the whole queue (so
 * packing them is meaningful); otherwise only the first pass runs.
 */
export function planBoard(items: readonly BoardItem[], board: Board, nowMs: number, rotation = 0, whole = true): [number, number][] {
  const union = unionOf(items, board.busy.length);
  let free = 0;
  for (const w of union) free += board.free[w]!;
  if (free === 0) return [];
  const table = whole ? packTable(items, board, union, nowMs) : null;
  const out = firstPass(items, board, nowMs, rotation, free, table);
  return table === null ? out : (packedPlan(table, items.length) ?? out);
}

/** The workers any item may go to, in index order (the packing's worker order). */
function unionOf(items: readonly BoardItem[], size: number): number[] {
  const seen = new Uint8Array(size);
  let last: Int32Array | null = null;
  for (const { pool } of items) {
    if (pool === last) continue; // a class's items share their pool
    last = pool;
    for (let k = 0; k < pool.length; k++) seen[pool[k]!] = 1;
  }
  const out: number[] = [];
  for (let w = 0; w < size; w++) if (seen[w] === 1) out.push(w);
  return out;
}

/** The costs the packing works on (dense over the union of pools), filled by the first pass. */
interface PackTable {
  readonly workers: number[];
  /** Column of a worker index in the table (-1: not in it). */
  readonly column: Int32Array;
  readonly cost: Float64Array;
  readonly base: Float64Array;
  readonly slots: number[];
  readonly first: Int32Array;
}

function packTable(items: readonly BoardItem[], board: Board, union: number[], nowMs: number): PackTable | null {
  const n = items.length;
  // Packing trusts learned estimates only, and models one slot per worker.
  for (const w of union) if (board.learned[w] === 0 || (board.other[w]?.length ?? 0) > 0) return null;
  // Packing can only move a request between workers.
  let movable = false;
  for (let i = 0; i < n && !movable; i++) movable = items[i]!.pool.length > 1;
  if (!(movable && union.length > 1 && n > 1 && n <= FULL_PLAN_ITEMS && n * union.length <= PACK_CELLS)) return null;
  const column = new Int32Array(board.busy.length).fill(-1);
  union.forEach((w, c) => (column[w] = c));
  return {
    workers: union,
    column,
    cost: new Float64Array(n * union.length).fill(Infinity),
    base: Float64Array.from(union, (w) => Math.max(board.busy[w]!, nowMs) - nowMs),
    slots: union.map((w) => board.free[w]!),
    first: new Int32Array(n).fill(-1),
  };
}

/**
 * Largest first, each item to the worker that finishes it earliest (a free
 * one within PREFER_FREE of the best, rotating); items whose worker has a
 * free slot are sent. Fills `table` when the whole queue is packed after.
 */
function firstPass(items: readonly BoardItem[], board: Board, nowMs: number, rotation: number, free: number, table: PackTable | null): [number, number][] {
  const out: [number, number][] = [];
  const n = items.length;
  // One index per large pool, made when first needed (the whole queue, packed, needs every cost: scanned).
  const indexes = new Map<Int32Array, FreeTimeIndex>();
  for (let i = 0; i < n && (table !== null || free > 0); i++) {
    const item = items[i]!;
    const start = item.pool.length === 0 ? 0 : (rotation + i) % item.pool.length;
    let w: number;
    if (table === null && item.floors !== undefined && item.pool.length >= INDEXED_POOL) {
      let index = indexes.get(item.pool);
      if (index === undefined) {
        index = new FreeTimeIndex(item.pool, board.busy, board.free, nowMs, board.group, board.noise);
        indexes.set(item.pool, index);
      }
      const best = index.earliest((k) => timeOn(item, board, k), item.floors, INDEX_SLACK);
      if (best < 0) continue;
      w = preferFreeIndexed(item, board, nowMs, best, index, start);
    } else {
      const best = earliestFinish(item, board, nowMs, table, i);
      if (best < 0) continue;
      w = preferFree(item, board, nowMs, best, cyclic(item.pool, start));
    }
    occupy(board, w, Math.max(board.busy[w]!, nowMs) + timeOn(item, board, w));
    if (table !== null) table.first[i] = table.column[w]!;
    if (board.free[w]! > 0) {
      board.free[w]!--;
      free--;
      out.push([i, w]);
    }
    for (const index of indexes.values()) index.raised(w, board.free[w]! <= 0);
  }
  return out;
}

/** The pool's workers from position `start` on, cyclically. */
function* cyclic(pool: Int32Array, start: number): Generator<number> {
  for (let k = 0; k < pool.length; k++) yield pool[(start + k) % pool.length]!;
}

function timeOn(item: BoardItem, board: Board, w: number): number {
  return board.slow === undefined ? item.cost[w]! : item.cost[w]! * board.slow[w]!;
}

/** The worker (index) finishing `item` earliest, or -1; fills the pack table's costs. */
function earliestFinish(item: BoardItem, board: Board, nowMs: number, table: PackTable | null, i: number): number {
  const { pool } = item;
  let best = -1;
  let bestFinish = Infinity;
  for (let k = 0; k < pool.length; k++) {
    const w = pool[k]!;
    const ms = timeOn(item, board, w);
    if (table !== null) table.cost[i * table.workers.length + table.column[w]!] = ms;
    const finish = Math.max(board.busy[w]!, nowMs) + ms;
    if (finish < bestFinish) {
      best = w;
      bestFinish = finish;
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
function preferFree(item: BoardItem, board: Board, nowMs: number, best: number, order: Iterable<number>): number {
  const bestTime = timeOn(item, board, best);
  const limit = freeLimit(board, nowMs, best, bestTime);
  for (const w of order) if (board.free[w]! > 0 && closeEnough(item, board, nowMs, w, best, bestTime, limit)) return w;
  return best;
}

/**
 * preferFree on a large pool: the same pick (the first acceptable free
 * worker from the rotating start), but a group of workers is skipped whole
 * when even its least time for the item (its floor) with the largest tie
 * its scatter allows is past the limit: the idle half-speed quarter of a
 * fleet is one check per request instead of a walk over each of its idle
 * workers (free-time-index.ts firstFree).
 */
function preferFreeIndexed(item: BoardItem, board: Board, nowMs: number, best: number, index: FreeTimeIndex, start: number): number {
  const bestTime = timeOn(item, board, best);
  const limit = freeLimit(board, nowMs, best, bestTime);
  const bestNoise = board.noise[best]!;
  const floors = item.floors!;
  const w = index.firstFree(
    start,
    (g, noise) => nowMs + (floors[g] ?? 0) <= limit + bestTime * Math.max(bestNoise, noise),
    (k) => board.free[k]! > 0 && closeEnough(item, board, nowMs, k, best, bestTime, limit),
  );
  return w < 0 ? best : w;
}

/** The latest finish a free worker may have to be preferred over `best` (before ties). */
function freeLimit(board: Board, nowMs: number, best: number, bestTime: number): number {
  return nowMs + (Math.max(board.busy[best]!, nowMs) + bestTime - nowMs) * (1 + PREFER_FREE) + TIE_MS;
}

/** Whether worker `w` finishes the item close enough to the best finish to be preferred (when free). */
function closeEnough(item: BoardItem, board: Board, nowMs: number, w: number, best: number, bestTime: number, limit: number): boolean {
  const time = timeOn(item, board, w);
  const noise = Math.max(board.noise[best]!, board.noise[w]!);
  // The scatter makes a tie only of workers about as fast for this request: a free worker that
  // takes it markedly longer (a half-speed GPU) is chosen on PREFER_FREE alone. With a young
  // worker's 10% noise a 1536² request went to a half-speed worker finishing 7% after the fast
  // one that was busy (bench steep: 1.146x offline LPT; docs/decisions.md).
  const tie = time <= bestTime * (1 + noise) ? bestTime * noise : 0;
  return Math.max(board.busy[w]!, nowMs) + time <= limit + tie;
}

/** Plans a request finishing at `finishMs` on worker `w`'s earliest free slot (see plan.ts `occupy`). */
export function occupy(board: Board, w: number, finishMs: number): void {
  const others = board.other[w];
  if (others === null || others === undefined || others.length === 0) {
    board.busy[w] = finishMs;
    return;
  }
  let k = 0;
  for (let i = 1; i < others.length; i++) if (others[i]! < others[k]!) k = i;
  if (others[k]! >= finishMs) {
    board.busy[w] = finishMs;
    return;
  }
  board.busy[w] = others[k]!;
  others[k] = finishMs;
}

/** The whole queue packed (pack.ts) when that ends sooner than the first pass: each worker with free slots gets its planned requests, highest priority first. */
function packedPlan(table: PackTable, n: number): [number, number][] | null {
  const problem = { base: table.base, cost: table.cost, n, w: table.workers.length };
  const order = Array.from({ length: n }, (_, i) => i);
  const startMs = maxOf(loadsOf(problem, table.first));
  const packed = bestPacking(problem, table.first, order, PACK_BUDGET, TIE_MS + MIN_PACK_GAIN * startMs);
  if (packed === table.first) return null;
  const slots = [...table.slots];
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const c = packed[i]!;
    if (c >= 0 && slots[c]! > 0) {
      slots[c]!--;
      out.push([i, table.workers[c]!]);
    }
  }
  return out;
}
