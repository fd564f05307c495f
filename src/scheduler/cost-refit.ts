/**
 * A model's fleet refit (cost-model.ts): its shape and every member's pace,
 * fitted in turn. On a large fleet a refit re-paces a thousand workers
 * (~5 ms of CPU at 1,024, tens of ms on a loaded host), the longest turn of
 * the router (docs/benchmarks.md, Scale part 5), so it can run in slices
 * (`step`): the new shape and paces are computed aside and replace the old
 * ones at once when complete. Predictions use the old fit until then:
 * nothing is ever half-updated. Run in one step, it is the same arithmetic
 * in the same order as the refit always was (bit-identical results).
 */
import { fitPace, fitShape, type Pace, type Point, type Shape } from "./cost-shape.js";

export interface Sample {
  p: Point;
  t: number;
  /** Whose observation it is (the fleet's window holds every worker's). */
  worker: WorkerModel;
}

/** The last `size` items, in arrival order. */
export class Window<T> {
  readonly items: T[] = [];
  constructor(private readonly size: number) {}
  push(o: T): void {
    if (this.items.length === this.size) this.items.shift();
    this.items.push(o);
  }
}

/** When a fit was last made, and how many observations came since (cost-model.ts refitDue). */
export interface RefitClock {
  pending: number;
  lastFitMs: number;
}

export interface WorkerModel {
  window: Window<Sample>;
  /** Observations ever added to its window: a sliced refit re-paces at its end a worker that answered meanwhile. */
  added: number;
  pace: Pace;
  /** Whether its pace rests on its own observations (or on another model's, see CostModel #speedByWorker); else it is provisional. */
  paced: boolean;
  /** ln speed its cold start showed (a cold start is slower than the worker: a lower bound), or NaN. */
  coldLogSpeed: number;
  /** Its typical observed cost, for requests whose work is unknown. */
  typicalMs: number;
  /** Whether its first request ended: that one is not learned from (see observe). */
  warmedUp: boolean;
  refit: RefitClock;
  /** How far its observed times scatter around its prediction (relative, robust σ); NaN until MIN_FOR_NOISE observations. */
  noise: number;
}

export interface FleetModel {
  shape: Shape;
  /** Observations of every worker, each with its worker (to bring it to a common speed). */
  window: Window<Sample>;
  /** Its workers with observations: their paces are refitted with the shape. */
  members: Set<WorkerModel>;
  /** The slowest member's ln speed (0 with none): what a worker not measured yet is assumed to be. */
  slowestLogSpeed: number;
  /** Typical observed cost, for requests whose work is unknown. */
  typicalMs: number;
  refit: RefitClock;
  /** A sliced refit under way, or null. */
  refitting: FleetRefit | null;
}

/** A worker whose times scatter this much is assumed when its scatter is not measured yet. */
export const UNKNOWN_NOISE = 0.1;
/** Rounds of fitting shape and paces in turn at each fleet refit; more while the fleet has few observations (cheap then, and they matter most). */
const ALTERNATIONS = 2;
const LEARNING_ALTERNATIONS = 6;
/** Below this many fleet observations a refit alternates LEARNING_ALTERNATIONS times. */
const LEARNING_WINDOW = 32;

export function paceOf(w: WorkerModel, shape: Shape): Pace {
  const items = w.window.items;
  return fitPace(
    items.map((s) => s.p),
    items.map((s) => s.t),
    shape,
  );
}

/**
 * One refit of a fleet. `step(budget)` does the next shape fit, or re-paces
 * up to `budget` members; it returns true once the refit is complete and
 * has replaced the fleet's shape and its members' paces.
 */
