import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { Board } from "../scheduler/board-plan.js";
import type { WorkFeatures } from "../scheduler/request-facts.js";
import type { LoadBook } from "./loads.js";

/** Observations of a worker (per model) before the planner packs whole queues on its estimates (see plan.ts). */
const LEARNED_OBSERVATIONS = 3;
/**
 * Every cached cost is read again from the cost model within this many ms
 * (of the admission clock), even of workers that answered nothing: a
 * worker's prediction changes when it answers (re-read at once), but the
 * cost model may also move predictions on its own (a shared prior, the
 * fleet's typical cost), and this bounds how long a stale one can last.
 * The workers are re-read in turn, a few per round, not all in one round:
 * at a thousand workers all at once was 16,000 predictions, the p99 of a
 * completion's CPU.
 */
const FULL_REFRESH_MS = 100;
/**
 * ...or this many ms per worker on a large fleet (1,024 workers: 0.5 s):
 * there every worker answers every few seconds (re-read then), and the
 * re-reads of the others would cost more per completion than the plan.
 */
const REFRESH_MS_PER_WORKER = 0.5;
/** Demand classes kept (their work comes from clients: bounded). */
const MAX_CLASSES = 4096;
/**
 * Workers whose predicted times for a small and a large request are equal
 * to 2% (and that serve the same model) share a group of the free-time
 * index (scheduler/free-time-index.ts): within a group a request's costs
 * differ by at most that, so its search stops after a few workers.
 */
const GROUP_STEP = Math.log(1.02);
const SMALL_WORK: WorkFeatures = { megapixels: 0.25, steps: 20, latentFrames: 1, outputs: 1, inputImages: 0 };
const LARGE_WORK: WorkFeatures = { megapixels: 2, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 };
/**
 * A worker running past its prediction has a slowdown that grows with time
 * (LoadBook.slowdown); its state is read again at most this often (ms), not
 * at every round: on a large fleet many workers are a little late at any
 * moment, and a few ms of staleness in a slowdown changes no plan.
 */
const OVERDUE_REREAD_MS = 20;
/** Group keys kept before they are all made again (speeds drift as they are learned). */
const MAX_GROUPS = 4096;

/** A candidate list as worker indices, with a membership map (null for a short list: look in `idx`). */
export interface Pool {
  readonly idx: Int32Array;
  readonly member: Uint8Array | null;
}

/** Whether worker index `k` is in the pool. */
export function inPool(pool: Pool, k: number): boolean {
  return pool.member === null ? pool.idx.includes(k) : pool.member[k] === 1;
}

/** Lists up to this long get no membership map (a group's or a routing key's one worker: made anew per request). */
const SHORT_POOL = 8;

/** One demand class (same work features): its predicted ms per worker index, and the worker stamp each was read at. */
interface ClassCost {
  readonly cost: Float64Array;
  readonly stamp: Uint32Array;
  checkedRound: number;
  checkedPool: Pool | null;
  /** The least cost per group on the checked pool (see BoardItem.floors). */
  floors: Float64Array;
}

/** A request's (or a class's) predicted ms per worker index, and the least of them per group on its pool. */
export interface Costs {
  readonly cost: Float64Array;
  readonly floors: Float64Array;
}

/**
 * The planner's view of the workers, kept between rounds: each worker's
 * predicted free time, free slots, slowdown and scatter, by index, and the
 * predicted cost of each demand class (same work features) on each worker.
 *
 * A round re-reads only what changed: workers whose runs or learned costs
 * changed (LoadBook.takeChanged: a dispatch, an answer, a video job), and
 * workers whose slowdown moves with time (a run past its prediction). The
 * class costs of a worker are re-read when its stamp moves. So a completion
 * costs a few cost-model predictions, not one per queued request and
 * worker; what is left per round is arithmetic over flat arrays.
 */
