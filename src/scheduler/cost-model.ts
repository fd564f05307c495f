/**
 * Learns how long a request takes on each worker, from the service times the
 * router observes, and predicts it for requests not yet sent.
 *
 * Two levels (cost-shape.ts): a model's cost shape, a fixed part plus
 * pixels^e × steps × outputs × latent frames with e learned per model,
 * learned from every worker that serves the model, and each worker's pace
 * against it (a speed factor and a small tilt with pixels), learned from the
 * worker's own few observations. A new worker is predicted from the fleet at
 * once; after one observation (its second request: the first is a cold start)
 * its speed is known; a size no worker has run is predicted from the shape
 * the fleet learned. Outliers (a stall, a cold cache) are down-weighted
 * (Huber). Pure: the caller passes time in.
 */
import { robustSigma } from "./cost-fit.js";
import { changeStart, COLD_SHAPE, fitPace, fitShape, paceMs, pointOf, shapeMs, type Pace, type Point, type Shape } from "./cost-shape.js";
import type { WorkFeatures } from "./request-facts.js";

/** Observations kept per (worker, model): old enough ones no longer describe the worker (new weights, a changed GPU clock). */
const WINDOW = 64;
/** Observations kept per model to fit its shape, across its workers. */
const FLEET_WINDOW = 128;
/** A worker's scatter (noise) is measured from this many observations on; before, it is taken to be UNKNOWN_NOISE. */
const MIN_FOR_NOISE = 4;
/** Scatter is measured over the most recent observations only: a worker that changed speed is not noisy for long. */
const NOISE_WINDOW = 16;
const UNKNOWN_NOISE = 0.1;
/**
 * Scatter is capped here: workers whose predictions differ by more are told
 * apart however noisy their times (a GPU 0.4x as fast is never a tie).
 */
const MAX_NOISE = 0.5;
/** Rounds of fitting shape and paces in turn at each fleet refit; more while the fleet has few observations (cheap then, and they matter most). */
const ALTERNATIONS = 2;
const LEARNING_ALTERNATIONS = 6;

/** A typical request: the worker's defaults (1024x1024, 50 steps, one image). */
const defaultPoint = pointOf({ megapixels: 1, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 });

interface Sample {
  p: Point;
  t: number;
  /** Whose observation it is (the fleet's window holds every worker's). */
  worker: WorkerModel;
}

/** The last `size` items, in arrival order. */
class Window<T> {
  readonly items: T[] = [];
  constructor(private readonly size: number) {}
  push(o: T): void {
    if (this.items.length === this.size) this.items.shift();
    this.items.push(o);
  }
}

