import type { CostModel } from "../scheduler/cost-model.js";
import { priorityKey } from "../scheduler/plan.js";
import type { WorkFeatures } from "../scheduler/request-facts.js";
import type { Waiter } from "./queue.js";
import type { Ticket } from "./ticket.js";

/** What a queued request's key was made from: the model it is filed under and the fleet-average prediction the key holds. */
interface Basis {
  readonly model: string;
  refMs: number;
}

/**
 * Relative change of a prediction below which the queue is not re-keyed. A
 * re-key of 30,000 queued requests is 10-35 ms at 4,096 workers, and after
 * the warm-up refits move the shape by a few % (docs/benchmarks.md, Scale
 * part 7): re-keying then reordered near-ties at every refit for nothing.
 */
const TOLERANCE = 0.05;
/** Distinct request works (per model) whose predictions are watched; requests of further works still get keys, and are re-keyed with the rest. */
const MAX_PROBES = 64;

/** A work requests asked for, and its prediction at the last re-key. */
interface Probe {
  readonly work: WorkFeatures;
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
 * demand class keep their order. Cost: at each refit put in place, one
 * prediction per distinct work requests asked for (at most MAX_PROBES per
 * model); when one moved by more than TOLERANCE, one prediction per waiting
 * request and a sort if the order changed.
 */
export class QueueKeys {
  readonly #basis = new WeakMap<Ticket, Basis>();
  /** CostModel.shapesReplaced when the queue was last looked at. */
  #seen: number;
  /**
   * Per model, the works its requests asked for (the first MAX_PROBES) by
   * signature, with their predictions at the last re-key: what decides
   * whether a new shape moved any key far enough to re-key. Works no request
   * asked for are not watched (a shape extrapolated to 2048² may swing
   * without moving any key).
   */
  readonly #probes = new Map<string, Map<string, Probe>>();

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
    this.#watch(model, ticket.facts.work, refMs);
    return priorityKey(refMs, this.clock(), this.ageing);
  }

  /** Whether a fleet's shape was replaced since the queue was last keyed. */
  get stale(): boolean {
    return this.costs.shapesReplaced !== this.#seen;
  }

  /**
   * Moves every waiting request's key by the change of its prediction under
   * the shape now in place, and sorts `live` (the queue's own array, largest
   * key first) again if the order changed. Returns whether it did. Nothing
   * is done while no model's predictions moved by more than TOLERANCE since
   * the last re-key: the change is compared with that re-key's shape, so
   * small moves that add up still re-key.
   */
  refresh(live: Waiter[]): boolean {
    this.#seen = this.costs.shapesReplaced;
    if (!this.#moved()) return false;
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

  /** Watches a request's work, if new and there is room (its prediction now is its first reference). */
  #watch(model: string, work: WorkFeatures | null, refMs: number): void {
    if (work === null) return;
    let probes = this.#probes.get(model);
    if (probes === undefined) this.#probes.set(model, (probes = new Map()));
    if (probes.size >= MAX_PROBES) return;
    const sig = `${work.megapixels}/${work.steps}/${work.latentFrames}/${work.outputs}/${work.inputImages}`;
    if (!probes.has(sig)) probes.set(sig, { work, refMs });
  }

  /** Whether some watched work's prediction moved by more than TOLERANCE since the last re-key; if so, the new ones become the references. */
  #moved(): boolean {
    let moved = false;
    for (const [model, probes] of this.#probes) {
      for (const p of probes.values()) if (Math.abs(this.costs.referenceMs(model, p.work) / p.refMs - 1) > TOLERANCE) moved = true;
    }
    if (!moved) return false;
    for (const [model, probes] of this.#probes) for (const p of probes.values()) p.refMs = this.costs.referenceMs(model, p.work);
    return true;
  }
}