export class PlanBoard {
  #workers: Worker[] = [];
  #index = new Map<Worker, number>();
  #stale = true;
  #busy = new Float64Array(0);
  #free = new Int32Array(0);
  #noise = new Float64Array(0);
  #slow = new Float64Array(0);
  #learned = new Uint8Array(0);
  #observed = new Int32Array(0);
  #runs = new Int32Array(0);
  /** When each worker's state must be read again though nothing changed (its slowdown may grow). */
  #due = new Float64Array(0);
  #other: (number[] | null)[] = [];
  /** Moves when a worker's predictions may have changed: its class costs are read again. */
  #stamp = new Uint32Array(0);
  /** Each worker's group (see GROUP_STEP), and the groups by key. */
  #group = new Int32Array(0);
  #groupKeys = new Map<string, number>();
  #pools = new WeakMap<readonly Worker[], Pool>();
  #singles = new Map<number, Pool>();
  readonly #empty: Pool = { idx: new Int32Array(0), member: null };
  #classes = new Map<string, ClassCost>();
  readonly #classKeys = new WeakMap<WorkFeatures, string>();
  #lastRollMs = -Infinity;
  /** The rolling re-read: the next worker, and the fraction of one owed. */
  #rollAt = 0;
  #rollOwed = 0;
  /** This round's workers whose costs were read again: a class checked in the last round re-reads only these (all, in a full round: when the rolling re-read wrapped). */
  #changedKs: number[] = [];
  #fullRound = true;
  #round = 0;
  /** Workers with no observation yet (probed first by plan-dispatch.ts). */
  unobserved = 0;
  /** The round's copies the plan may change. */
  #roundBusy = new Float64Array(0);
  #roundFree = new Int32Array(0);
  #roundOther: (number[] | null)[] = [];
  /** The board a round returns (made once per rebuild: its arrays are refilled in place). */
  #roundBoard!: Board;

  constructor(
    private readonly registry: Registry,
    private readonly loads: LoadBook,
    private readonly freeSlots: (w: Worker) => number,
  ) {
    // A worker added or removed renumbers the workers; any other change of
    // one (health, capabilities) re-reads only that worker (LoadBook marks it
    // changed), as probes change some worker every few ms on a large fleet.
    registry.on("change", (e) => {
      if (e.type !== "updated") this.#stale = true;
    });
  }

  get size(): number {
    return this.#workers.length;
  }

  worker(k: number): Worker {
    return this.#workers[k]!;
  }

  /** A worker's index on the board (-1: not on it). */
  indexOf(w: Worker): number {
    return this.#index.get(w) ?? -1;
  }

  runsOn(k: number): number {
    return this.#runs[k]!;
  }

  observed(k: number): number {
    return this.#observed[k]!;
  }