interface WorkerModel {
  window: Window<Sample>;
  pace: Pace;
  /** Whether its pace rests on its own observations (or on another model's, see #speedByWorker); else it is provisional. */
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

/** When a fit was last made, and how many observations came since (see {@link refitDue}). */
interface RefitClock {
  pending: number;
  lastFitMs: number;
}

interface FleetModel {
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
}

/** Below this many observations a fit is redone at every one: the first requests teach the most. */
const LEARNING_OBSERVATIONS = 16;
/** Then at most every this many new observations... */
const REFIT_EVERY = 4;
/** ...and no more often than this (ms), so that thousands of small answers a second do not spend the router's CPU on fits. */
const REFIT_MIN_INTERVAL_MS = 50;

/**
 * Whether to fit again. A shape fit (an exponent search over up to 128
 * observations) costs a few hundred µs; doing one per answer took 40% of
 * the router's CPU under small answers (bench/profile.mjs). GPU workers
 * answer a few times a second, where this refits every few answers; nothing
 * a schedule can see is lost. A fleet refit also re-paces every member, so
 * on large fleets the spacing grows with the members (every members / 16
 * answers, at least every members / 4): the refit's cost per answer stays
 * flat instead of growing with the fleet (at 4,096 workers it was most of
 * the router's CPU: docs/benchmarks.md, Scale). Fleets up to 64 workers
 * refit as before; each answer still re-paces its own worker (paceDue).
 */
function refitDue(clock: RefitClock, observations: number, members: number, nowMs: number | undefined): boolean {
  clock.pending++;
  const every = Math.max(REFIT_EVERY, Math.floor(members / 16));
  const atLeast = Math.max(16 * REFIT_EVERY, Math.floor(members / 4));
  const due = observations < LEARNING_OBSERVATIONS || clock.pending >= atLeast || (clock.pending >= every && (nowMs === undefined || nowMs - clock.lastFitMs >= REFIT_MIN_INTERVAL_MS));
  if (due) {
    clock.pending = 0;
    if (nowMs !== undefined) clock.lastFitMs = nowMs;
  }
  return due;
}

/**
 * Whether to refit a worker's pace: a pace fit is cheap (a weighted line
 * through its last 64 log-ratios), so at every answer, at most every 20 ms
 * (GPU answers of one worker are further apart; thousands of tiny answers a
 * second are not), and at least every 64 answers.
 */
function paceDue(clock: RefitClock, nowMs: number | undefined): boolean {
  clock.pending++;
  const due = nowMs === undefined || clock.pending >= 64 || nowMs - clock.lastFitMs >= PACE_MIN_INTERVAL_MS;
  if (due) {
    clock.pending = 0;
    if (nowMs !== undefined) clock.lastFitMs = nowMs;
  }
  return due;
}
const PACE_MIN_INTERVAL_MS = 20;

export interface CostModelSnapshot {
  /** Speed relative to the fleet average for the worker's model (1 = average; 0.5 = half as fast). */
  speed: number;
  /** Observations the worker's own pace rests on. */
  observations: number;
  /**
   * How far one of its service times may be from the prediction, relative
   * (0.05 = 5%): the robust σ of its recent relative residuals (at most
   * MAX_NOISE), or UNKNOWN_NOISE before MIN_FOR_NOISE observations.
   * Predictions closer than this are not told apart (see plan.ts).
   */
  noise: number;
}

/** What a model's fleet has learned: its cost shape (for tests and diagnostics). */
export interface ShapeSnapshot {
  exponent: number;
  theta: readonly number[];
  observations: number;
}

/**
 * The learned cost of requests, per (worker, model). `model` is the model
 * the worker serves (its `/v1/models` id), so that a FLUX worker's speed
 * never mixes with a Qwen-Image worker's.
 */
export class CostModel {
  /** By worker URL, then model: two lookups of strings the caller holds, no key built per prediction. */
  readonly #workers = new Map<string, Map<string, WorkerModel>>();
  readonly #fleets = new Map<string, FleetModel>();
  /** A worker's speed across models, for a model it has not served yet. */
  readonly #speedByWorker = new Map<string, number>();

  #fleet(model: string): FleetModel {
    let f = this.#fleets.get(model);
    if (!f) {
      f = { shape: COLD_SHAPE, window: new Window(FLEET_WINDOW), members: new Set(), slowestLogSpeed: 0, typicalMs: 0, refit: { pending: 0, lastFitMs: -Infinity } };
      this.#fleets.set(model, f);
    }
    return f;
  }

