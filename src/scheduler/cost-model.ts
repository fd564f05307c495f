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
import { FleetRefit, paceOf, UNKNOWN_NOISE, Window, type FleetModel, type RefitClock, type WorkerModel } from "./cost-refit.js";
import { changeStart, COLD_SHAPE, paceMs, pointOf, shapeMs, type Shape } from "./cost-shape.js";
import type { WorkFeatures } from "./request-facts.js";

/** Observations kept per (worker, model): old enough ones no longer describe the worker (new weights, a changed GPU clock). */
const WINDOW = 64;
/** Observations kept per model to fit its shape, across its workers. */
const FLEET_WINDOW = 128;
/** A worker's scatter (noise) is measured from this many observations on; before, it is taken to be UNKNOWN_NOISE. */
const MIN_FOR_NOISE = 4;
/** Scatter is measured over the most recent observations only: a worker that changed speed is not noisy for long. */
const NOISE_WINDOW = 16;
/**
 * Scatter is capped here: workers whose predictions differ by more are told
 * apart however noisy their times (a GPU 0.4x as fast is never a tie).
 */
const MAX_NOISE = 0.5;

/** A typical request: the worker's defaults (1024x1024, 50 steps, one image). */
const defaultPoint = pointOf({ megapixels: 1, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 });

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
export interface CostModelOptions {
  /**
   * Runs a slice of a large fleet's refit later (the router: setImmediate,
   * so that no turn of its event loop carries a whole refit). Without it
   * every refit runs at once, within observe (pure: as tests use it).
   */
  defer?: (slice: () => void) => void;
  /** Members re-paced per slice (default SLICE_MEMBERS). */
  sliceMembers?: number;
}

/**
 * Fleets of more members than this refit in slices (when given a defer): at
 * 1,024 a whole refit is ~5 ms of CPU; up to 256 it is one slice's worth
 * (~1 ms), and 256-worker warm-ups measured worse with slices (median 1.15
 * against 1.08 of the bound, 6 runs each: docs/benchmarks.md, Scale part 6).
 */
const SLICED_FROM = 256;
/**
 * Members re-paced per slice: a pace fit of 64 observations is ~2.5 µs, so
 * a slice is ~2.5 ms of CPU, far under a long turn. Fewer per slice would
 * spread a refit over more turns (34 at 4,096 workers with 256), during
 * which predictions use the old fit.
 */
const SLICE_MEMBERS = 1024;

export class CostModel {
  readonly #defer: ((slice: () => void) => void) | undefined;
  readonly #sliceMembers: number;
  /** By worker URL, then model: two lookups of strings the caller holds, no key built per prediction. */
  readonly #workers = new Map<string, Map<string, WorkerModel>>();
  readonly #fleets = new Map<string, FleetModel>();
  /** A worker's speed across models, for a model it has not served yet. */
  readonly #speedByWorker = new Map<string, number>();
  /** Fleet refits put in place so far (any model): the queue re-keys its requests when this moves (admission/queue-keys.ts). */
  #shapesReplaced = 0;

  constructor(options: CostModelOptions = {}) {
    this.#defer = options.defer;
    this.#sliceMembers = options.sliceMembers ?? SLICE_MEMBERS;
  }

  /**
   * How many times a fleet's shape (and its members' paces) was replaced:
   * a count that moves at each refit put in place, at once or at a sliced
   * refit's end. Reading it is free; what depends on the shape (the queue's
   * keys) is recomputed only when it moved.
   */
  get shapesReplaced(): number {
    return this.#shapesReplaced;
  }

  #fleet(model: string): FleetModel {
    let f = this.#fleets.get(model);
    if (!f) {
      f = { shape: COLD_SHAPE, window: new Window(FLEET_WINDOW), members: new Set(), slowestLogSpeed: 0, typicalMs: 0, refit: { pending: 0, lastFitMs: -Infinity }, refitting: null };
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
      w = { window: new Window(WINDOW), added: 0, pace, paced: speed !== undefined, coldLogSpeed: Number.NaN, typicalMs: 0, warmedUp: false, refit: { pending: 0, lastFitMs: -Infinity }, noise: Number.NaN };
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
    w.added++;
    fleet.window.push(sample);
    fleet.members.add(w);
    w.paced = true;
    // While a sliced refit is under way, the next one waits for it (this answer is in its members'
    // windows by its end); its answers still count toward the next, so refits come as often as before.
    if (fleet.refitting !== null) fleet.refit.pending++;
    if (fleet.refitting === null && refitDue(fleet.refit, fleet.window.items.length, fleet.members.size, nowMs)) {
      // (A worker forgotten before a sliced refit ended is not brought back.)
      const settle = () => fleet.members.has(w) && this.#settle(workerUrl, w, fleet);
      if (this.#refitFleet(fleet, settle)) settle();
      // Refitting in slices: meanwhile the answering worker is paced against the old shape (a worker's first
      // learned answer otherwise left it at the fleet's average speed for the refit's turns); the new fit re-paces it.
      else w.pace = paceOf(w, fleet.shape);
    } else if (paceDue(w.refit, nowMs)) {
      w.pace = paceOf(w, fleet.shape);
      this.#settle(workerUrl, w, fleet);
    }
  }

  /** After a worker's pace was fitted (alone or with its fleet): its change detection, scatter and cross-model speed. */
  #settle(workerUrl: string, w: WorkerModel, fleet: FleetModel): void {
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
   * The shape and every member's pace, in turn (cost-refit.ts): at once
   * (returns true), or on a fleet of more than SLICED_FROM members with a
   * `defer` given, in slices of `sliceMembers` paces, one per deferred turn
   * (returns false and calls `done` when the new fit is in place); predictions keep the old fit
   * until then. The answering worker's change detection and scatter wait
   * for the new fit, so that a refit in slices ends as the same refit at
   * once would have.
   */
  #refitFleet(fleet: FleetModel, done: () => void): boolean {
    const refit = new FleetRefit(fleet);
    const defer = this.#defer;
    if (defer === undefined || fleet.members.size <= SLICED_FROM) {
      refit.step(Infinity);
      this.#shapesReplaced++;
      return true;
    }
    fleet.refitting = refit;
    const slice = () => {
      if (!refit.step(this.#sliceMembers)) return defer(slice);
      fleet.refitting = null;
      this.#shapesReplaced++;
      done();
    };
    defer(slice);
    return false;
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

function measureNoise(w: WorkerModel, shape: Shape): number {
  const items = w.window.items;
  if (items.length < MIN_FOR_NOISE) return Number.NaN;
  const recent = items.slice(-NOISE_WINDOW);
  return Math.min(MAX_NOISE, robustSigma(recent.map((s) => s.t / Math.max(1, paceMs(shape, w.pace, s.p)) - 1)));
}
