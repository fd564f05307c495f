/**
 * Learns how long a request takes on each worker, from the service times the
 * router observes, and predicts it for requests not yet sent.
 *
 * The shape: t = θ0 + θ1·u + θ2·u·mp, where u = megapixels × steps × latent
 * frames × outputs (the denoiser's work if its cost were linear in pixels)
 * and mp = megapixels per frame (attention over the latent tokens makes large
 * pictures cost more than their pixel count says). θ ≥ 0. Each (worker,
 * model) gets its own θ, fitted on its recent observations and pulled toward
 * the fleet's fit for that model scaled by the worker's speed, so that a new
 * worker is predicted from the fleet at once and a GPU of another kind learns
 * its own shape after a few requests. Outliers (a stall, a cold cache) are
 * down-weighted (Huber) so one of them does not move the fit. Pure: the
 * caller passes time in.
 */
import type { WorkFeatures } from "./request-facts.js";

/** Observations kept per (worker, model): old enough ones no longer describe the worker (new weights, a changed GPU clock). */
const WINDOW = 64;
/**
 * Weight of the prior (the fleet's shape at the worker's speed), in
 * observations. Small: a GPU of another kind has another shape, and with
 * u and u·mp nearly collinear a prior worth two observations held fits
 * far off (the bench's two GPU kinds, work-weighted prediction error of the
 * next burst after 1, 2, 3 bursts: kind A 56%, 3.5%, 1.4% and kind B 1.9%,
 * 8.6%, 5.9% with weight 2 and shape after 6 observations; A 12%, 1.4%,
 * 1.3% and B 0.5%, 0.2%, 0.3% with 0.05 and shape after 3). Outliers are
 * Huber's job, not the prior's.
 */
const PRIOR_WEIGHT = 0.05;
/**
 * Ridge per term toward the prior, in squared units of the largest observed
 * value of the term: keeps the system defined when a term is absent from
 * the data (every request of one size: u and u·mp exactly collinear), and
 * what was never observed near the prior.
 */
const RIDGE_FLOOR = 0.003;
/** Per-request overhead assumed before anything is observed, and the ms per unit of u (a 1024², 50-step image ≈ 400 ms on an H100-class GPU). */
const COLD_THETA: Theta = [20, 8, 0];
/** A worker's own shape is fitted once it has MIN_FOR_SHAPE observations spanning this ratio of work sizes; before, it is the fleet's shape at the worker's speed. */
const SPREAD_FOR_SHAPE = 3;
const MIN_FOR_SHAPE = 3;
/** A worker's scatter (noise) is measured from this many observations on; before, it is taken to be UNKNOWN_NOISE. */
const MIN_FOR_NOISE = 4;
const UNKNOWN_NOISE = 0.1;
/**
 * Scatter is capped here: workers whose predictions differ by more are told
 * apart however noisy their times (a GPU 0.4x as fast is never a tie).
 */
const MAX_NOISE = 0.5;

type Theta = [number, number, number];
type Vec = [number, number, number];

/** A typical request: the worker's defaults (1024x1024, 50 steps, one image). */
const defaultWork: WorkFeatures = { megapixels: 1, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 };

interface Observation {
  x: Vec;
  t: number;
}

class Window {
  readonly items: Observation[] = [];
  private next = 0;
  push(o: Observation): void {
    if (this.items.length < WINDOW) this.items.push(o);
    else {
      this.items[this.next] = o;
      this.next = (this.next + 1) % WINDOW;
    }
  }
}

export function featureVector(w: WorkFeatures): Vec {
  const u = w.megapixels * w.steps * w.latentFrames * w.outputs + 0.25 * w.inputImages;
  return [1, u, u * w.megapixels];
}

const defaultX = featureVector(defaultWork);

function dot(a: Vec, b: Vec): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/**
 * Weighted least squares with a ridge pull toward `prior`, θ ≥ 0 (terms that
 * come out negative are dropped and the rest refitted), then one Huber
 * reweighting round. Returns null when there is nothing to fit.
 */
export function fitTheta(obs: readonly Observation[], prior: Theta, priorWeight = PRIOR_WEIGHT): Theta {
  if (obs.length === 0) return prior;
  let weights = obs.map(() => 1);
  let meanT = 0;
  for (const o of obs) meanT += o.t / obs.length;
  let theta = solveNonNegative(obs, weights, prior, priorWeight);
  // Iteratively reweighted: residuals beyond k = 2.5 × MAD count linearly
  // (Huber), so a stalled request does not drag the fit. k has a floor of 5%
  // of the typical time: residuals of a near-perfect fit are rounding noise.
  for (let round = 0; round < 4; round++) {
    const residuals = obs.map((o) => Math.abs(o.t - dot(theta, o.x)));
    const sorted = [...residuals].sort((a, b) => a - b);
    const k = Math.max(2.5 * 1.4826 * sorted[Math.floor(sorted.length / 2)]!, 0.05 * meanT);
    weights = residuals.map((r) => (r <= k ? 1 : k / r));
    theta = solveNonNegative(obs, weights, prior, priorWeight);
  }
  return theta;
}

