/**
 * The plan of a round in which a few workers came free while a long queue
 * waits (the common case on a large fleet: one completion, one free worker):
 * each free worker takes the largest request it finishes no later than the
 * other workers could, decided per demand class instead of walking the
 * queue request by request.
 *
 * Why: the request-by-request plan (board-plan.ts) reaches a slow free
 * worker's request only after reserving every larger request ahead of it on
 * the busy fast workers; on a thousand workers that is hundreds of requests
 * per completion, and a window cut short of them left the slow worker idle.
 * Requests of one class (same work on the same pool) are interchangeable,
 * so the requests ahead of a class are summarised by their work: the plan
 * reserves them as a fluid on the other workers (each group of equal costs
 * at its rate), up to the level where the other workers become free for the
 * class's first request. That request's best finish on the others is then
 * the level (or a group's first free time, if later) plus its cost there;
 * the free worker takes the first class, largest first, where its own
 * finish is within PREFER_FREE (+ TIE_MS, + its scatter) of that, the same
 * tolerance board-plan.ts gives a free worker.
 *
 * The fluid is an approximation: whole requests leave some workers below
 * the level and others above it, so with few requests ahead of a class the
 * others' best finish is at or below the fluid's, and a free worker may take
 * a class the request-by-request plan would have left to a busy faster
 * worker; with many (the case the plan is for) the two agree.
 * test/plan-differential.test.ts replays bursts against the reference
 * (makespan within 2%). Pure but for its buffers, reused across rounds: the
 * caller passes times in.
 */

import { PREFER_FREE, TIE_MS, type Board } from "./board-plan.js";

/** Interchangeable queued requests (same work on the same pool), in priority order. */
export interface DirectClass {
  /** Predicted ms by worker index (as BoardItem.cost). */
  readonly cost: Float64Array;
  /** By group: the least cost of the class in the group (as BoardItem.floors). */
  readonly floors: Float64Array;
  /** How many of its requests wait. */
  count: number;
}

/**
 * Reusable per-round buffers (one planner per dispatcher): a round
 * allocates nothing but its answer.
 */
export class DirectPlanner {
  /**
   * The busy workers' free times in increasing order, and the rate of each
   * (its group's): sorted lazily, as the levels reach them. The first
   * `#busy` are in `#times`; the rest wait in `#heap` (a binary min-heap of
   * sort keys, see {@link POSITIONS}). A round usually needs the first few
   * (a fast free worker takes the head class), so a full sort per round
   * (16.6% of the router's CPU at 4,096 workers) is replaced by a heapify,
   * O(workers), and a pop per time reached.
   */
  #times = new Float64Array(0);
  #rates = new Float64Array(0);
  #busy = 0;
  #heap = new Float64Array(0);
  #heapN = 0;
  /** The round's pool and board (to read a popped key's worker). */
  #pool: Int32Array = new Int32Array(0);
  #board: Board | null = null;
  #nowMs = 0;
  /** Per group: free workers of the pool, the earliest busy one's free time, the rate. */
  #freeIn = new Int32Array(0);
  #firstBusy = new Float64Array(0);
  #rate = new Float64Array(0);
  /** Groups seen by the last round (the per-group arrays are reset up to it). */
  #groups = 0;
  /** Free workers of the pool (pool order from a rotating start), as pool positions. */
  #free: number[] = [];
  /** Per group and class (group-major): the level the work ahead of the class fills the workers other than a free one of the group to; `#filled[g]` whether group g's walk is current. */
  #levels = new Float64Array(0);
  #filled = new Uint8Array(0);
  /** Per group, the walk that makes its levels, class by class as they are asked for (see #level). */
  #walk: GroupWalk[] = [];
  /** Groups whose free workers take nothing in this round (see plan). */
  #declined = new Uint8Array(0);

