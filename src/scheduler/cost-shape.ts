/**
 * The shape of a model's cost, shared by every worker that serves it, and
 * each worker's own pace against it.
 *
 * Shape (per model): t = θ0 + θ1·outputs + θ2·u + θ3·u·mp^(e−1), where
 * u = megapixels × steps × latent frames × outputs (the denoiser's work if it
 * were linear in pixels) and mp = megapixels per frame. θ0 is the fixed part
 * of a request, θ1 a fixed part per output (decoding, encoding a picture),
 * θ2 the linear part of the denoiser and θ3·u·mp^(e−1) what grows faster than
 * the pixels (attention over the latent tokens); e, the exponent, is learned
 * per model (e = 2 is attention's quadratic cost; a power law u·mp^0.4 is a
 * cost ~ pixels^1.4). Every worker's observations teach the shape, brought to
 * a common speed first, so a size one worker never ran is predicted from
 * what the others learned.
 *
 * Pace (per worker and model): t = shape / speed × mp^(−tilt): a speed
 * factor, learned from one observation once the shape is known, and a tilt
 * (GPUs of two kinds differ in how fast their cost grows with pixels, not
 * only by a factor), shrunk toward 0 until the worker's sizes spread. Recent
 * observations count more (a GPU that slows down is seen within a few
 * requests). Pure.
 */
import type { WorkFeatures } from "./request-facts.js";
import { huberWeights, nonNegativeRidge, type Row } from "./cost-fit.js";

/** One request's work, reduced to what the shape reads. */
export interface Point {
  /** ln(megapixels per frame). */
  readonly logMp: number;
  readonly outputs: number;
  /** megapixels × steps × latent frames × outputs, plus 0.25 per input image (its encoding). */
  readonly u: number;
}

export interface Shape {
  /** The pixel exponent of the last term. */
  readonly e: number;
  /** [fixed ms, ms per output, ms per unit of u, ms per unit of u·mp^(e−1)], each ≥ 0. */
  readonly theta: readonly number[];
}

export interface Pace {
  /** ln(speed): 0 = the fleet's average worker for the model. */
  logSpeed: number;
  /** Cost grows as mp^(−tilt) on this worker relative to the shape (0: the shape as is). */
  tilt: number;
}

export function pointOf(w: WorkFeatures): Point {
  return { logMp: Math.log(w.megapixels), outputs: w.outputs, u: w.megapixels * w.steps * w.latentFrames * w.outputs + 0.25 * w.inputImages };
}

function features(e: number, p: Point): number[] {
  return [1, p.outputs, p.u, p.u * Math.exp((e - 1) * p.logMp)];
}

export function shapeMs(s: Shape, p: Point): number {
  const th = s.theta;
  return th[0]! + th[1]! * p.outputs + th[2]! * p.u + th[3]! * p.u * Math.exp((s.e - 1) * p.logMp);
}

/** Predicted ms of `p` on a worker at `pace`. */
export function paceMs(s: Shape, pace: Pace, p: Point): number {
  return shapeMs(s, p) * Math.exp(-pace.logSpeed - pace.tilt * p.logMp);
}

/**
 * Before anything is observed: 20 ms per request and 8 ms per unit of u (a
 * 1024², 50-step image ≈ 420 ms on an H100-class GPU), the exponent of
 * a DiT whose attention is a modest share at 1 MP.
 */
export const COLD_SHAPE: Shape = { e: 1, theta: [20, 0, 0, 8] };

/** The exponents searched: sublinear (0.8) to beyond attention's quadratic (2.6). */
const E_MIN = 0.8;
const E_MAX = 2.6;
const E_COARSE_STEP = 0.2;
const E_REFINE_ROUNDS = 10;
/** Pull of the exponent toward the previous one (squared relative error per unit of e²): decides only when the data cannot, e.g. every request of one size. */
const E_PULL = 0.001;
/** A default request's features, the scale of each term's ridge. */
const DEFAULT_POINT: Point = { logMp: 0, outputs: 1, u: 50 };

/**
 * Fits the shape to `points` with times `t` (already at a common speed):
 * non-negative terms, squared relative error (a 20% miss on a small request
 * counts as one on a large request), Huber-reweighted, the exponent by a
 * coarse grid and then golden-section search. `prior` is the previous shape:
 * its terms are the ridge's target and its exponent the tie-breaker.
 * `trust` weighs each observation (its worker's precision: a worker whose
 * times scatter teaches the shape less).
 */
export function fitShape(points: readonly Point[], t: readonly number[], prior: Shape, trust?: readonly number[]): Shape {
  const n = points.length;
  if (n === 0) return prior;
  let mean = 0;
  for (const x of t) mean += x / n;
  const base = t.map((x, i) => Math.min(100, Math.max(0.01, (mean / x) ** 2)) * (trust?.[i] ?? 1));
  let weights = base;
  let best = searchExponent(points, t, weights, prior, mean);
  const residuals = points.map((p, i) => (t[i]! - shapeMs(best, p)) / t[i]!);
  const huber = huberWeights(residuals, 0.05);
  weights = base.map((w, i) => w * huber[i]!);
  best = searchExponent(points, t, weights, prior, mean, best.e);
  return best;
}