  /** Brings every worker's state up to `nowMs` and returns a copy the plan may change. */
  round(nowMs: number): Board {
    if (this.#groupKeys.size > MAX_GROUPS) this.#stale = true;
    if (this.#stale) this.#rebuild();
    const changed = this.loads.takeChanged();
    this.#changedKs.length = 0;
    this.#fullRound = this.#roll(nowMs);
    for (const w of changed) {
      const k = this.#index.get(w);
      if (k === undefined) continue;
      this.#stamp[k]!++;
      this.#changedKs.push(k);
      this.#read(k, w, nowMs, true);
    }
    let unobserved = 0;
    for (let k = 0; k < this.#workers.length; k++) {
      if (this.#due[k]! <= nowMs) this.#read(k, this.#workers[k]!, nowMs, false);
      if (this.#observed[k] === 0) unobserved++;
    }
    this.unobserved = unobserved;
    this.#round++;
    this.#roundBusy.set(this.#busy);
    this.#roundFree.set(this.#free);
    // The plan changes the other slots' ends: copies, made only for workers with several slots.
    const other = this.#roundOther;
    for (let k = 0; k < other.length; k++) {
      const o = this.#other[k]!;
      other[k] = o === null ? null : [...o];
    }
    return this.#roundBoard;
  }

  /**
   * Re-reads the workers whose turn came since the last round (see
   * FULL_REFRESH_MS). Returns whether the turn wrapped: then the classes'
   * least costs per group are found again (a full round), as they only go
   * down between (see #update).
   */
  #roll(nowMs: number): boolean {
    const n = this.#workers.length;
    if (n === 0) return true;
    const period = Math.max(FULL_REFRESH_MS, n * REFRESH_MS_PER_WORKER);
    this.#rollOwed = this.#lastRollMs === -Infinity ? n : Math.min(n, this.#rollOwed + (n * (nowMs - this.#lastRollMs)) / period);
    this.#lastRollMs = nowMs;
    let wrapped = false;
    for (; this.#rollOwed >= 1; this.#rollOwed--) {
      const k = this.#rollAt;
      this.#rollAt = (k + 1) % n;
      if (this.#rollAt === 0) wrapped = true;
      this.#stamp[k]!++;
      this.#changedKs.push(k);
      this.#read(k, this.#workers[k]!, nowMs, true);
    }
    return wrapped;
  }

  /** A candidate list as indices (cached per list: eligibility's lists live until the registry changes). */
  pool(cands: readonly Worker[]): Pool {
    let p = this.#pools.get(cands);
    if (p !== undefined) return p;
    // One worker (a placed group, a routing key): one pool per worker, so that its requests share their budget and costs.
    if (cands.length === 1) {
      const k = this.#index.get(cands[0]!);
      if (k === undefined) return this.#empty;
      let single = this.#singles.get(k);
      if (single === undefined) {
        single = { idx: Int32Array.of(k), member: null };
        this.#singles.set(k, single);
      }
      return single;
    }
    const member = new Uint8Array(this.#workers.length);
    const idx: number[] = [];
    for (const w of cands) {
      const k = this.#index.get(w);
      if (k !== undefined && member[k] === 0) {
        member[k] = 1;
        idx.push(k);
      }
    }
    p = { idx: Int32Array.from(idx), member: idx.length <= SHORT_POOL ? null : member };
    this.#pools.set(cands, p);
    return p;
  }

  /**
   * Predicted ms of `work` on each worker of `pool` (by worker index), shared
   * by every request of the same work features. Unknown work (null) depends
   * on the whole fleet's typical cost: computed afresh.
   */
  classCost(work: WorkFeatures | null, pool: Pool): Costs {
    if (work === null) return this.#fresh([work], pool);
    const c = this.#classOf(work);
    if (c.checkedRound === this.#round && c.checkedPool === pool) return c;
    if (c.checkedRound === this.#round - 1 && c.checkedPool === pool && !this.#fullRound && c.floors.length === this.#groupKeys.size) return this.#update(c, work, pool);
    const { idx } = pool;
    const floors = c.floors.length === this.#groupKeys.size ? c.floors.fill(Infinity) : new Float64Array(this.#groupKeys.size).fill(Infinity);
    const group = this.#group;
    for (let j = 0; j < idx.length; j++) {
      const k = idx[j]!;
      if (c.stamp[k] !== this.#stamp[k]) {
        c.cost[k] = this.loads.predictMs(work, this.#workers[k]!);
        c.stamp[k] = this.#stamp[k]!;
      }
      if (c.cost[k]! < floors[group[k]!]!) floors[group[k]!] = c.cost[k]!;
    }
    c.checkedRound = this.#round;
    c.checkedPool = pool;
    c.floors = floors;
    return c;
  }

  /**
   * A class checked in the last round: only the workers read again since.
   * Its floors only go down until the next full round (a worker's cost that
   * rose is not searched for among the others): a floor must stay at most
   * the group's least cost, and may be low by a few % for 100 ms.
   */
  #update(c: ClassCost, work: WorkFeatures, pool: Pool): ClassCost {
    for (const k of this.#changedKs) {
      if (!inPool(pool, k)) continue;
      c.cost[k] = this.loads.predictMs(work, this.#workers[k]!);
      c.stamp[k] = this.#stamp[k]!;
      const g = this.#group[k]!;
      if (c.cost[k]! < c.floors[g]!) c.floors[g] = c.cost[k]!;
    }
    c.checkedRound = this.#round;
    return c;
  }

  /** The summed cost of several requests (an unplaced prompt group, planned as one unit). */
  unitCost(works: readonly (WorkFeatures | null)[], pool: Pool): Costs {
    return this.#fresh(works, pool);
  }

  #fresh(works: readonly (WorkFeatures | null)[], pool: Pool): Costs {
    const cost = new Float64Array(this.#workers.length);
    const floors = new Float64Array(this.#groupKeys.size).fill(Infinity);
    for (const k of pool.idx) {
      for (const work of works) cost[k]! += this.loads.predictMs(work, this.#workers[k]!);
      if (cost[k]! < floors[this.#group[k]!]!) floors[this.#group[k]!] = cost[k]!;
    }
    return { cost, floors };
  }

  /** The key of a demand class: requests of equal keys are interchangeable for the plan (admission/plan-classes.ts). */
  classKey(kind: string, model: string | null, work: WorkFeatures | null): string | null {
    return work === null ? null : `${kind}|${model ?? ""}|${this.#workKey(work)}`;
  }

  #workKey(work: WorkFeatures): string {
    let key = this.#classKeys.get(work);
    if (key === undefined) {
      key = `${work.megapixels}|${work.steps}|${work.latentFrames}|${work.outputs}|${work.inputImages}`;
      this.#classKeys.set(work, key);
    }
    return key;
  }

  #classOf(work: WorkFeatures): ClassCost {
    const key = this.#workKey(work);
    let c = this.#classes.get(key);
    if (c === undefined) {
      if (this.#classes.size >= MAX_CLASSES) this.#classes.clear();
      const n = this.#workers.length;
      c = { cost: new Float64Array(n), stamp: new Uint32Array(n), checkedRound: -1, checkedPool: null, floors: new Float64Array(0) };
      this.#classes.set(key, c);
    }
    return c;
  }

  /** Reads a worker's state; `costs`: its predictions may have changed too (its group is found again). */
  #read(k: number, w: Worker, nowMs: number, costs: boolean): void {
    const { loads } = this;
    const s = loads.slowdown(w, nowMs);
    const [busy, ...other] = loads.slotsFreeAt(w, nowMs, s);
    const snap = loads.snapshot(w);
    this.#busy[k] = busy!;
    this.#other[k] = other.length > 0 ? other : null;
    this.#free[k] = this.freeSlots(w);
    this.#slow[k] = s;
    this.#noise[k] = snap.noise;
    this.#observed[k] = snap.observations;
    this.#learned[k] = snap.observations >= LEARNED_OBSERVATIONS ? 1 : 0;
    this.#runs[k] = loads.runsOn(w);
    const changesAt = loads.slowdownChangesAt(w);
    this.#due[k] = changesAt > nowMs ? changesAt : nowMs + OVERDUE_REREAD_MS;
    if (costs) this.#group[k] = this.#groupOf(w);
  }

  #groupOf(w: Worker): number {
    const q = (work: WorkFeatures) => Math.round(Math.log(this.loads.predictMs(work, w)) / GROUP_STEP);
    const key = `${w.capabilities.models[0] ?? ""}|${q(SMALL_WORK)}|${q(LARGE_WORK)}`;
    let g = this.#groupKeys.get(key);
    if (g === undefined) {
      g = this.#groupKeys.size;
      this.#groupKeys.set(key, g);
    }
    return g;
  }

  /** A worker came, went or changed: indices, pools and class costs start over. */
  #rebuild(): void {
    this.#stale = false;
    this.#workers = [...this.registry.all()];
    const n = this.#workers.length;
    this.#index = new Map(this.#workers.map((w, k) => [w, k]));
    this.#busy = new Float64Array(n);
    this.#free = new Int32Array(n);
    this.#noise = new Float64Array(n);
    this.#slow = new Float64Array(n);
    this.#learned = new Uint8Array(n);
    this.#observed = new Int32Array(n);
    this.#runs = new Int32Array(n);
    this.#due = new Float64Array(n).fill(-Infinity);
    this.#other = new Array<number[] | null>(n).fill(null);
    this.#stamp = new Uint32Array(n).fill(1);
    this.#group = new Int32Array(n);
    this.#groupKeys = new Map();
    this.#roundBusy = new Float64Array(n);
    this.#roundFree = new Int32Array(n);
    this.#roundOther = new Array<number[] | null>(n).fill(null);
    this.#roundBoard = { busy: this.#roundBusy, free: this.#roundFree, noise: this.#noise, slow: this.#slow, group: this.#group, learned: this.#learned, other: this.#roundOther };
    this.#pools = new WeakMap();
    this.#singles = new Map();
    this.#classes.clear();
    this.#rollAt = 0;
    this.#lastRollMs = -Infinity;
  }
}
