/**
 * What a batch of each size costs a worker of a model, relative to the cost
 * model's prediction, learned from observed batches (issue 20: batch
 * capacity in "when is a worker free").
 *
 * The cost model is fed each member's share of its batch's time, so its
 * prediction P of a request is a per-item time blended over the batch sizes
 * it saw. Here every observed batch of size b adds share / P (P read before
 * the cost model learned from it) to an average per size: q(b). A batch of
 * b then takes about P × b × q(b), and one more member costs
 * P × ((b+1) q(b+1) − b q(b)): the worker's gain per size, learned, not
 * taken from the sim's table. The ratios q(b)/q(1) hold whatever blend P is,
 * as long as it moves slowly against the average's window.
 */

/** Weight of a new batch in a size's average (recent batches count most: a worker may change). */
const ALPHA = 0.25;
/** Sizes tracked (the --worker-batch-size limit). */
const MAX_SIZE = 64;

export class BatchGains {
  /** Per model: q by batch size (index = size; NaN = never seen). */
  readonly #q = new Map<string, Float64Array>();

  /** One observed batch of `size` members whose share was `ratio` times the cost model's prediction. */
  observe(model: string, size: number, ratio: number): void {
    if (!(ratio > 0) || !Number.isFinite(ratio) || size < 1 || size > MAX_SIZE) return;
    let q = this.#q.get(model);
    if (q === undefined) {
      q = new Float64Array(MAX_SIZE + 1).fill(Number.NaN);
      this.#q.set(model, q);
    }
    const old = q[size]!;
    q[size] = Number.isNaN(old) ? ratio : old + ALPHA * (ratio - old);
  }

  /**
   * The cost of one more member for a batch of `size`, in units of the cost
   * model's prediction of that member: F(size + 1) − F(size), F(b) = b q(b)
   * the batch's time. Sizes never seen are linear in F between the seen
   * sizes around them (a gain grows about linearly between measured sizes:
   * the sim's table, SGLang's figures), and beyond the last seen size cost
   * its q per member; with no batch seen, 1: what the planner charged a
   * batch member before.
   */
  marginal(model: string, size: number): number {
    const q = this.#q.get(model);
    if (q === undefined) return 1;
    return Math.max(0, timeAt(q, size + 1) - timeAt(q, size));
  }
}

/** F(b) = b q(b), from the sizes seen around `b`. */
function timeAt(q: Float64Array, b: number): number {
  if (b >= 1 && b <= MAX_SIZE && !Number.isNaN(q[b]!)) return b * q[b]!;
  let lo = Math.min(b - 1, MAX_SIZE);
  while (lo >= 1 && Number.isNaN(q[lo]!)) lo--;
  let hi = b + 1;
  while (hi <= MAX_SIZE && Number.isNaN(q[hi]!)) hi++;
  const haveLo = lo >= 1;
  const haveHi = hi <= MAX_SIZE;
  if (haveLo && haveHi) return lo * q[lo]! + ((hi * q[hi]! - lo * q[lo]!) * (b - lo)) / (hi - lo);
  if (haveLo) return b * q[lo]!;
  if (haveHi) return b * q[hi]!;
  return b;
}
