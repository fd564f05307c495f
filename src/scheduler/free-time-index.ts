/**
 * The workers of one pool by predicted free time, for a plan round
 * (board-plan.ts): which worker finishes a request earliest without
 * looking at every worker.
 *
 * A request's finish on worker w is max(busy_w, now) + cost_w. Workers
 * are grouped by the caller into workers of about equal costs (a GPU kind at
 * a speed); in each group no cost is below the request's floor for that
 * group, so searching a group from the worker free first (a binary min-heap
 * on max(busy, now), walked best-first) can stop as soon as a worker's free
 * time + floor passes the best finish found: no later worker of the group
 * can beat it. Groups are searched in order of the best finish they could
 * give, and those that cannot beat the best are skipped. On a fleet of a few
 * kinds that is a few workers per request instead of all of them. (One
 * group for a whole fleet of two speeds would walk every worker free before
 * the best finish on the slow ones: groups are what makes it small.) Among equal finishes found, the
 * worker first in the pool's order wins, as in a scan of the pool (an equal
 * finish not reached before the walk stops is not looked for). The heap follows the
 * plan's reservations ({@link raised}); free workers are kept apart, in pool
 * order, for the rotating pick among them.
 */
export class FreeTimeIndex {
  /** One min-heap of worker indices per group (workers of about equal costs). */
  readonly #heaps: Int32Array[];
  /** Worker index -> its slot in its group's heap (-1: not in the pool). */
  readonly #slot: Int32Array;
  /** Worker index -> group. */
  readonly #group: Int32Array | null;
  /** Position in the pool by worker index (ties; the rotating start). */
  readonly #pos: Int32Array;
  /** Best-first walk: heap slots to visit, a small heap on their keys. */
  readonly #walk: Int32Array;
  /**
   * Workers with a free slot, per group, by pool position (the plan removes
   * them as they fill). Per group so that a group none of whose workers may
   * take a request is skipped whole ({@link firstFree}).
   */
  readonly #free: number[][] = [];
  /** Per group: the largest service-time scatter of its workers (board-plan.ts's ties). */
  readonly #noise: Float64Array;
  readonly #poolLength: number;
  /** Per search: each group's earliest possible finish, and the best found so far. */
  readonly #bounds: Float64Array;
  #best = -1;
  #bestFinish = Infinity;

