import type { Worker } from "../registry/worker.js";
import { occupy, TIE_MS, type Board } from "../scheduler/board-plan.js";
import type { Candidates } from "./candidates.js";
import { inPool, type PlanBoard } from "./plan-board.js";
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
   * allowance (extra finish relative to the earliest elsewhere), oldest
   * send first. O(models + such workers): the oldest come first, so the
   * walk stops at the first worker sent within the last rounds.
   */
  eachAged(visit: (w: Worker, allowance: number) => void): void {
    for (const m of this.#models.values()) {
      const pool = m.last.size;
      for (const [w, at] of m.last) {
        const rounds = (m.seq - at) / pool - EXPLORE_AFTER_ROUNDS;
        if (rounds <= 0) break;
        if (!this.#surprised.has(w)) visit(w, rounds / EXPLORE_ROUNDS_PER_UNIT);
      }
    }
    for (const [w, ratio] of this.#surprised) visit(w, ratio - 1);
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
   * Whether traffic is light: runs and queued requests together at most half
   * the workers. Under load every free worker gets work from the plan anyway,
   * and at a burst's end the plan may keep a worker free on purpose (packing,
   * a batch to join): exploring there cost the batching fleet a batch of 4.
   */
  readonly light: boolean;
  /** Live indices already given a worker in this round (probes); explored ones are added. */
  readonly taken: Set<number>;
}

/** Queued requests (from the smallest) an explored worker looks at. */
const EXPLORE_SCAN = 64;

/**
 * Gives each free, idle worker with an allowance (SendAges.eachAged) the
 * smallest queued request it is predicted to finish within that allowance
 * of the earliest finish on the request's other workers (both counted from
 * now). Pushes the sends onto `plan`.
 */
export function exploreAged(ages: SendAges, r: ExploreRound, plan: [Waiter, Worker][]): void {
  if (!r.light || !ages.any()) return;
  const { nowMs, live, board, planBoard: b, taken } = r;
  const slow = (k: number) => board.slow?.[k] ?? 1;
  ages.eachAged((w, allowance) => {
    const k = b.indexOf(w);
    if (k < 0 || board.free[k]! <= 0 || b.runsOn(k) > 0 || b.observed(k) === 0) return;
    for (let i = live.length - 1, seen = 0; i >= 0 && seen < EXPLORE_SCAN; i--) {
      const waiter = live[i]!;
      if (waiter.settled || taken.has(i) || waiter.ticket.group !== undefined) continue;
      seen++;
      const pool = b.pool(r.candidates.of(waiter.ticket));
      if (pool.idx.length < 2 || !inPool(pool, k)) continue;
      const { cost } = b.classCost(waiter.ticket.facts.work, pool);
      const mine = cost[k]! * slow(k);
      let best = Infinity;
      for (const j of pool.idx) if (j !== k) best = Math.min(best, Math.max(board.busy[j]!, nowMs) - nowMs + cost[j]! * slow(j));
      if (!(mine <= best * (1 + allowance) + TIE_MS)) continue;
      taken.add(i);
      plan.push([waiter, w]);
      board.free[k]!--;
      occupy(board, k, nowMs + mine);
      return;
    }
  });
}
