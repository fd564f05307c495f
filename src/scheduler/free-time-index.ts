/**
 * The workers of one pool by predicted free time, for a plan round
 * (board-plan.ts): which worker finishes a request earliest without
 * looking at every worker.
 *
 * A request's finish on worker w is max(busy_w, now) + cost_w, and no
 * cost is below the request's `floor`, so searching workers from the one
 * free first (a binary min-heap on max(busy, now), walked best-first) can
 * stop as soon as a worker's free time + floor passes the best finish found:
 * no later worker can beat it. On a fleet of a few speeds that is a few
 * workers per request instead of all of them. Among equal finishes found, the
 * worker first in the pool's order wins, as in a scan of the pool (an equal
 * finish not reached before the walk stops is not looked for). The heap follows the
 * plan's reservations ({@link raised}); free workers are kept apart, in pool
 * order, for the rotating pick among them.
 */
export class FreeTimeIndex {
  readonly #heap: Int32Array;
  /** Heap slot by worker index (-1: not in the pool). */
  readonly #slot: Int32Array;
  /** Position in the pool by worker index (ties; the rotating start). */
  readonly #pos: Int32Array;
  readonly #n: number;
  /** Best-first walk: heap slots to visit, a small heap on their keys. */
  readonly #walk: Int32Array;
  /** Workers with a free slot, by pool position (the plan removes them as they fill). */
  readonly #free: number[] = [];

  constructor(
    pool: Int32Array,
    private readonly busy: Float64Array,
    freeSlots: Int32Array,
    private readonly nowMs: number,
  ) {
    const size = busy.length;
    this.#n = pool.length;
    this.#heap = Int32Array.from(pool);
    this.#slot = new Int32Array(size).fill(-1);
    this.#pos = new Int32Array(size).fill(-1);
    this.#walk = new Int32Array(this.#n);
    for (let p = 0; p < pool.length; p++) {
      this.#pos[pool[p]!] = p;
      if (freeSlots[pool[p]!]! > 0) this.#free.push(pool[p]!);
    }
    for (let s = 0; s < this.#n; s++) this.#slot[this.#heap[s]!] = s;
    for (let s = (this.#n >> 1) - 1; s >= 0; s--) this.#down(s);
  }

  #key(w: number): number {
    const b = this.busy[w]!;
    return b > this.nowMs ? b : this.nowMs;
  }

  /**
   * The worker finishing earliest (first in pool order among equal
   * finishes), given each worker's time (`time(w)`, never below `floor`);
   * -1 for an empty pool.
   */
  earliest(time: (w: number) => number, floor: number): number {
    if (this.#n === 0) return -1;
    const walk = this.#walk;
    let size = 1;
    walk[0] = 0;
    let best = -1;
    let bestFinish = Infinity;
    while (size > 0) {
      const s = walk[0]!;
      walk[0] = walk[--size]!;
      this.#walkDown(size);
      const w = this.#heap[s]!;
      const key = this.#key(w);
      // Nothing later can finish sooner (ties with a worker later in the
      // walk are not looked for: among free workers of one speed that would
      // visit them all; the rotating pick among free ones follows anyway).
      if (key + floor >= bestFinish) break;
      const finish = key + time(w);
      if (finish < bestFinish || (finish === bestFinish && this.#pos[w]! < this.#pos[best]!)) {
        best = w;
        bestFinish = finish;
      }
      const c = 2 * s + 1;
      if (c < this.#n) {
        walk[size++] = c;
        this.#walkUp(size - 1);
      }
      if (c + 1 < this.#n) {
        walk[size++] = c + 1;
        this.#walkUp(size - 1);
      }
    }
    return best;
  }

  /** Free workers from pool position `start` on, cyclically (the rotating pick of board-plan.ts). */
  *freeFrom(start: number): Generator<number> {
    const free = this.#free;
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#pos[free[mid]!]! < start) lo = mid + 1;
      else hi = mid;
    }
    for (let j = 0; j < free.length; j++) yield free[(lo + j) % free.length]!;
  }

  /** Worker `w`'s free time moved (a reservation) and, if `full`, its last free slot was taken. */
  raised(w: number, full: boolean): void {
    const s = this.#slot[w]!;
    if (s < 0) return;
    this.#down(s);
    if (full) {
      const j = this.#free.indexOf(w);
      if (j >= 0) this.#free.splice(j, 1);
    }
  }

  #down(s: number): void {
    const heap = this.#heap;
    for (;;) {
      const l = 2 * s + 1;
      if (l >= this.#n) return;
      const r = l + 1;
      const m = r < this.#n && this.#less(heap[r]!, heap[l]!) ? r : l;
      if (!this.#less(heap[m]!, heap[s]!)) return;
      const t = heap[m]!;
      heap[m] = heap[s]!;
      heap[s] = t;
      this.#slot[heap[m]!] = m;
      this.#slot[heap[s]!] = s;
      s = m;
    }
  }

  #less(a: number, b: number): boolean {
    return this.#key(a) < this.#key(b);
  }

  /** Walk heap: ordered on the key of the heap slot each entry names. */
  #walkLess(i: number, j: number): boolean {
    return this.#key(this.#heap[this.#walk[i]!]!) < this.#key(this.#heap[this.#walk[j]!]!);
  }

  #walkUp(i: number): void {
    const walk = this.#walk;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#walkLess(i, p)) return;
      const t = walk[p]!;
      walk[p] = walk[i]!;
      walk[i] = t;
      i = p;
    }
  }

  #walkDown(size: number): void {
    const walk = this.#walk;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const m = r < size && this.#walkLess(r, l) ? r : l;
      if (!this.#walkLess(m, i)) return;
      const t = walk[m]!;
      walk[m] = walk[i]!;
      walk[i] = t;
      i = m;
    }
  }
}