function solveNonNegative(obs: readonly Observation[], weights: readonly number[], prior: Theta, priorWeight: number): Theta {
  let active = [true, true, true];
  for (let round = 0; round < 3; round++) {
    const theta = solveRidge(obs, weights, prior, priorWeight, active);
    const negative = theta.findIndex((v, i) => active[i] && v < 0);
    if (negative < 0) return theta;
    active = active.map((a, i) => a && i !== negative);
  }
  return [0, 0, 0].map((_, i) => (active[i] ? Math.max(0, prior[i]!) : 0)) as Theta;
}

/** Normal equations (XᵀWX + λI)θ = XᵀWt + λ·prior over the active terms, scaled per term so the ridge is fair. */
function solveRidge(obs: readonly Observation[], weights: readonly number[], prior: Theta, priorWeight: number, active: boolean[]): Theta {
  const idx = [0, 1, 2].filter((i) => active[i]);
  const n = idx.length;
  // Each term is measured by what it adds to a default job (1 megapixel, 50
  // steps) or to the largest observed one: the ridge then says "a few
  // observations' worth of ms on a typical job", so a handful of small
  // requests cannot drag the per-pixel term of big ones anywhere.
  const scale = idx.map((i) => {
    let s = defaultX[i]!;
    for (const o of obs) s = Math.max(s, Math.abs(o.x[i]!));
    return s;
  });
  const A: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const rhs = new Array<number>(n).fill(0);
  let wsum = 0;
  obs.forEach((o, k) => {
    const w = weights[k]!;
    wsum += w;
    for (let a = 0; a < n; a++) {
      const xa = o.x[idx[a]!]! / scale[a]!;
      rhs[a]! += w * xa * o.t;
      for (let b = 0; b < n; b++) A[a]![b]! += w * xa * (o.x[idx[b]!]! / scale[b]!);
    }
  });
  // The prior counts as `priorWeight` observations spread over the points
  // observed, each answered with the prior's prediction there: it pulls the
  // predictions where the worker has been seen, not each term on its own
  // (per-term pulls, with u and u·mp nearly collinear, moved the split
  // between the two and put small and large requests 10-20% off in
  // opposite directions). A small per-term ridge keeps the system defined
  // and keeps what was never observed (far larger requests) near the prior.
  if (wsum > 0 && priorWeight > 0) {
    const pseudo = priorWeight / wsum;
    obs.forEach((o, k) => {
      const w = weights[k]! * pseudo;
      const target = dot(prior, o.x);
      for (let a = 0; a < n; a++) {
        const xa = o.x[idx[a]!]! / scale[a]!;
        rhs[a]! += w * xa * target;
        for (let b = 0; b < n; b++) A[a]![b]! += w * xa * (o.x[idx[b]!]! / scale[b]!);
      }
    });
  }
  for (let a = 0; a < n; a++) {
    const lambda = RIDGE_FLOOR;
    A[a]![a]! += lambda;
    rhs[a]! += lambda * prior[idx[a]!]! * scale[a]!;
  }
  const sol = gaussianSolve(A, rhs);
  const theta: Theta = [0, 0, 0];
  idx.forEach((i, a) => (theta[i] = sol[a]! / scale[a]!));
  return theta;
}

function gaussianSolve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    const d = M[c]![c]!;
    if (Math.abs(d) < 1e-12) continue;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / d;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  return M.map((row, i) => (Math.abs(row[i]!) < 1e-12 ? 0 : row[n]! / row[i]!));
}

interface WorkerModel {
  window: Window;
  theta: Theta;
  /** This worker's speed relative to the fleet fit of the model (2 = twice as fast). */
  speed: number;
  /** Its typical observed cost, for requests whose work is unknown. */
  typicalMs: number;
  /** Whether its first request ended: that one is not learned from (see observe). */
  warmedUp: boolean;
  refit: RefitClock;
  /** How far its observed times scatter around its fit (relative, robust σ); NaN until MIN_FOR_NOISE observations. */
  noise: number;
}

/** When a fit was last made, and how many observations came since (see {@link refitDue}). */
interface RefitClock {
  pending: number;
  lastFitMs: number;
}