  #worker(workerUrl: string, model: string): WorkerModel {
    let byModel = this.#workers.get(workerUrl);
    if (byModel === undefined) {
      byModel = new Map();
      this.#workers.set(workerUrl, byModel);
    }
    let w = byModel.get(model);
    if (!w) {
      const speed = this.#speedByWorker.get(workerUrl);
      const pace = { logSpeed: speed === undefined ? 0 : Math.log(speed), tilt: 0 };
      w = { window: new Window(WINDOW), pace, paced: speed !== undefined, coldLogSpeed: Number.NaN, typicalMs: 0, warmedUp: false, refit: { pending: 0, lastFitMs: -Infinity }, noise: Number.NaN };
      byModel.set(model, w);
    }
    return w;
  }

  /**
   * Predicted service time in ms of `work` on a worker (unknown work: the
   * model's typical cost on it). A worker not measured yet is assumed as
   * slow as the slowest measured one, or as its cold start showed if that
   * was faster: a large request is not planned onto a GPU that may be the
   * slowest (through HTTP a burst arrives over several event-loop turns,
   * and a fleet of known fast workers with a few unknown ones would
   * otherwise treat them as equals).
   */
  predictMs(workerUrl: string, model: string, work: WorkFeatures | null): number {
    const w = this.#worker(workerUrl, model);
    const fleet = this.#fleet(model);
    const pace = w.paced ? w.pace : { logSpeed: provisionalLogSpeed(w, fleet), tilt: 0 };
    if (work === null) {
      if (w.typicalMs > 0) return w.typicalMs;
      return fleet.typicalMs > 0 ? fleet.typicalMs / Math.exp(pace.logSpeed) : paceMs(fleet.shape, pace, defaultPoint);
    }
    return Math.max(1, paceMs(fleet.shape, pace, pointOf(work)));
  }

  /** Predicted time on the fleet's average worker: the priority of a request in the queue. Creates nothing. */
  referenceMs(model: string, work: WorkFeatures | null): number {
    const f = this.#fleets.get(model);
    if (work === null && f !== undefined && f.typicalMs > 0) return f.typicalMs;
    return Math.max(1, shapeMs(f?.shape ?? COLD_SHAPE, work === null ? defaultPoint : pointOf(work)));
  }

  /**
   * One observed service time. `work` is the request's (null: unknown, which
   * only updates the typical cost). Times of 0 or less, or not finite, are
   * ignored. `nowMs` (when it ended) paces the refits (see refitDue).
   */
  observe(workerUrl: string, model: string, work: WorkFeatures | null, serviceMs: number, nowMs?: number): void {
    if (!(serviceMs > 0) || !Number.isFinite(serviceMs)) return;
    const fleet = this.#fleet(model);
    const w = this.#worker(workerUrl, model);
    // A worker's first request is not its speed: a new connection, a cold
    // JIT, a real worker's first-run compilation make it several times
    // slower, and a worker judged slow by it would never be tried again.
    if (!w.warmedUp) {
      w.warmedUp = true;
      if (work !== null) w.coldLogSpeed = Math.log(Math.max(1e-3, shapeMs(fleet.shape, pointOf(work))) / serviceMs);
      return;
    }
    fleet.typicalMs = fleet.typicalMs === 0 ? serviceMs : 0.9 * fleet.typicalMs + 0.1 * serviceMs;
    w.typicalMs = w.typicalMs === 0 ? serviceMs : 0.9 * w.typicalMs + 0.1 * serviceMs;
    if (work === null) return;
    const sample = { p: pointOf(work), t: serviceMs, worker: w };
    w.window.push(sample);
    fleet.window.push(sample);
    fleet.members.add(w);
    w.paced = true;
    if (refitDue(fleet.refit, fleet.window.items.length, fleet.members.size, nowMs)) this.#refitFleet(fleet);
    else if (paceDue(w.refit, nowMs)) w.pace = paceOf(w, fleet.shape);
    else return;
    // A run of answers far off its pace, all one way: the worker changed; what it did before no longer counts.
    const items = w.window.items;
    const change = changeStart(
      items.map((s) => s.p),
      items.map((s) => s.t),
      fleet.shape,
      w.pace,
    );
    if (change > 0) {
      const before = new Set(items.splice(0, change));
      removeFrom(fleet.window, (s) => before.has(s));
      w.pace = paceOf(w, fleet.shape);
    }
    w.noise = measureNoise(w, fleet.shape);
    this.#speedByWorker.set(workerUrl, Math.exp(w.pace.logSpeed));
  }

  /**
   * The shape and every member's pace, in turn: the shape from observations
   * brought to a common speed by the paces, then the paces against the new
   * shape, their average speed brought back to 1 (the shape absorbs it).
   */
  #refitFleet(fleet: FleetModel): void {
    // A worker with one observation teaches its speed, not the shape: any
    // shape fits one point once its speed is free. Its shape information
    // starts with a second observation (a ratio of two sizes).
    const items = fleet.window.items.filter((s) => s.worker.window.items.length >= 2);
    const points = items.map((s) => s.p);
    // A worker whose times scatter (a loaded host) teaches the shape less: weight 1 / σ², σ of 2% or more.
    const trust = items.map((s) => 1 / Math.max(0.02, Number.isNaN(s.worker.noise) ? UNKNOWN_NOISE : s.worker.noise) ** 2);
    const rounds = fleet.window.items.length < 2 * LEARNING_OBSERVATIONS ? LEARNING_ALTERNATIONS : ALTERNATIONS;
    for (let round = 0; round < rounds; round++) {
      if (items.length > 0) {
        const common = items.map((s) => s.t * Math.exp(s.worker.pace.logSpeed + s.worker.pace.tilt * s.p.logMp));
        fleet.shape = fitShape(points, common, fleet.shape, trust);
      }
      let sum = 0;
      let count = 0;
      for (const m of fleet.members) {
        m.pace = paceOf(m, fleet.shape);
        sum += m.pace.logSpeed * m.window.items.length;
        count += m.window.items.length;
      }
      const g = count > 0 ? sum / count : 0;
      fleet.slowestLogSpeed = 0;
      for (const m of fleet.members) {
        m.pace.logSpeed -= g;
        fleet.slowestLogSpeed = Math.min(fleet.slowestLogSpeed, m.pace.logSpeed);
      }
      fleet.shape = { e: fleet.shape.e, theta: fleet.shape.theta.map((v) => v * Math.exp(-g)) };
    }
  }

  snapshot(workerUrl: string, model: string): CostModelSnapshot {
    const w = this.#workers.get(workerUrl)?.get(model);
    const noise = w === undefined || Number.isNaN(w.noise) ? UNKNOWN_NOISE : w.noise;
    const speed = w !== undefined ? Math.exp(w.pace.logSpeed) : (this.#speedByWorker.get(workerUrl) ?? 1);
    return { speed, observations: w?.window.items.length ?? 0, noise };
  }

  /** The cost shape learned for a model (the cold prior before any observation). */
  shape(model: string): ShapeSnapshot {
    const f = this.#fleets.get(model);
    const s = f?.shape ?? COLD_SHAPE;
    return { exponent: s.e, theta: s.theta, observations: f?.window.items.length ?? 0 };
  }

  /** Forgets a worker (removed from the pool): its observations no longer teach any model's shape. */
  forget(workerUrl: string): void {
    const byModel = this.#workers.get(workerUrl);
    this.#workers.delete(workerUrl);
    this.#speedByWorker.delete(workerUrl);
    if (byModel === undefined) return;
    for (const [model, w] of byModel) {
      const fleet = this.#fleets.get(model);
      if (fleet === undefined || !fleet.members.delete(w)) continue;
      removeFrom(fleet.window, (s) => s.worker === w);
    }
  }
}

/** ln speed assumed for a worker not measured yet: the slowest measured one's, or its cold start's if that was faster. */
function provisionalLogSpeed(w: WorkerModel, fleet: FleetModel): number {
  return Number.isNaN(w.coldLogSpeed) ? fleet.slowestLogSpeed : Math.max(fleet.slowestLogSpeed, Math.min(0, w.coldLogSpeed));
}

function removeFrom<T>(window: Window<T>, drop: (item: T) => boolean): void {
  const kept = window.items.filter((s) => !drop(s));
  window.items.length = 0;
  window.items.push(...kept);
}

function paceOf(w: WorkerModel, shape: Shape): Pace {
  const items = w.window.items;
  return fitPace(
    items.map((s) => s.p),
    items.map((s) => s.t),
    shape,
  );
}

function measureNoise(w: WorkerModel, shape: Shape): number {
  const items = w.window.items;
  if (items.length < MIN_FOR_NOISE) return Number.NaN;
  const recent = items.slice(-NOISE_WINDOW);
  return Math.min(MAX_NOISE, robustSigma(recent.map((s) => s.t / Math.max(1, paceMs(shape, w.pace, s.p)) - 1)));
}
