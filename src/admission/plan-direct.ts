import type { Worker } from "../registry/worker.js";
import { PACK_CELLS, type Board } from "../scheduler/board-plan.js";
import { DirectPlanner, MAX_POSITIONS, type DirectClass } from "../scheduler/direct-plan.js";
import type { Candidates } from "./candidates.js";
import type { ClassQueue, ClassQueues } from "./plan-classes.js";
import type { PlanBoard } from "./plan-board.js";
import { LOOK_AHEAD_MARGIN } from "./plan-window.js";
import type { Waiter } from "./queue.js";

/**
 * The direct plan's round (scheduler/direct-plan.ts) when it applies: a long
 * queue (beyond what the request-by-request plan reads whole), a free
 * slot and a busy worker, every waiting request in a class, every class on the same pool of
 * single-slot workers, each observed at least once. Returns the sends, or null when the
 * round must be planned request by request (plan-dispatch.ts).
 */
export class DirectRound {
  readonly #planner = new DirectPlanner();
  readonly #classes: DirectClass[] = [];
  readonly #queues: ClassQueue[] = [];

  constructor(
    private readonly board: PlanBoard,
    private readonly queues: ClassQueues,
    private readonly candidates: Candidates,
  ) {}

  plan(board: Board, nowMs: number, queued: number, rotation: number): [Waiter, Worker][] | null {
    const b = this.board;
    if (this.queues.others > 0 || board.free.length >= MAX_POSITIONS) return null;
    if (queued * board.free.length <= PACK_CELLS || queued <= LOOK_AHEAD_MARGIN) return null;
    const heads = this.queues.heads();
    if (heads.length === 0) return null;
    // One pool for every class (one model's routable workers).
    const pool = b.pool(this.candidates.of(heads[0]!.waiters[heads[0]!.head]!.ticket));
    for (let i = 1; i < heads.length; i++) if (b.pool(this.candidates.of(heads[i]!.waiters[heads[i]!.head]!.ticket)) !== pool) return null;
    let free = 0;
    let busy = 0;
    for (const k of pool.idx) {
      if (board.other[k] !== null) return null; // several slots: planned by board-plan.ts
      // A new worker (routable, nothing measured yet): probed with a small request and planned request by request until its speed is known.
      if (b.observed(k) === 0) return null;
      if (board.free[k]! <= 0) busy++;
      else free += board.free[k]!;
    }
    // Nothing running anywhere (a free worker that declines everything would wait for nothing): request by request.
    if (free === 0 || busy === 0) return null;
    this.#classes.length = 0;
    this.#queues.length = 0;
    for (const q of heads) {
      const { cost, floors } = b.classCost(q.work, pool);
      this.#classes.push({ cost, floors, count: q.count });
      this.#queues.push(q);
    }
    const out: [Waiter, Worker][] = [];
    for (const [c, k] of this.#planner.plan(this.#classes, board, pool.idx, nowMs, rotation)) {
      const waiter = this.queues.take(this.#queues[c]!);
      if (waiter !== null) out.push([waiter, b.worker(k)]);
    }
    return out;
  }
}