function searchExponent(points: readonly Point[], t: readonly number[], w: readonly number[], prior: Shape, mean: number, around?: number): Shape & { cost: number } {
  const scale = DEFAULT_POINT_FEATURES.map((d, k) => {
    let s = d;
    for (const p of points) s = Math.max(s, Math.abs(features(prior.e, p)[k]!));
    return s;
  });
  const at = (e: number) => solveAt(points, t, w, prior, e, scale, mean);
  let best = at(around ?? prior.e);
  if (around === undefined) {
    for (let e = E_MIN; e <= E_MAX + 1e-9; e += E_COARSE_STEP) {
      const s = at(e);
      if (s.cost < best.cost) best = s;
    }
  }
  // Golden-section search around the best of the grid.
  let lo = Math.max(E_MIN, best.e - E_COARSE_STEP);
  let hi = Math.min(E_MAX, best.e + E_COARSE_STEP);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = at(hi - g * (hi - lo));
  let b = at(lo + g * (hi - lo));
  for (let k = 0; k < E_REFINE_ROUNDS; k++) {
    if (a.cost <= b.cost) {
      hi = b.e;
      b = a;
      a = at(hi - g * (hi - lo));
    } else {
      lo = a.e;
      a = b;
      b = at(lo + g * (hi - lo));
    }
  }
  for (const s of [a, b]) if (s.cost < best.cost) best = s;
  return best;
}

const DEFAULT_POINT_FEATURES = features(1, DEFAULT_POINT);

function solveAt(points: readonly Point[], t: readonly number[], w: readonly number[], prior: Shape, e: number, scale: readonly number[], mean: number): Shape & { cost: number } {
  const rows: Row[] = points.map((p, i) => ({ x: features(e, p), t: t[i]!, w: w[i]! }));
  const theta = nonNegativeRidge(rows, prior.theta, scale);
  let err = 0;
  let wsum = 0;
  for (const r of rows) {
    let pred = 0;
    for (let k = 0; k < theta.length; k++) pred += theta[k]! * r.x[k]!;
    err += r.w * (r.t - pred) ** 2;
    wsum += r.w;
  }
  return { e, theta, cost: err / (wsum * mean * mean) + E_PULL * (e - prior.e) ** 2 };
}

/** Observations of a worker lose half their weight in this many newer ones (a change of speed is {@link changeStart}'s). */
const PACE_HALF_LIFE = 4;
/** A tilt is fitted from this many observations on: with fewer, a tilt per worker would absorb what the shape must learn. */
const TILT_MIN_OBSERVATIONS = 8;
/** Ridge on the tilt, in observations × ln(mp)²: a tilt needs many observations whose sizes spread. */
const TILT_RIDGE = 8;
const MAX_TILT = 0.5;

/**
 * A worker's pace against `shape` from its observations in arrival order
 * (oldest first): ln(shape / t) = ln speed + tilt·ln mp. The tilt is a
 * property of the GPU: all observations count alike, ridge-shrunk toward 0.
 * The speed may change: recent observations count more, with two Huber
 * rounds (a stall is not a slowdown).
 */
export function fitPace(points: readonly Point[], t: readonly number[], shape: Shape): Pace {
  const n = points.length;
  if (n === 0) return { logSpeed: 0, tilt: 0 };
  // Allocation-free (module buffers): a fleet refit re-paces every member, a thousand fits on a
  // thousand workers, and their per-fit arrays were the refit's time and much of the GC.
  const { r, level, w, res } = paceBuffers(n);
  for (let i = 0; i < n; i++) r[i] = Math.log(Math.max(1e-3, shapeMs(shape, points[i]!)) / t[i]!);
  const tilt = n >= TILT_MIN_OBSERVATIONS ? fitTilt(points, r, n) : 0;
  for (let i = 0; i < n; i++) level[i] = r[i]! - tilt * points[i]!.logMp;
  // Recency weights (0.5 per PACE_HALF_LIFE answers back), computed once.
  const recency = RECENCY;
  const back = n - 1;
  let logSpeed = weightedMean(level, n, (i) => recencyOf(recency, back - i));
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < n; i++) res[i] = level[i]! - logSpeed;
    const k = huberK(res, n, 0.05);
    for (let i = 0; i < n; i++) w[i] = recencyOf(recency, back - i) * huberWeight(res[i]!, k);
    logSpeed = weightedMean(level, n, (i) => w[i]!);
  }
  return { logSpeed, tilt };
}