interface FleetModel {
  theta: Theta;
  /** Observations of every worker, to fit the fleet's shape. */
  window: Window;
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
 * Whether to fit again. A fit (robust, non-negative, over the last 64
 * observations) costs tens of µs; doing one per answer took 40% of the
 * router's CPU under small answers (bench/profile.mjs). GPU workers answer a
 * few times a second, where this refits every few answers; nothing a
 * schedule can see is lost.
 */
function refitDue(clock: RefitClock, observations: number, nowMs: number | undefined): boolean {
  clock.pending++;
  const due = observations < LEARNING_OBSERVATIONS || clock.pending >= 16 * REFIT_EVERY || (clock.pending >= REFIT_EVERY && (nowMs === undefined || nowMs - clock.lastFitMs >= REFIT_MIN_INTERVAL_MS));
  if (due) {
    clock.pending = 0;
    if (nowMs !== undefined) clock.lastFitMs = nowMs;
  }
  return due;
}

export interface CostModelSnapshot {
  /** Speed relative to the fleet average for the worker's model (1 = average; 0.5 = half as fast). */
  speed: number;
  /** Observations the worker's own fit rests on. */
  observations: number;
  /**
   * How far one of its service times may be from the prediction, relative
   * (0.05 = 5%): the robust σ of its relative residuals (at most MAX_NOISE),
   * or UNKNOWN_NOISE before MIN_FOR_NOISE observations. Predictions closer
   * than this are not told apart (see plan.ts).
   */
  noise: number;
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
      f = { theta: [...COLD_THETA], window: new Window(), typicalMs: 0, refit: { pending: 0, lastFitMs: -Infinity } };
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
      const speed = this.#speedByWorker.get(workerUrl) ?? 1;
      w = { window: new Window(), theta: scaled(this.#fleet(model).theta, speed), speed, typicalMs: 0, warmedUp: false, refit: { pending: 0, lastFitMs: -Infinity }, noise: Number.NaN };
      byModel.set(model, w);
    }
    return w;
  }

  /** Predicted service time in ms of `work` on a worker (unknown work: the model's typical cost on it). */
  predictMs(workerUrl: string, model: string, work: WorkFeatures | null): number {
    const w = this.#worker(workerUrl, model);
    if (work === null) {
      if (w.typicalMs > 0) return w.typicalMs;
      const typical = this.#fleet(model).typicalMs;
      return typical > 0 ? typical / w.speed : dot(w.theta, featureVector(defaultWork));
    }
    return Math.max(1, dot(w.theta, featureVector(work)));
  }

  /** Predicted time on the fleet's average worker: the priority of a request in the queue. Creates nothing. */
  referenceMs(model: string, work: WorkFeatures | null): number {
    const f = this.#fleets.get(model) ?? { theta: COLD_THETA, typicalMs: 0 };
    if (work === null) return f.typicalMs > 0 ? f.typicalMs : dot(f.theta, featureVector(defaultWork));
    return Math.max(1, dot(f.theta, featureVector(work)));
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
      return;
    }
    fleet.typicalMs = fleet.typicalMs === 0 ? serviceMs : 0.9 * fleet.typicalMs + 0.1 * serviceMs;
    w.typicalMs = w.typicalMs === 0 ? serviceMs : 0.9 * w.typicalMs + 0.1 * serviceMs;
    if (work === null) return;
    const x = featureVector(work);
    w.window.push({ x, t: serviceMs });
    // The fleet's fit is on raw observations: an average worker. (Bringing
    // them to a common speed first would use speeds measured against this
    // very fit, which then only learns its own predictions back.)
    fleet.window.push({ x, t: serviceMs });
    if (refitDue(fleet.refit, fleet.window.items.length, nowMs)) fleet.theta = fitTheta(fleet.window.items, COLD_THETA, 0.5);
    if (!refitDue(w.refit, w.window.items.length, nowMs)) return;
    // Speed: how much faster than the fleet's fit this worker was (median, robust).
    const ratios = w.window.items.map((o) => dot(fleet.theta, o.x) / o.t).filter((r) => Number.isFinite(r) && r > 0);
    if (ratios.length > 0) w.speed = median(ratios);
    this.#speedByWorker.set(workerUrl, w.speed);
    const prior = scaled(fleet.theta, w.speed);
    w.theta = hasSpread(w.window.items) ? fitTheta(w.window.items, prior) : prior;
    w.noise = w.window.items.length >= MIN_FOR_NOISE ? Math.min(MAX_NOISE, robustSigma(w.window.items.map((o) => o.t / Math.max(1, dot(w.theta, o.x)) - 1))) : Number.NaN;
  }

  snapshot(workerUrl: string, model: string): CostModelSnapshot {
    const w = this.#workers.get(workerUrl)?.get(model);
    const noise = w === undefined || Number.isNaN(w.noise) ? UNKNOWN_NOISE : w.noise;
    return { speed: w?.speed ?? this.#speedByWorker.get(workerUrl) ?? 1, observations: w?.window.items.length ?? 0, noise };
  }

  /** Forgets a worker (removed from the pool). */
  forget(workerUrl: string): void {
    this.#workers.delete(workerUrl);
    this.#speedByWorker.delete(workerUrl);
  }
}


function hasSpread(obs: readonly Observation[]): boolean {
  if (obs.length < MIN_FOR_SHAPE) return false;
  let lo = Infinity;
  let hi = 0;
  for (const o of obs) {
    lo = Math.min(lo, o.x[1]);
    hi = Math.max(hi, o.x[1]);
  }
  return lo > 0 && hi / lo >= SPREAD_FOR_SHAPE;
}

function scaled(theta: Theta, speed: number): Theta {
  return [theta[0] / speed, theta[1] / speed, theta[2] / speed];
}

/** 1.4826 × the median absolute value: σ for normal scatter, unmoved by a few stalls. */
function robustSigma(residuals: number[]): number {
  return 1.4826 * median(residuals.map(Math.abs));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
