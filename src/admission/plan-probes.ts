import type { Worker } from "../registry/worker.js";
import { occupy, type Board, type BoardItem } from "../scheduler/board-plan.js";
import type { DispatchContext } from "./dispatch.js";
import { exploreAged } from "./explore.js";
import { inPool, type PlanBoard } from "./plan-board.js";
import type { Waiter } from "./queue.js";

/**
 * Probes of the plan driver (plan-dispatch.ts): workers the cost model knows
 * nothing of, or that were idle and silent before a burst, first get a small
 * request; then workers the plan left out for a while are explored.
 */

/** Queued requests (from the smallest) a new worker's probe looks at: one whose requests are all deeper waits for the plan. */
const PROBE_SCAN = 512;
/** Queued requests per stale worker (LoadBook.staleIdle) from which stale workers are probed. */
const STALE_PROBE_DEPTH = 2;
const NO_WORKERS: readonly Worker[] = [];

/** Most requests arriving between two rounds that still count as sequential traffic (see lightTraffic). */
const SEQUENTIAL_ARRIVALS = 2;

/** What a probe looks at in a plan round. */
export interface ProbeRound {
  readonly nowMs: number;
  readonly live: Waiter[];
  readonly board: Board;
  /** Live indices of the plan's items, in queue order. */
  readonly at: number[];
  readonly items: BoardItem[];
  /** Whether traffic is light (lightTraffic): workers left out may be explored. */
  readonly light: boolean;
}

/**
 * Light traffic, where exploration (explore.ts) may send a request to a
 * worker the plan left out: sequential traffic on a mostly idle fleet. Runs
 * and queued requests together at most half the workers, and every queued
 * request arrived since the last round (`arrived` of them, at most
 * SEQUENTIAL_ARRIVALS of them): a request that waited a round waits on
 * purpose (a busy fast worker, a batch to join), and a burst's arrival turns
 * (64 requests a turn on 4,096 workers was "light" by the counts alone) are
 * planned largest-first, not as explorations.
 */
export function lightTraffic(workers: number, runs: number, queued: number, arrived: number): boolean {
  return arrived <= SEQUENTIAL_ARRIVALS && queued <= arrived && 2 * (runs + queued) <= workers;
}

/** Whether this round probes a stale worker (see probeWorkers): then it is planned request by request, not per class. */
export function probesStale(ctx: DispatchContext, nowMs: number, freeSlots: (w: Worker) => number): boolean {
  const stale = ctx.loads.staleIdle(nowMs);
  if (stale.size === 0 || ctx.queue.queued < STALE_PROBE_DEPTH * stale.size) return false;
  for (const w of stale) if (freeSlots(w) > 0) return true;
  return false;
}

/**
 * A worker the cost model knows nothing of yet (just registered, or a new
 * model) first gets the smallest request it may serve (not the only one
 * queued): its speed is
 * learned from a cheap request, instead of a large one landing on a GPU
 * that may turn out several times slower. So does a worker idle for a while
 * before a burst (LoadBook.staleIdle): one that slowed down meanwhile shows
 * it on a small request (running past its prediction, then its answer),
 * not on the burst's largest (issue 20: 1.4-1.7x the offline plan on the
 * first burst after three of eight workers became 3x slower). In a round
 * planned as batch units (`staleOk` false) neither probe goes to a worker
 * that has answered before. (Prompt
 * groups are not used as probes: they are planned as units.) Then workers
 * the plan has left out for a while are explored (explore.ts).
 */
export function probeWorkers(ctx: DispatchContext, b: PlanBoard, { nowMs, live, board, at, items, light }: ProbeRound, staleOk = true): [Waiter, Worker][] {
  const plan: [Waiter, Worker][] = [];
  // Stale workers are probed only in a burst of at least STALE_PROBE_DEPTH requests each: a probe
  // takes a small request the burst's end would have used to fill a gap, which a short burst misses.
  const stale = ctx.loads.staleIdle(nowMs);
  const probeStale = staleOk && stale.size > 0 && ctx.queue.queued >= STALE_PROBE_DEPTH * stale.size;
  const probed = new Set<number>();
  let tail = live.length - 1;
  for (let k = 0; k < (b.unobserved > 0 || probeStale ? b.size : 0); k++) {
    if (board.free[k]! <= 0 || b.runsOn(k) > 0 || (b.observed(k) > 0 && !(probeStale && stale.has(b.worker(k))))) continue;
    // A round planned as batch units (staleOk false) probes only workers that never answered: one
    // that ran only batches of unknown gain is still unobserved by the cost model (its first answer is
    // taken as cold), and probing it sent each such GPU a single 512² first in the batching fleet's
    // first burst after the warm-up, ahead of the unit the plan had for it (issue 20).
    if (!staleOk && b.observed(k) === 0 && ctx.loads.answered(b.worker(k))) continue;
    while (tail >= 0 && (live[tail]!.settled || probed.has(tail))) tail--;
    // Never the queue's head (its largest request): through HTTP a burst arrives over several
    // event-loop turns, and a probe with the only request queued put a burst's largest on a
    // half-speed worker (2.0x; issue 20). The head goes where the plan finishes it earliest.
    for (let i = tail; i >= Math.max(1, tail - PROBE_SCAN); i--) {
      const waiter = live[i]!;
      if (waiter.settled || probed.has(i) || waiter.ticket.group !== undefined) continue;
      const pool = b.pool(ctx.candidates.of(waiter.ticket));
      if (!inPool(pool, k)) continue;
      probed.add(i);
      plan.push([waiter, b.worker(k)]);
      board.free[k]!--;
      occupy(board, k, Math.max(board.busy[k]!, nowMs) + b.classCost(waiter.ticket.facts.work, pool).cost[k]! * board.slow![k]!);
      break;
    }
  }
  // Workers sent nothing for a while (light traffic) may take a request within an allowance (explore.ts).
  exploreAged(ctx.loads.ages, { nowMs, live, board, planBoard: b, candidates: ctx.candidates, light, taken: probed }, plan);
  // A probed request is not planned again in this round.
  if (probed.size > 0) at.forEach((i, j) => probed.has(i) && (items[j] = { pool: b.pool(NO_WORKERS).idx, cost: items[j]!.cost }));
  return plan;
}
