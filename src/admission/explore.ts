import type { Worker } from "../registry/worker.js";
import { occupy, TIE_MS, type Board } from "../scheduler/board-plan.js";
import type { Candidates } from "./candidates.js";
import { inPool, type PlanBoard, type Pool } from "./plan-board.js";
import type { Waiter } from "./queue.js";

/**
 * Exploration of workers the plan leaves out (issue 20). Under light
 * traffic (one request at a time on an idle fleet) earliest-finish sends
 * every request to the workers predicted fastest, so a worker once measured
 * slow (another tenant, a throttle that has since ended) is never sent
 * anything again and never measured again. A worker not sent anything while
 * its model's workers were sent {@link EXPLORE_AFTER_ROUNDS} x their number
 * of requests may take a request it is predicted to finish within an
 * allowance of the earliest finish elsewhere; the allowance grows by
 * 1/{@link EXPLORE_ROUNDS_PER_UNIT} per further round of the pool (a worker
 * r times slower is tried after about (1 + 8 (r - 1)) rounds of the pool),
 * so each worker still slow costs about 1/(8 x pool size) of a request's
 * time per request, whatever its slowness, and none if it recovered.
 *
 * Age is counted in sends of the worker's model, not in time: an idle gap
 * between an RL step's bursts teaches nothing and must not make the next
 * burst's largest request an exploration (bursts have their stale probe,
 * plan-dispatch.ts). A worker that answers faster than predicted (by 1.25x
 * or more, once learned) may take the next request within that ratio: a
 * recovered worker is then used again within a few requests, not only
 * after its allowance grows anew.
 */
export const EXPLORE_AFTER_ROUNDS = 1;
export const EXPLORE_ROUNDS_PER_UNIT = 8;
/** An answer this much faster than predicted (prediction / time) makes its worker worth another request at once. */
const SURPRISE = 1.25;

interface ModelSends {
  seq: number;
  /** Each worker's send number at its last send, oldest first (a Map keeps insertion order: a send moves the worker to the end). */
  readonly last: Map<Worker, number>;
}

/** Sends per model and per worker, and what each worker's age allows (see the module comment). */
export class SendAges {
  readonly #models = new Map<string, ModelSends>();
  /** Workers whose last answer came this much faster than predicted (> SURPRISE). */
  readonly #surprised = new Map<Worker, number>();

  sent(w: Worker, model: string): void {
    let m = this.#models.get(model);
    if (m === undefined) this.#models.set(model, (m = { seq: 0, last: new Map() }));
    m.seq++;
    m.last.delete(w);
    m.last.set(w, m.seq);
  }

  /** A worker's answer: `ratio` = its prediction at the send / its time (only for a worker learned enough to trust the prediction). */
  answered(w: Worker, ratio: number): void {
    if (ratio >= SURPRISE) this.#surprised.set(w, ratio);
    else this.#surprised.delete(w);
  }

