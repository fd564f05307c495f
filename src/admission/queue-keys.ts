import type { CostModel } from "../scheduler/cost-model.js";
import { priorityKey } from "../scheduler/plan.js";
import type { Waiter } from "./queue.js";
import type { Ticket } from "./ticket.js";

/** What a queued request's key was made from: the model it is filed under and the fleet-average prediction the key holds. */
interface Basis {
  readonly model: string;
  refMs: number;
}

/**
 * The earliest-finish queue's keys (largest predicted work first, with
 * ageing: scheduler/plan.ts priorityKey), kept true to the fleet's cost
 * shape as it is learned.
 *
 * A key is made at arrival from the fleet-average prediction. While a fleet
 * learns (a warm-up), that prediction can be wrong by 10x for seconds:
 * largest-first sends sizes in waves, so the fleet's window holds one size
 * at a time, and a 1024x1024 request predicted at 0.6 s instead of 8 s got a
 * key below smaller requests that came earlier and was sent last, to
 * whatever worker was free (docs/benchmarks.md, Scale part 6 point 2.4:
 * 4,096-worker warm-ups at 1.7x the bound, 40% of the GPU time a tail).
 * So when a fleet's shape is replaced (a refit put in place: one event,
 * CostModel.shapesReplaced), every waiting request's key moves by the change
 * of its own prediction, and the queue is re-sorted if that changed its
 * order. The ageing part of a key (its arrival time) is kept as it was: a
 * waiting request still gains ageing ms per ms, and two requests of one
 * demand class keep their order. Cost: one prediction per waiting request
 * per refit put in place (refits are spaced by fleet size, cost-model.ts
 * refitDue), and a sort only when the order changed.
 */
export class QueueKeys {
  readonly #basis = new WeakMap<Ticket, Basis>();
  /** CostModel.shapesReplaced when the queue was last keyed. */
  #seen: number;

  constructor(
    private readonly costs: CostModel,
    private readonly clock: () => number,
    private readonly ageing: number,
  ) {
    this.#seen = costs.shapesReplaced;
  }

  /** A new request's key (a retry's ticket comes again and is keyed anew). */
  key(ticket: Ticket, model: string): number {
    const refMs = this.costs.referenceMs(model, ticket.facts.work);
    this.#basis.set(ticket, { model, refMs });
    return priorityKey(refMs, this.clock(), this.ageing);
  }

  /** Whether a fleet's shape was replaced since the queue was last keyed. */
  get stale(): boolean {
    return this.costs.shapesReplaced !== this.#seen;
  }

  /**
   * Moves every waiting request's key by the change of its prediction under
   * the shape now in place, and sorts `live` (the queue's own array, largest
   * key first) again if the order changed. Returns whether it did.
   */
  refresh(live: Waiter[]): boolean {
    this.#seen = this.costs.shapesReplaced;
    let sorted = true;
    let kept = 0;
    for (const waiter of live) {
      // Answered waiters leave the array here (the queue drops them lazily): a sort must not move them among the rest.
      if (waiter.settled) continue;
      const basis = this.#basis.get(waiter.ticket);
      if (basis !== undefined) {
        const refMs = this.costs.referenceMs(basis.model, waiter.ticket.facts.work);
        waiter.key += refMs - basis.refMs;
        basis.refMs = refMs;
      }
      if (kept > 0 && waiter.key > live[kept - 1]!.key) sorted = false;
      live[kept++] = waiter;
    }
    live.length = kept;
    if (sorted) return false;
    // Stable: ties keep the order they had (arrival order within a demand class).
    live.sort((a, b) => b.key - a.key);
    return true;
  }
}