  constructor(
    pool: Int32Array,
    private readonly busy: Float64Array,
    freeSlots: Int32Array,
    private readonly nowMs: number,
    group?: Int32Array,
    noise?: Float64Array,
  ) {
    const size = busy.length;
    this.#group = group ?? null;
    this.#poolLength = pool.length;
    this.#slot = new Int32Array(size).fill(-1);
    this.#pos = new Int32Array(size).fill(-1);
    const members: number[][] = [];
    for (let p = 0; p < pool.length; p++) {
      const w = pool[p]!;
      this.#pos[w] = p;
      const g = group === undefined ? 0 : group[w]!;
      (members[g] ??= []).push(w);
      if (freeSlots[w]! > 0) (this.#free[g] ??= []).push(w);
    }
    this.#heaps = Array.from(members, (m) => Int32Array.from(m ?? []));
    this.#noise = new Float64Array(this.#heaps.length);
    if (noise !== undefined) for (const w of pool) this.#noise[this.#groupOf(w)] = Math.max(this.#noise[this.#groupOf(w)]!, noise[w]!);
    let largest = 0;
    this.#heaps.forEach((heap, g) => {
      largest = Math.max(largest, heap.length);
      for (let s = 0; s < heap.length; s++) this.#slot[heap[s]!] = s;
      for (let s = (heap.length >> 1) - 1; s >= 0; s--) this.#down(g, s);
    });
    this.#walk = new Int32Array(largest);
    this.#bounds = new Float64Array(this.#heaps.length);
  }

  #groupOf(w: number): number {
    return this.#group === null ? 0 : this.#group[w]!;
  }

  #key(w: number): number {
    const b = this.busy[w]!;
    return b > this.nowMs ? b : this.nowMs;
  }

  /**
   * The worker finishing earliest (first in pool order among equal
   * finishes found), given each worker's time (`time(w)`, never below
   * `floors[its group]`); -1 for an empty pool. `slack` (relative to a
   * group's floor): a group's search stops once no worker left in it can
   * finish more than that much sooner than the best found; 0 is exact.
   */
  earliest(time: (w: number) => number, floors: Float64Array, slack = 0): number {
    // Each group's earliest possible finish; the most promising group is searched first.
    const heaps = this.#heaps;
    const bounds = this.#bounds;
    let first = -1;
    for (let g = 0; g < heaps.length; g++) {
      bounds[g] = heaps[g]!.length === 0 ? Infinity : this.#key(heaps[g]![0]!) + (floors[g] ?? 0);
      if (bounds[g]! < Infinity && (first < 0 || bounds[g]! < bounds[first]!)) first = g;
    }
    this.#best = -1;
    this.#bestFinish = Infinity;
    if (first < 0) return -1;
    this.#walkGroup(first, time, floors[first] ?? 0, slack);
    for (let g = 0; g < heaps.length; g++) if (g !== first && bounds[g]! < this.#bestFinish) this.#walkGroup(g, time, floors[g] ?? 0, slack);
    return this.#best;
  }

  /** Best-first over one group's heap, stopping once free time + the group's floor passes the best finish (less the slack). */
  #walkGroup(g: number, time: (w: number) => number, floor: number, slack: number): void {
    const heap = this.#heaps[g]!;
    const walk = this.#walk;
    const slackMs = floor * slack;
    // The least time seen in this group so far. With a slack, the group's
    // workers are taken to be within the slack of each other (that is how
    // the caller groups them: plan-board.ts GROUP_STEP), so none left can
    // beat the best by more than the slack once free time + this least
    // time passes it, even when the floor is low: a floor only goes down
    // between full rounds (plan-board.ts), and a floor a few % low made
    // each search walk every free worker of the group (all keyed now): at
    // a 4,096-worker burst's end ~320 of them per queued request, a round
    // of 100-460 ms of CPU (docs/benchmarks.md Scale part 9).
    let seenMs = Infinity;
    let size = 1;
    walk[0] = 0;
    while (size > 0) {
      const s = walk[0]!;
      walk[0] = walk[--size]!;
      this.#walkDown(heap, size);
      const w = heap[s]!;
      const key = this.#key(w);
      // Nothing later in this group can finish sooner (by more than the
      // slack; ties with a worker later in the walk are not looked for:
      // among free workers of one speed that would visit them all, and the
      // rotating pick among free workers follows anyway).
      if (key + floor + slackMs >= this.#bestFinish || (slack > 0 && seenMs < Infinity && key + seenMs >= this.#bestFinish)) break;
      const t = time(w);
      if (t < seenMs) seenMs = t;
      const finish = key + t;
      if (finish < this.#bestFinish || (finish === this.#bestFinish && this.#pos[w]! < this.#pos[this.#best]!)) {
        this.#best = w;
        this.#bestFinish = finish;
      }
      const c = 2 * s + 1;
      if (c < heap.length) {
        walk[size++] = c;
        this.#walkUp(heap, size - 1);
      }
      if (c + 1 < heap.length) {
        walk[size++] = c + 1;
        this.#walkUp(heap, size - 1);
      }
    }
  }

  /** Free workers from pool position `start` on, cyclically (the order {@link firstFree} searches in). */
  *freeFrom(start: number): Generator<number> {
    const all = this.#free.flatMap((list) => list ?? []).sort((a, b) => this.#pos[a]! - this.#pos[b]!);
    const lo = this.#firstAt(all, start);
    for (let j = 0; j < all.length; j++) yield all[(lo + j) % all.length]!;
  }

  /**
   * The first free worker from pool position `start` on, cyclically, that
   * `accept`s (the rotating pick of board-plan.ts), searching only the groups
   * `open(group, its largest scatter)` allows; -1 if none. The same worker a
   * walk over {@link freeFrom} would find when `open` only closes groups
   * where `accept` holds for no worker. Why: at a burst's end a thousand
   * idle slow workers that no queued request should go to were walked once
   * per queued request (a round of ~460 ms of CPU at 4,096 workers with
   * ~1,600 queued); a closed group now costs one check.
   */
  firstFree(start: number, open: (g: number, noise: number) => boolean, accept: (w: number) => boolean): number {
    const len = this.#poolLength;
    let best = -1;
    let bestDist = Infinity;
    for (let g = 0; g < this.#free.length; g++) {
      const list = this.#free[g];
      if (list === undefined || list.length === 0 || !open(g, this.#noise[g] ?? 0)) continue;
      const lo = this.#firstAt(list, start);
      for (let j = 0; j < list.length; j++) {
        const w = list[(lo + j) % list.length]!;
        // Cyclic distance from `start` grows along this walk: nothing further can come first.
        const dist = (this.#pos[w]! - start + len) % len;
        if (dist >= bestDist) break;
        if (accept(w)) {
          best = w;
          bestDist = dist;
          break;
        }
      }
    }
    return best;
  }

  /** The first index in `list` (by pool position) at position `start` or later (list.length if none). */
  #firstAt(list: readonly number[], start: number): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#pos[list[mid]!]! < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Worker `w`'s free time moved later (a reservation) and, if `full`, its last free slot was taken. */
  raised(w: number, full: boolean): void {
    const s = this.#slot[w]!;
    if (s < 0) return;
    this.#down(this.#groupOf(w), s);
    if (full) {
      const list = this.#free[this.#groupOf(w)];
      const j = list === undefined ? -1 : list.indexOf(w);
      if (j >= 0) list!.splice(j, 1);
    }
  }

  #down(g: number, s: number): void {
    const heap = this.#heaps[g]!;
    for (;;) {
      const l = 2 * s + 1;
      if (l >= heap.length) return;
      const r = l + 1;
      const m = r < heap.length && this.#key(heap[r]!) < this.#key(heap[l]!) ? r : l;
      if (!(this.#key(heap[m]!) < this.#key(heap[s]!))) return;
      const t = heap[m]!;
      heap[m] = heap[s]!;
      heap[s] = t;
      this.#slot[heap[m]!] = m;
      this.#slot[heap[s]!] = s;
      s = m;
    }
  }

  /** Walk heap: ordered on the key of the heap slot each entry names. */
  #walkLess(heap: Int32Array, i: number, j: number): boolean {
    return this.#key(heap[this.#walk[i]!]!) < this.#key(heap[this.#walk[j]!]!);
  }

  #walkUp(heap: Int32Array, i: number): void {
    const walk = this.#walk;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#walkLess(heap, i, p)) return;
      const t = walk[p]!;
      walk[p] = walk[i]!;
      walk[i] = t;
      i = p;
    }
  }

  #walkDown(heap: Int32Array, size: number): void {
    const walk = this.#walk;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const m = r < size && this.#walkLess(heap, r, l) ? r : l;
      if (!this.#walkLess(heap, m, i)) return;
      const t = walk[m]!;
      walk[m] = walk[i]!;
      walk[i] = t;
      i = m;
    }
  }
}