  forget(w: Worker): void {
    for (const m of this.#models.values()) m.last.delete(w);
    this.#surprised.delete(w);
  }

  /**
   * Calls `visit` with every worker whose allowance is positive and that
   * allowance (extra finish relative to the earliest elsewhere): surprised
   * workers, then the others oldest send first, until `visit` returns true.
   * O(models + such workers): the oldest come first, so the walk stops at
   * the first worker sent within the last rounds.
   */
  eachAged(visit: (w: Worker, allowance: number) => boolean): void {
    // Surprised workers first: few, and the likeliest to have recovered (a bounded step may stop before the aged ones end).
    for (const [w, ratio] of this.#surprised) if (visit(w, ratio - 1)) return;
    for (const m of this.#models.values()) {
      const pool = m.last.size;
      for (const [w, at] of m.last) {
        const rounds = (m.seq - at) / pool - EXPLORE_AFTER_ROUNDS;
        if (rounds <= 0) break;
        if (!this.#surprised.has(w) && visit(w, rounds / EXPLORE_ROUNDS_PER_UNIT)) return;
      }
    }
  }

  /** Whether any worker may be explored now (cheap: the plan calls it every round). */
  any(): boolean {
    if (this.#surprised.size > 0) return true;
    for (const m of this.#models.values()) {
      const first = m.last.entries().next();
      if (!first.done && (m.seq - first.value[1]) / m.last.size > EXPLORE_AFTER_ROUNDS) return true;
    }
    return false;
  }
}

/** What the exploration step reads of a plan round (plan-dispatch.ts). */
export interface ExploreRound {
  readonly nowMs: number;
  readonly live: readonly Waiter[];
  readonly board: Board;
  readonly planBoard: PlanBoard;
  readonly candidates: Candidates;
  /**
   * Whether traffic is light (plan-probes.ts lightTraffic): sequential traffic,
   * runs and queued requests together at most half the workers, every queued
   * request arrived since the last round and few did. Under load every free
   * worker gets work from the plan anyway; at a burst's end the plan may keep
   * a worker free on purpose (packing, a batch to join): exploring there cost
   * the batching fleet a batch of 4; and a burst's arrival turns are not
   * light even on a fleet many times larger than the burst.
   */
  readonly light: boolean;
  /** Live indices already given a worker in this round (probes); explored ones are added. */
  readonly taken: Set<number>;
}

/** What one exploration step did: how much work it was bounded to (test/explore-bound.test.ts). */
export interface ExploreWork {
  /** Aged or surprised workers looked at. */
  visited: number;
  /** Worker x demand class checks (at most EXPLORE_CHECKS + 1: the one that stops the step). */
  checks: number;
  /** Workers read to find the classes' earliest finishes (each class's pool once, again only after one of its two best workers was explored). */
  scanned: number;
  /** Requests given to explored workers. */
  explored: number;
}

/** Queued requests (from the smallest) the step looks at. */
const EXPLORE_SCAN = 64;
/**
 * Most worker x class checks in one round. At 4,096 workers an unbounded
 * step made rounds of 0.9 s of CPU (scale part 7). The walk goes surprised
 * workers first, then oldest first: the workers it leaves for a later round
 * are the least aged, whose allowance is the smallest.
 */
export const EXPLORE_CHECKS = 4096;
/** A class whose earliest finishes must be found (again). */
const UNKNOWN = -2;

/** The queued requests of one demand class and pool, and its earliest finishes on the board (ms from now). */
interface ClassEntry {
  readonly pool: Pool;
  readonly cost: Float64Array;
  /** Live indices, smallest request first; `next` is the first not taken. */
  readonly members: number[];
  next: number;
  best: number;
  bestK: number;
  second: number;
  secondK: number;
}

/**
 * One round's exploration: the queued requests by demand class (and pool),
 * each class's earliest finish found once (not once per worker and request:
 * that was explored workers x 64 requests x the whole pool), a bounded
 * number of checks.
 */
class ExploreStep {
  readonly work: ExploreWork = { visited: 0, checks: 0, scanned: 0, explored: 0 };
  readonly #classes: ClassEntry[] = [];
  #left = 0;

  constructor(
    private readonly r: ExploreRound,
    private readonly plan: [Waiter, Worker][],
  ) {
    this.#gather();
  }

  get empty(): boolean {
    return this.#left === 0;
  }

  /** The smallest EXPLORE_SCAN queued requests not taken, by class (prompt groups are planned as units, never explored). */
  #gather(): void {
    const { live, taken, planBoard: b, candidates } = this.r;
    const byCost = new Map<Float64Array, ClassEntry[]>();
    for (let i = live.length - 1, seen = 0; i >= 0 && seen < EXPLORE_SCAN; i--) {
      const waiter = live[i]!;
      if (waiter.settled || taken.has(i) || waiter.ticket.group !== undefined) continue;
      seen++;
      const pool = b.pool(candidates.of(waiter.ticket));
      if (pool.idx.length < 2) continue;
      const { cost } = b.classCost(waiter.ticket.facts.work, pool);
      let list = byCost.get(cost);
      if (list === undefined) byCost.set(cost, (list = []));
      let c = list.find((e) => e.pool === pool);
      if (c === undefined) {
        c = { pool, cost, members: [], next: 0, best: Infinity, bestK: UNKNOWN, second: Infinity, secondK: UNKNOWN };
        list.push(c);
        this.#classes.push(c);
      }
      c.members.push(i);
      this.#left++;
    }
  }

  /**
   * Gives worker `w` the smallest queued request it is predicted to finish
   * within `allowance` of the earliest finish on the request's other
   * workers (both from now). Returns true when the step must stop: nothing
   * left to give, or its checks are spent.
   */
  visit(w: Worker, allowance: number): boolean {
    const { planBoard: b, board } = this.r;
    this.work.visited++;
    const k = b.indexOf(w);
    if (k < 0 || board.free[k]! <= 0 || b.runsOn(k) > 0 || b.observed(k) === 0) return false;
    const mineSlow = board.slow?.[k] ?? 1;
    let pick: ClassEntry | null = null;
    for (const c of this.#classes) {
      if (c.next >= c.members.length) continue;
      // Only a smaller request (a later live index) than the one picked can win.
      if (pick !== null && c.members[c.next]! < pick.members[pick.next]!) continue;
      if (++this.work.checks > EXPLORE_CHECKS) return true;
      if (!inPool(c.pool, k)) continue;
      if (c.cost[k]! * mineSlow <= this.#elsewhere(c, k) * (1 + allowance) + TIE_MS) pick = c;
    }
    if (pick !== null) this.#take(pick, w, k, pick.cost[k]! * mineSlow);
    return this.#left === 0;
  }

  #take(c: ClassEntry, w: Worker, k: number, mine: number): void {
    const { live, board, nowMs, taken } = this.r;
    const i = c.members[c.next++]!;
    this.#left--;
    taken.add(i);
    this.plan.push([live[i]!, w]);
    this.work.explored++;
    board.free[k]!--;
    occupy(board, k, nowMs + mine);
    // Its finish moved later: a class that counted it among its two earliest finds them again.
    for (const o of this.#classes) if (o.bestK === k || o.secondK === k) o.bestK = UNKNOWN;
  }

  /** The earliest finish of class `c` on its pool's workers other than `k` (ms from now). */
  #elsewhere(c: ClassEntry, k: number): number {
    if (c.bestK === UNKNOWN) this.#earliest(c);
    return k === c.bestK ? c.second : c.best;
  }

  #earliest(c: ClassEntry): void {
    const { board, nowMs } = this.r;
    c.best = c.second = Infinity;
    c.bestK = c.secondK = -1;
    for (const j of c.pool.idx) {
      const t = Math.max(board.busy[j]!, nowMs) - nowMs + c.cost[j]! * (board.slow?.[j] ?? 1);
      if (t < c.best) {
        [c.second, c.secondK] = [c.best, c.bestK];
        [c.best, c.bestK] = [t, j];
      } else if (t < c.second) [c.second, c.secondK] = [t, j];
    }
    this.work.scanned += c.pool.idx.length;
  }
}

/**
 * Gives free, idle workers with an allowance (SendAges.eachAged: surprised
 * ones first, then oldest first) the smallest queued request each is
 * predicted to finish within that allowance of the earliest finish on the
 * request's other workers. Pushes the sends onto `plan`; returns the work done.
 */
export function exploreAged(ages: SendAges, r: ExploreRound, plan: [Waiter, Worker][]): ExploreWork {
  if (!r.light || !ages.any()) return { visited: 0, checks: 0, scanned: 0, explored: 0 };
  const step = new ExploreStep(r, plan);
  if (!step.empty) ages.eachAged((w, allowance) => step.visit(w, allowance));
  return step.work;
}
