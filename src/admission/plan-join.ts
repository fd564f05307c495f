import type { Worker } from "../registry/worker.js";
import { PREFER_FREE, TIE_MS, type Board, type BoardItem } from "../scheduler/board-plan.js";
import type { Candidates } from "./candidates.js";
import type { LoadBook } from "./loads.js";
import type { PlanBoard } from "./plan-board.js";
import type { Waiter } from "./queue.js";
import type { Batch } from "./ticket.js";

/** A queued request that joins a batch, at the marginal cost it adds to it. */
export interface Join {
  readonly waiter: Waiter;
  readonly worker: Worker;
  readonly batch: Batch;
  readonly predictedMs: number;
}

/** One round's view for batching (plan-dispatch.ts): its items and the workers' free times before the plan. */
export interface JoinRound {
  readonly board: PlanBoard;
  readonly loads: LoadBook;
  readonly candidates: Candidates;
  readonly maxSize: number;
  readonly nowMs: number;
  readonly live: readonly Waiter[];
  /** Live indices of the items. */
  readonly at: readonly number[];
  readonly items: BoardItem[];
  /** The round's board (slowdowns, and free times the joins move). */
  readonly view: Board;
  /** When each worker is predicted free, before the plan placed this round's items (moved by each batch formed). */
  readonly busy: Float64Array;
  /** An empty pool: a joined item is not planned again. */
  readonly none: Int32Array;
}

/**
 * Batch capacity in "when is a worker free" (issue 20). A batching worker's
 * batch that has not started (queued behind the one it runs, or being
 * formed for it now) is available to a compatible request (same batch key)
 * while it has room, at the marginal cost of one more member
 * (LoadBook.marginalMs, learned per batch size), and the request then ends
 * with that batch. A queued compatible request (largest first) joins where
 * that ending is no later than its earliest finish on any other worker of
 * its pool (with the plan's tolerance), so requests are grouped where that
 * finishes the burst sooner, not always up to the max size: a batch of four
 * 1024² requests, which gain nothing (the sim's table), ran 4x one request
 * on one GPU while three others idled at a burst's end (2.6x the batching
 * bound on the virtual fleet). Returns the joins; `taken` gets each one.
 */
export function fillBatch(r: JoinRound, batch: Batch, k: number, endMs: number, taken: Set<Waiter>): Join[] {
  const joins: Join[] = [];
  const worker = r.board.worker(k);
  const slow = r.view.slow?.[k] ?? 1;
  let end = endMs;
  for (let j = 0; j < r.items.length && batch.size < r.maxSize; j++) {
    const waiter = r.live[r.at[j]!]!;
    const t = waiter.ticket;
    // Prompt groups are planned as units (plan-dispatch.ts); their items never join another batch.
    if (waiter.settled || taken.has(waiter) || t.group !== undefined || t.facts.batchKey !== batch.key || r.items[j]!.pool.length === 0) continue;
    if (!r.candidates.of(t).includes(worker)) continue;
    const cost = r.loads.marginalMs(worker, t, batch.size);
    // The plan's tolerance, relative to the request's own time (not to the clock).
    if (end + cost * slow > elsewhere(r, r.items[j]!, k) + PREFER_FREE * r.items[j]!.cost[k]! + TIE_MS) continue;
    end += cost * slow;
    joins.push({ waiter, worker, batch, predictedMs: cost });
    batch.size++;
    batch.left++;
    taken.add(waiter);
    r.items[j] = { pool: r.none, cost: r.items[j]!.cost };
  }
  r.busy[k] = end;
  r.view.busy[k] = Math.max(r.view.busy[k]!, end);
  return joins;
}

/** Fills the batches workers have queued behind the one they run (LoadBook.queuedBatch), before the plan. */
export function planJoins(r: JoinRound, taken: Set<Waiter>): Join[] {
  const joins: Join[] = [];
  for (let k = 0; k < r.board.size; k++) {
    const batch = r.loads.queuedBatch(r.board.worker(k));
    if (batch === null || batch.key === null || batch.size >= r.maxSize) continue;
    joins.push(...fillBatch(r, batch, k, r.busy[k]!, taken));
  }
  return joins;
}

/** An item's earliest predicted finish on a worker of its pool other than `skip`. */
function elsewhere(r: JoinRound, item: BoardItem, skip: number): number {
  let best = Infinity;
  for (const k of item.pool) {
    if (k === skip) continue;
    const end = Math.max(r.busy[k]!, r.nowMs) + item.cost[k]! * (r.view.slow?.[k] ?? 1);
    if (end < best) best = end;
  }
  return best;
}