/** ln-speed fit buffers, grown to the longest window seen. */
let PACE_BUFFERS = { r: new Float64Array(64), level: new Float64Array(64), w: new Float64Array(64), res: new Float64Array(64), abs: new Float64Array(64) };
function paceBuffers(n: number): typeof PACE_BUFFERS {
  if (PACE_BUFFERS.r.length < n) {
    const m = Math.max(n, 2 * PACE_BUFFERS.r.length);
    PACE_BUFFERS = { r: new Float64Array(m), level: new Float64Array(m), w: new Float64Array(m), res: new Float64Array(m), abs: new Float64Array(m) };
  }
  return PACE_BUFFERS;
}

/** 0.5^(k / PACE_HALF_LIFE) for k answers back (the same values Math.pow gives each time). */
const RECENCY = Array.from({ length: 256 }, (_, k) => Math.pow(0.5, k / PACE_HALF_LIFE));
function recencyOf(table: readonly number[], k: number): number {
  return k < table.length ? table[k]! : Math.pow(0.5, k / PACE_HALF_LIFE);
}

/** Σ w·x / Σ w over the first n (0 when the weights sum to 0), summed in index order. */
function weightedMean(xs: ArrayLike<number>, n: number, w: (i: number) => number): number {
  let s = 0;
  let sw = 0;
  for (let i = 0; i < n; i++) {
    const wi = w(i);
    s += wi * xs[i]!;
    sw += wi;
  }
  return sw > 0 ? s / sw : 0;
}

/** Huber's threshold for the first n residuals: 2.5 robust σ (cost-fit.ts's huberWeights), at least `floor`. */
function huberK(res: Float64Array, n: number, floor: number): number {
  const abs = PACE_BUFFERS.abs.length >= n ? PACE_BUFFERS.abs : new Float64Array(n);
  for (let i = 0; i < n; i++) abs[i] = Math.abs(res[i]!);
  const s = abs.subarray(0, n).sort();
  const m = n >> 1;
  const med = n % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  return Math.max(2.5 * (1.4826 * med), floor);
}

function huberWeight(r: number, k: number): number {
  return Math.abs(r) <= k ? 1 : k / Math.abs(r);
}

/** Slope of r over ln mp (centred), ridge-shrunk toward 0, capped at ±MAX_TILT; Huber-weighted once. */
function fitTilt(points: readonly Point[], r: Float64Array, n: number): number {
  const w = PACE_BUFFERS.w;
  const res = PACE_BUFFERS.res;
  const slope = (weight: (i: number) => number) => {
    let sl = 0;
    let sw = 0;
    for (let i = 0; i < n; i++) {
      const wi = weight(i);
      sl += wi * points[i]!.logMp;
      sw += wi;
    }
    const l = sw > 0 ? sl / sw : 0;
    const rm = weightedMean(r, n, weight);
    let sxy = 0;
    let sxx = 0;
    for (let i = 0; i < n; i++) {
      const p = points[i]!;
      sxy += weight(i) * (p.logMp - l) * (r[i]! - rm);
      sxx += weight(i) * (p.logMp - l) ** 2;
    }
    return { c: sxy / (sxx + TILT_RIDGE), l, rm };
  };
  const first = slope(() => 1);
  for (let i = 0; i < n; i++) res[i] = r[i]! - first.rm - first.c * (points[i]!.logMp - first.l);
  const k = huberK(res, n, 0.05);
  for (let i = 0; i < n; i++) w[i] = huberWeight(res[i]!, k);
  return Math.max(-MAX_TILT, Math.min(MAX_TILT, slope((i) => w[i]!).c));
}

/**
 * Answers in a row off the pace, all in one direction, that mean the worker
 * changed (not a stall). Two, not three: a GPU that became 3x slower kept its
 * old speed through Huber's down-weighting until the run showed, and the
 * plan meanwhile sent it requests sized for the old speed (issue 20). One
 * answer alone may be a stall; LoadBook bridges it (its last miss stretches
 * the worker's predictions until its next answer).
 */
const CHANGE_RUN = 2;
const CHANGE_MIN_OBSERVATIONS = 8;
/** How far off (ln): 25%. */
const CHANGE_LOG = Math.log(1.25);

/**
 * Where a change of the worker's speed began: the start of the run of its
 * latest answers that are all more than 25% slower (or all faster) than
 * `pace` predicts, when that run is at least 2 long and does not cover every
 * observation, on a worker with at least 8; else -1. Observations before it
 * no longer describe the worker (another tenant, a throttled GPU, and back).
 */
export function changeStart(points: readonly Point[], t: readonly number[], shape: Shape, pace: Pace): number {
  const n = points.length;
  // With few observations the pace itself is young (recency weighting follows fast enough), and a
  // run of misses may be the shape still being learned.
  if (n < CHANGE_MIN_OBSERVATIONS) return -1;
  const off = (i: number) => Math.log(paceMs(shape, pace, points[i]!) / t[i]!);
  const sign = Math.sign(off(n - 1));
  let start = n;
  while (start > 0 && Math.abs(off(start - 1)) > CHANGE_LOG && Math.sign(off(start - 1)) === sign) start--;
  return n - start >= CHANGE_RUN && start > 0 ? start : -1;
}