  /**
   * Gives each free worker of `pool` (all of whose workers have one slot)
   * the first class (largest first) it should run; returns [class index,
   * worker index] pairs and lowers the classes' counts and the board's free
   * slots, raising the worker's busy time. A free worker that no class
   * suits is left free.
   */
  plan(classes: readonly DirectClass[], board: Board, pool: Int32Array, nowMs: number, rotation = 0): [number, number][] {
    const out: [number, number][] = [];
    const groups = this.#index(board, pool, nowMs, rotation, classes);
    if (groups === 0) return out;
    if (this.#levels.length < classes.length * groups) this.#levels = new Float64Array(classes.length * groups);
    if (this.#filled.length < groups) {
      this.#filled = new Uint8Array(groups);
      this.#declined = new Uint8Array(groups);
    }
    while (this.#walk.length < groups) this.#walk.push({ level: 0, slope: 0, filled: 0, ahead: 0, i: 0, next: 0 });
    this.#filled.fill(0);
    this.#declined.fill(0);
    // With many free workers the levels are made again every few requests given, not after each: one request moves them little.
    const refillEvery = Math.max(1, this.#free.length >> 5);
    let given = 0;
    for (const p of this.#free) {
      const f = pool[p]!;
      const gf = groupOf(board, f);
      // A group's free workers cost within 2% of each other: once one declined every class, so do the rest (until a request is given).
      if (this.#declined[gf] === 1) continue;
      const c = this.#choose(classes, board, f, gf, groups, nowMs);
      if (c < 0) {
        this.#declined[gf] = 1;
        continue;
      }
      this.#declined.fill(0);
      classes[c]!.count--;
      const until = nowMs + timeOn(classes[c]!, board, f);
      board.busy[f] = until;
      board.free[f]!--;
      this.#freeIn[gf]!--;
      this.#insertBusy(p, gf);
      if (++given % refillEvery === 0) this.#filled.fill(0);
      out.push([c, f]);
    }
    this.#board = null;
    return out;
  }

  /** The busy workers' free times in a heap (with their groups' rates), the free workers, each group's rate. Returns the number of groups (0: nothing to plan). */
  #index(board: Board, pool: Int32Array, nowMs: number, rotation: number, classes: readonly DirectClass[]): number {
    const head = classes.find((c) => c.count > 0);
    if (head === undefined || pool.length === 0) return 0;
    if (this.#times.length < pool.length) {
      this.#times = new Float64Array(pool.length);
      this.#rates = new Float64Array(pool.length);
      this.#heap = new Float64Array(pool.length);
    }
    // Per-group arrays sized by the board (a group index is below its worker count and its classes' floors), reset over the groups the last round saw: no pass over the pool just to count its groups.
    const room = Math.max(board.busy.length, head.floors.length);
    if (this.#freeIn.length < room) {
      this.#freeIn = new Int32Array(room);
      this.#firstBusy = new Float64Array(room).fill(Infinity);
      this.#rate = new Float64Array(room);
    }
    this.#freeIn.fill(0, 0, this.#groups);
    this.#firstBusy.fill(Infinity, 0, this.#groups);
    this.#free.length = 0;
    this.#busy = 0;
    this.#heapN = 0;
    let groups = 0;
    // One pass from the rotating start: the groups, the free workers in that order, the busy ones' sort keys.
    const start = rotation % pool.length;
    for (let j = 0; j < pool.length; j++) {
      const p = j + start < pool.length ? j + start : j + start - pool.length;
      const w = pool[p]!;
      const g = groupOf(board, w);
      if (g >= groups) groups = g + 1;
      if (board.free[w]! > 0) {
        this.#freeIn[g]!++;
        this.#free.push(p);
        continue;
      }
      const t = Math.max(board.busy[w]!, nowMs);
      if (t < this.#firstBusy[g]!) this.#firstBusy[g] = t;
      this.#heap[this.#heapN++] = keyOf(t, nowMs, p);
    }
    this.#groups = groups;
    if (this.#free.length === 0) return 0;
    // A group's rate: how much of the fastest group's work it does per ms (from the head class's costs; a fleet's classes cost about proportionally).
    let fastest = Infinity;
    for (let g = 0; g < groups; g++) fastest = Math.min(fastest, head.floors[g] ?? Infinity);
    for (let g = 0; g < groups; g++) {
      const floor = head.floors[g] ?? Infinity;
      this.#rate[g] = Number.isFinite(floor) && floor > 0 ? fastest / floor : 0;
    }
    for (let s = (this.#heapN >> 1) - 1; s >= 0; s--) siftDown(this.#heap, this.#heapN, s);
    this.#pool = pool;
    this.#board = board;
    this.#nowMs = nowMs;
    return groups;
  }

  /** The i-th busy free time in increasing order (Infinity past the last), sorting from the heap as far as needed. */
  #timeAt(i: number): number {
    while (i >= this.#busy) {
      if (this.#heapN === 0) return Infinity;
      const key = this.#heap[0]!;
      this.#heap[0] = this.#heap[--this.#heapN]!;
      siftDown(this.#heap, this.#heapN, 0);
      const w = this.#pool[key % POSITIONS]!;
      this.#times[this.#busy] = Math.max(this.#board!.busy[w]!, this.#nowMs);
      this.#rates[this.#busy++] = this.#rate[groupOf(this.#board!, w)]!;
    }
    return this.#times[i]!;
  }

  /**
   * The worker at pool position `p` was given a request in this round and is
   * busy until board.busy: among the sorted times if it is before every one
   * still in the heap (a walk past its place counts it from its next
   * refill, as before), else into the heap; and its group's first busy time.
   */
  #insertBusy(p: number, g: number): void {
    const board = this.#board!;
    const until = Math.max(board.busy[this.#pool[p]!]!, this.#nowMs);
    if (until < this.#firstBusy[g]!) this.#firstBusy[g] = until;
    const key = keyOf(until, this.#nowMs, p);
    if (this.#heapN > 0 && key > this.#heap[0]!) {
      let s = this.#heapN++;
      this.#heap[s] = key;
      while (s > 0) {
        const up = (s - 1) >> 1;
        if (this.#heap[up]! <= key) break;
        this.#heap[s] = this.#heap[up]!;
        this.#heap[s = up] = key;
      }
      return;
    }
    if (this.#busy >= this.#times.length) return; // no room (cannot happen: each worker once): the level only comes out lower
    let i = this.#busy;
    while (i > 0 && this.#times[i - 1]! > until) {
      this.#times[i] = this.#times[i - 1]!;
      this.#rates[i] = this.#rates[i - 1]!;
      i--;
    }
    this.#times[i] = until;
    this.#rates[i] = this.#rate[g]!;
    this.#busy++;
    for (const walk of this.#walk) if (walk.i > i) walk.i++;
  }

  /**
   * The level to which the work ahead of class `c` fills the workers other
   * than a free one of group `gf`: the free workers from now, each busy one
   * from its free time, at its group's rate. Levels are made class by class
   * as they are asked for (a free worker usually settles on one of the first
   * classes), from a walk kept per group until the next refill.
   */
  #level(classes: readonly DirectClass[], gf: number, c: number, groups: number, nowMs: number): number {
    const walk = this.#walk[gf]!;
    if (this.#filled[gf] === 0) {
      let slope = 0;
      for (let g = 0; g < groups; g++) slope += this.#rate[g]! * (this.#freeIn[g]! - (g === gf ? 1 : 0));
      walk.level = nowMs;
      walk.slope = slope;
      walk.filled = 0;
      walk.ahead = 0;
      walk.i = 0;
      walk.next = 0;
      this.#filled[gf] = 1;
    }
    while (walk.next <= c) {
      const cls = classes[walk.next]!;
      for (;;) {
        const next = this.#timeAt(walk.i);
        if (walk.slope > 0 && walk.filled + walk.slope * (next - walk.level) >= walk.ahead) {
          walk.level += (walk.ahead - walk.filled) / walk.slope;
          walk.filled = walk.ahead;
          break;
        }
        if (next === Infinity) break; // nobody else
        walk.filled += walk.slope * (next - walk.level);
        walk.level = next;
        walk.slope += this.#rates[walk.i++]!;
      }
      this.#levels[gf * classes.length + walk.next] = walk.level;
      if (cls.count > 0) walk.ahead += cls.count * minOf(cls.floors, groups);
      walk.next++;
    }
    return this.#levels[gf * classes.length + c]!;
  }

  /** The first class (largest first) free worker `f` finishes within the tolerance of the others' best finish for it; -1 if none. */
  #choose(classes: readonly DirectClass[], board: Board, f: number, gf: number, groups: number, nowMs: number): number {
    for (let c = 0; c < classes.length; c++) {
      const cls = classes[c]!;
      if (cls.count <= 0) continue;
      const level = this.#level(classes, gf, c, groups, nowMs);
      // The others' best finish for the class's first request: each group from the level, or from its first free time if later.
      let best = Infinity;
      for (let g = 0; g < groups; g++) {
        const floor = cls.floors[g] ?? Infinity;
        const first = this.#freeIn[g]! - (g === gf ? 1 : 0) > 0 ? nowMs : this.#firstBusy[g]!;
        const finish = (first > level ? first : level) + floor;
        if (finish < best) best = finish;
      }
      const mine = timeOn(cls, board, f);
      if (!Number.isFinite(best) || mine <= (best - nowMs) * (1 + PREFER_FREE) + TIE_MS + mine * board.noise[f]!) return c;
    }
    return -1;
  }
}

/** A group's walk through the busy workers' free times (see DirectPlanner.#level). */
interface GroupWalk {
  level: number;
  slope: number;
  filled: number;
  ahead: number;
  /** Sorted busy times passed. */
  i: number;
  /** The first class whose level is not made yet. */
  next: number;
}

/** A busy worker's sort key: its free time from now (1/16 ms, capped) above, its pool position below. */
function keyOf(t: number, nowMs: number, p: number): number {
  return Math.min(Math.floor((t - nowMs) * 16), MAX_AHEAD) * POSITIONS + p;
}

/** Restores the min-heap property of `heap[0..n)` below slot `s`. */
function siftDown(heap: Float64Array, n: number, s: number): void {
  const key = heap[s]!;
  for (;;) {
    let c = 2 * s + 1;
    if (c >= n) break;
    if (c + 1 < n && heap[c + 1]! < heap[c]!) c++;
    if (heap[c]! >= key) break;
    heap[s] = heap[c]!;
    s = c;
  }
  heap[s] = key;
}

/** Sort keys: the position in the pool below this, the time from now (1/16 ms) above, capped (2^35 / 16 ms: about 25 days). */
const POSITIONS = 65536;
/** Pools up to this size only (the sort keys' room). */
export const MAX_POSITIONS = POSITIONS;
const MAX_AHEAD = 2 ** 35;

function groupOf(board: Board, w: number): number {
  return board.group === undefined ? 0 : board.group[w]!;
}

function timeOn(cls: DirectClass, board: Board, w: number): number {
  return board.slow === undefined ? cls.cost[w]! : cls.cost[w]! * board.slow[w]!;
}

function minOf(xs: Float64Array, n: number): number {
  let m = Infinity;
  for (let i = 0; i < n && i < xs.length; i++) if (xs[i]! < m) m = xs[i]!;
  return Number.isFinite(m) ? m : 0;
}