export class FleetRefit {
  readonly #fleet: FleetModel;
  /** The members when the refit began, in the fleet's order (the order of the sums, as before). */
  readonly #members: WorkerModel[];
  readonly #items: Sample[];
  readonly #points: Point[];
  readonly #trust: number[];
  readonly #rounds: number;
  /** New paces, by member, aside from the ones predictions use; and each one's `added` when it was fitted. */
  readonly #paces = new Map<WorkerModel, Pace>();
  readonly #pacedAt = new Map<WorkerModel, number>();
  #shape: Shape;
  /** The first round's common times, taken when the refit began; null after. */
  #common: number[] | null;
  #round = 0;
  /** The next member to re-pace in this round; -1: the round's shape fit is next. */
  #next = -1;
  #sum = 0;
  #count = 0;

  constructor(fleet: FleetModel) {
    this.#fleet = fleet;
    this.#members = [...fleet.members];
    this.#shape = fleet.shape;
    // A worker with one observation teaches its speed, not the shape: any
    // shape fits one point once its speed is free. Its shape information
    // starts with a second observation (a ratio of two sizes).
    this.#items = fleet.window.items.filter((s) => s.worker.window.items.length >= 2);
    this.#points = this.#items.map((s) => s.p);
    // A worker whose times scatter (a loaded host) teaches the shape less: weight 1 / σ², σ of 2% or more.
    this.#trust = this.#items.map((s) => 1 / Math.max(0.02, Number.isNaN(s.worker.noise) ? UNKNOWN_NOISE : s.worker.noise) ** 2);
    this.#rounds = fleet.window.items.length < LEARNING_WINDOW ? LEARNING_ALTERNATIONS : ALTERNATIONS;
    // The first shape fit's common times from the paces as they are now (the answering worker may be re-paced before it runs).
    this.#common = this.#commonTimes();
  }

  step(budget: number): boolean {
    if (this.#next < 0) {
      this.#fitShape();
      this.#next = 0;
      if (budget !== Infinity) return false;
    }
    const end = Math.min(this.#members.length, this.#next + budget);
    for (let i = this.#next; i < end; i++) {
      const m = this.#members[i]!;
      const pace = paceOf(m, this.#shape);
      this.#paces.set(m, pace);
      this.#pacedAt.set(m, m.added);
      this.#sum += pace.logSpeed * m.window.items.length;
      this.#count += m.window.items.length;
    }
    this.#next = end;
    if (end < this.#members.length) return false;
    this.#endRound();
    if (++this.#round < this.#rounds) {
      this.#next = -1;
      return budget === Infinity ? this.step(budget) : false;
    }
    this.#swap();
    return true;
  }

  /** The shape from observations brought to a common speed by the paces (this refit's, once it made them). */
  #fitShape(): void {
    const common = this.#common ?? this.#commonTimes();
    this.#common = null;
    if (this.#items.length > 0) this.#shape = fitShape(this.#points, common, this.#shape, this.#trust);
  }

  #commonTimes(): number[] {
    return this.#items.map((s) => {
      const pace = this.#paces.get(s.worker) ?? s.worker.pace;
      return s.t * Math.exp(pace.logSpeed + pace.tilt * s.p.logMp);
    });
  }

  /** The paces' average speed brought back to 1: the shape absorbs it. */
  #endRound(): void {
    const g = this.#count > 0 ? this.#sum / this.#count : 0;
    for (const m of this.#members) this.#paces.get(m)!.logSpeed -= g;
    this.#shape = { e: this.#shape.e, theta: this.#shape.theta.map((v) => v * Math.exp(-g)) };
    this.#sum = 0;
    this.#count = 0;
  }

  /**
   * The new fit replaces the old at once. A member that answered since its
   * pace was fitted here, or joined meanwhile, is re-paced against the new
   * shape from its window now; a member forgotten meanwhile is left out.
   */
  #swap(): void {
    const fleet = this.#fleet;
    fleet.shape = this.#shape;
    fleet.slowestLogSpeed = 0;
    for (const m of fleet.members) {
      const pace = this.#paces.get(m);
      m.pace = pace !== undefined && this.#pacedAt.get(m) === m.added ? pace : paceOf(m, this.#shape);
      fleet.slowestLogSpeed = Math.min(fleet.slowestLogSpeed, m.pace.logSpeed);
    }
  }
}
