import type { WorkFeatures } from "../scheduler/request-facts.js";

/**
 * What a batch of each size costs a batching worker, in units of one of its
 * requests alone, learned from observed batches (issue 20: batch capacity
 * in "when is a worker free"); not taken from the sim's table.
 *
 * F(b) is a batch of b's time over the cost model's prediction P of one
 * member alone: F(1) = 1, and each observed batch of b teaches F(b) its
 * time / P. The cost model in turn is taught each member's time alone,
 * time / F(b) (LoadBook.end), so P stays the one-request time that the
 * plan charges a batch's first member; one more member costs
 * P × (F(b+1) − F(b)). Requests sent alone anchor P (F(1) = 1): a fleet's
 * first bursts spread requests over idle workers, so they come first. With
 * nothing learned F(b) = b: no gain, which is what the planner charged a
 * batch before.
 *
 * Per model and per work size (pixels × frames × outputs, in quarter
 * octaves): a batch's gain depends on how much of the GPU one item leaves
 * idle, so small pictures gain and large ones barely (SGLang's figures, the
 * sim's table); one curve per model mixed them.
 */

/** Weight of a new batch in a size's average (recent batches count most: a worker may change). */
const ALPHA = 0.25;
/** Sizes tracked (the --worker-batch-size limit). */
const MAX_SIZE = 64;

/**
 * How far (as a ratio either way) the cost model's prediction of one member
 * alone may move from the one a class's gain was last measured against
 * before that gain is measured anew. F is a batch's time over that
 * prediction, so a prediction learned wrong then (a worker's first answers,
 * or singles the worker merged into one batch, teach junk) leaves F wrong
 * for good: the batching fleet learned 768² at F(2) = 1.96 against a
 * prediction of 345 ms where one alone takes 431 ms (true F(2) ~1.6), so no
 * 768² was batched again (issue 20; docs/decisions.md).
 */
export const REANCHOR_RATIO = 1.2;

/**
 * The prediction of one member alone that a class's gain was last measured
 * against: on the worker that ran that batch, for that member's work (a
 * class mixes steps, which the prediction counts).
 */
export interface GainAnchor<W> {
  readonly worker: W;
  readonly work: WorkFeatures;
  readonly ms: number;
}

export class BatchGains<W = unknown> {
  /** Per class: F(b) / b by batch size (index = size; NaN = never seen; [1] = 1). */
  readonly #q = new Map<string, Float64Array>();
  readonly #anchors = new Map<string, GainAnchor<W>>();

  /** The class a request's batches are learned under. */
  static classOf(model: string, work: WorkFeatures | null): string {
    if (work === null) return `${model}|?`;
    return `${model}|${Math.round(4 * Math.log2(Math.max(1e-6, work.megapixels * work.latentFrames * work.outputs)))}`;
  }

  /**
   * One observed batch of `size` (>= 2) that took `ratio` times one member's
   * predicted time alone; `anchor`: that prediction, and where.
   */
  observe(cls: string, size: number, ratio: number, anchor?: GainAnchor<W>): void {
    if (!(ratio > 0) || !Number.isFinite(ratio) || size < 2 || size > MAX_SIZE) return;
    if (anchor !== undefined) this.#anchors.set(cls, anchor);
    let q = this.#q.get(cls);
    if (q === undefined) {
      q = new Float64Array(MAX_SIZE + 1).fill(Number.NaN);
      q[1] = 1;
      this.#q.set(cls, q);
    }
    const old = q[size]!;
    q[size] = Number.isNaN(old) ? ratio / size : old + ALPHA * (ratio / size - old);
  }

  /** The prediction the class's gain was last measured against (undefined: none measured, or measured without one). */
  anchor(cls: string): GainAnchor<W> | undefined {
    return this.#anchors.get(cls);
  }

  /** Forgets what a class's batches taught (its gain is measured anew: see REANCHOR_RATIO). */
  forget(cls: string): void {
    this.#q.delete(cls);
    this.#anchors.delete(cls);
  }

  /** Whether any batch was observed (a fleet's first burst knows no gain). */
  get learned(): boolean {
    return this.#q.size > 0;
  }

  /** Whether a batch of `size` was observed in this class (F(size) is learned, not interpolated). */
  known(cls: string, size: number): boolean {
    const q = this.#q.get(cls);
    return size === 1 || (q !== undefined && size <= MAX_SIZE && !Number.isNaN(q[size]!));
  }

  /** F(size): a batch's time in units of one member alone. */
  time(cls: string, size: number): number {
    const q = this.#q.get(cls);
    return q === undefined ? size : timeAt(q, size);
  }

  /** What one more member adds to a batch of `size`, in units of that member alone (at least 0). */
  marginal(cls: string, size: number): number {
    return Math.max(0, this.time(cls, size + 1) - this.time(cls, size));
  }
}

/**
 * F(b) from the sizes seen around `b`: linear between two seen sizes (a
 * gain grows about linearly between measured sizes: the sim's table,
 * SGLang's figures), and beyond the largest seen each member costs what it
 * did there.
 */
function timeAt(q: Float64Array, b: number): number {
  if (b >= 1 && b <= MAX_SIZE && !Number.isNaN(q[b]!)) return b * q[b]!;
  let lo = Math.min(b - 1, MAX_SIZE);
  while (lo >= 1 && Number.isNaN(q[lo]!)) lo--;
  let hi = b + 1;
  while (hi <= MAX_SIZE && Number.isNaN(q[hi]!)) hi++;
  if (hi <= MAX_SIZE) return lo * q[lo]! + ((hi * q[hi]! - lo * q[lo]!) * (b - lo)) / (hi - lo);
  return b * q[lo]!;
}
