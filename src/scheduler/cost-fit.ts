/**
 * The small linear algebra the cost model fits with: weighted least squares
 * with non-negative terms and a ridge toward a prior, Huber reweighting, and
 * robust statistics. Pure.
 */

/** Ridge per term toward the prior, in squared ms on a typical job: keeps a system defined when a term is absent from the data, and what was never observed near the prior. */
export const RIDGE_FLOOR = 0.003;

/** One observation: feature vector x (same length as θ) and time t (ms), with a weight. */
export interface Row {
  x: readonly number[];
  t: number;
  w: number;
}

/**
 * Weighted least squares, θ ≥ 0 (terms that come out negative are dropped
 * and the rest refitted), with a per-term ridge toward `prior`. `scale` is
 * each term's typical size (its feature on a default job or the largest
 * observed), so that the ridge means "ms on a typical job" for every term.
 */
export function nonNegativeRidge(rows: readonly Row[], prior: readonly number[], scale: readonly number[], ridge = RIDGE_FLOOR): number[] {
  const m = prior.length;
  let active = prior.map(() => true);
  for (let round = 0; round < m; round++) {
    const theta = ridgeSolve(rows, prior, scale, ridge, active);
    const negative = theta.findIndex((v, i) => active[i] && v < 0);
    if (negative < 0) return theta;
    active = active.map((a, i) => a && i !== negative);
  }
  return prior.map((p, i) => (active[i] ? Math.max(0, p) : 0));
}

/** A row's scaled features (ridgeSolve), reused. */
const SCALED = new Float64Array(8);

/** Normal equations (XᵀWX + λI)θ = XᵀWt + λ·prior over the active terms, in scaled units. */
function ridgeSolve(rows: readonly Row[], prior: readonly number[], scale: readonly number[], ridge: number, active: readonly boolean[]): number[] {
  const idx = prior.map((_, i) => i).filter((i) => active[i]);
  const n = idx.length;
  const A: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const rhs = new Array<number>(n).fill(0);
  // Each row's scaled features once (not once per pair: this loop is most of a shape fit, and a
  // fleet refit runs dozens of fits); the same divisions, so the same sums.
  const xs = n <= SCALED.length ? SCALED : new Float64Array(n);
  for (const r of rows) {
    for (let a = 0; a < n; a++) xs[a] = r.x[idx[a]!]! / scale[idx[a]!]!;
    for (let a = 0; a < n; a++) {
      const xa = xs[a]!;
      rhs[a]! += r.w * xa * r.t;
      for (let b = 0; b < n; b++) A[a]![b]! += r.w * xa * xs[b]!;
    }
  }
  for (let a = 0; a < n; a++) {
    A[a]![a]! += ridge;
    rhs[a]! += ridge * prior[idx[a]!]! * scale[idx[a]!]!;
  }
  const sol = gaussianSolve(A, rhs);
  const theta = prior.map(() => 0);
  idx.forEach((i, a) => (theta[i] = sol[a]! / scale[i]!));
  return theta;
}

export function gaussianSolve(A: number[][], b: number[]): number[] {
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

/**
 * Huber weights for residuals: within k = 2.5 robust σ (at least `floor`)
 * a residual counts fully, beyond it linearly, so a stall does not drag a fit.
 */
export function huberWeights(residuals: readonly number[], floor: number): number[] {
  const k = Math.max(2.5 * robustSigma(residuals), floor);
  return residuals.map((r) => (Math.abs(r) <= k ? 1 : k / Math.abs(r)));
}

/** 1.4826 × the median absolute value: σ for normal scatter, unmoved by a few stalls. */
export function robustSigma(residuals: readonly number[]): number {
  return 1.4826 * median(residuals.map(Math.abs));
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
