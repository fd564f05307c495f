/**
 * Packing a burst's queued requests onto workers so that the last one
 * finishes as early as possible (makespan on unrelated machines: each worker
 * has its own cost for each request, as two GPU kinds whose cost grows
 * differently with pixels do).
 *
 * Largest-first earliest-finish (the plan's first pass) is within a few
 * percent of the optimum on workers of one kind, but with two kinds it
 * spends the efficient kind's time on requests the other kind does nearly
 * as well: on the bench's two-kind bursts it ends 3–7% above the fractional
 * bound where 1–2% is possible. Two cheap steps close most of that:
 *
 * - several greedy passes that charge a request for the time it wastes on a
 *   worker that is not its most efficient one (finish + α × (cost − best
 *   cost), α in {0.25, 0.5, 1, 2}), the best of which starts the search;
 * - a local search over pairs of workers: move a request, or swap two, when
 *   that lowers the larger of the two loads, or cuts total work without
 *   raising it, never above the current makespan.
 *
 * Offline on the bench's `kinds` bursts (bench/lib/fleets.mjs, exact costs):
 * LPT 1.032–1.066 of the bound, this 1.010–1.016; random-restart search finds
 * 1.010–1.026, so little is left. Pure and deterministic; the work is bounded
 * by a step budget, not a clock, so tests replay exactly.
 */

/** A packing problem over dense arrays (worker indices 0..W-1). */
export interface PackProblem {
  /** Work (ms) each worker has before any of these items. */
  readonly base: Float64Array;
  /** Time (ms) of item i on worker w at [i * W + w]; Infinity where w may not serve i. */
  readonly cost: Float64Array;
  /** Item count. */
  readonly n: number;
  /** Worker count. */
  readonly w: number;
}

/** Waste charges of the greedy passes (0, plain earliest-finish, is the caller's own pass). */
const ALPHAS = [0.25, 0.5, 1, 2];
/** Below this (ms), differences are noise. */
const EPS = 0.5;

/** Loads of an assignment (worker index per item, -1 = unassigned). */
export function loadsOf(p: PackProblem, assign: Int32Array): Float64Array {
  const load = Float64Array.from(p.base);
  for (let i = 0; i < p.n; i++) {
    const w = assign[i]!;
    if (w >= 0) load[w]! += p.cost[i * p.w + w]!;
  }
  return load;
}

export function maxOf(a: Float64Array): number {
  let m = -Infinity;
  for (const v of a) if (v > m) m = v;
  return m;
}

/**
 * Greedy in `order`: each item to the worker minimising finish + α × waste.
 * Items with no finite cost stay unassigned (-1).
 */
export function greedyPack(p: PackProblem, order: readonly number[], alpha: number): Int32Array {
  const assign = new Int32Array(p.n).fill(-1);
  const load = Float64Array.from(p.base);
  for (const i of order) {
    const row = i * p.w;
    let best = Infinity;
    for (let w = 0; w < p.w; w++) best = Math.min(best, p.cost[row + w]!);
    if (best === Infinity) continue;
    let at = -1;
    let atScore = Infinity;
    for (let w = 0; w < p.w; w++) {
      const c = p.cost[row + w]!;
      if (c === Infinity) continue;
      const score = load[w]! + c + alpha * (c - best);
      if (score < atScore) {
        atScore = score;
        at = w;
      }
    }
    assign[i] = at;
    load[at]! += p.cost[row + at]!;
  }
  return assign;
}

/**
 * Pairwise local search, in place. Stops when a full pass changes nothing or
 * after `budget` candidate checks. Returns the makespan.
 */
export function improvePack(p: PackProblem, assign: Int32Array, budget: number): number {
  const { n, w: W, cost } = p;
  const load = loadsOf(p, assign);
  // Items per worker, for swaps (rebuilt lazily: swaps and moves keep it exact).
  const on: number[][] = Array.from({ length: W }, () => []);
  for (let i = 0; i < n; i++) if (assign[i]! >= 0) on[assign[i]!]!.push(i);
  const drop = (list: number[], item: number): void => {
    const k = list.indexOf(item);
    list[k] = list[list.length - 1]!;
    list.pop();
  };
  let M = maxOf(load);
  let left = budget;
  for (let changed = true; changed && left > 0; ) {
    changed = false;
    for (let j = 0; j < n && left > 0; j++) {
      for (let b = 0; b < W; b++) {
        const a = assign[j]!;
        if (a < 0) break;
        const cjb = cost[j * W + b]!;
        if (b === a || cjb === Infinity) continue;
        const cja = cost[j * W + a]!;
        const pm = Math.max(load[a]!, load[b]!);
        left--;
        // Move j from a to b.
        let na = load[a]! - cja;
        let nb = load[b]! + cjb;
        let m = Math.max(na, nb);
        if (m <= M + EPS && (m < pm - EPS || (cjb - cja < -EPS && m <= pm + EPS))) {
          load[a] = na;
          load[b] = nb;
          assign[j] = b;
          drop(on[a]!, j);
          on[b]!.push(j);
          changed = true;
          continue;
        }
        // Swap j with an item k of b that a may serve.
        const list = on[b]!;
        for (let x = 0; x < list.length; x++) {
          const k = list[x]!;
          const cka = cost[k * W + a]!;
          if (cka === Infinity) continue;
          const ckb = cost[k * W + b]!;
          left--;
          na = load[a]! - cja + cka;
          nb = load[b]! - ckb + cjb;
          m = Math.max(na, nb);
          if (m <= M + EPS && (m < pm - EPS || (cka + cjb - cja - ckb < -EPS && m <= pm + EPS))) {
            load[a] = na;
            load[b] = nb;
            assign[j] = b;
            assign[k] = a;
            list[x] = j;
            on[a]![on[a]!.indexOf(j)] = k;
            changed = true;
            break;
          }
        }
      }
      M = maxOf(load);
    }
  }
  return maxOf(load);
}

/**
 * The best packing found from `start` (the caller's earliest-finish pass,
 * items in priority order) and the waste-charging greedy passes, each
 * improved by local search. Returns the start itself (same object) unless
 * another packing ends at least `minGainMs` sooner, so that plans equal in
 * effect keep the caller's choices (its rotation over equal free workers).
 */
export function bestPacking(p: PackProblem, start: Int32Array, order: readonly number[], budget: number, minGainMs: number): Int32Array {
  const startMs = maxOf(loadsOf(p, start));
  let best = start;
  let bestMs = startMs;
  const per = Math.max(1, Math.floor(budget / (ALPHAS.length + 1)));
  const candidates = [Int32Array.from(start), ...ALPHAS.map((a) => greedyPack(p, order, a))];
  for (const assign of candidates) {
    const ms = improvePack(p, assign, per);
    if (ms < bestMs - EPS) {
      best = assign;
      bestMs = ms;
    }
  }
  return bestMs < startMs - minGainMs ? best : start;
}
