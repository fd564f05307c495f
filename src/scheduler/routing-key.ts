/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam
 * 2018): every request with the same routing key goes to the same worker, so
 * an RL framework can keep all samples of one prompt group together; a key
 * moves to the next worker on the ring only when its worker holds more than
 * (1 + ε) × the average load, so one hot key cannot pile everything onto one
 * GPU. Adding or removing a worker moves only the keys next to it. Pure.
 */
import { createHash } from "node:crypto";

/** Points per worker on the ring: enough that 8 workers get shares within a few percent. */
const VIRTUAL_NODES = 64;

function hash32(s: string): number {
  return createHash("sha1").update(s).digest().readUInt32BE(0);
}

export class HashRing<W extends { readonly url: string }> {
  readonly #points: { at: number; worker: W }[];

  constructor(workers: readonly W[]) {
    const points: { at: number; worker: W }[] = [];
    for (const w of workers) for (let v = 0; v < VIRTUAL_NODES; v++) points.push({ at: hash32(`${w.url}#${v}`), worker: w });
    points.sort((a, b) => a.at - b.at || (a.worker.url < b.worker.url ? -1 : 1));
    this.#points = points;
  }

  /**
   * The worker for `key`: the first on the ring from the key's hash whose
   * load stays within the bound after taking one more request. `load(w)` is
   * what the worker holds now (in flight + queued for it); `epsilon` 0.25
   * lets a worker hold 25% over the average.
   */
  pick(key: string, load: (w: W) => number, epsilon = 0.25): W | null {
    const points = this.#points;
    if (points.length === 0) return null;
    const workers = new Set(points.map((p) => p.worker));
    let total = 1; // the request being placed
    for (const w of workers) total += load(w);
    const bound = Math.ceil(((1 + epsilon) * total) / workers.size);
    const h = hash32(key);
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid]!.at < h) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<W>();
    for (let i = 0; i < points.length && seen.size < workers.size; i++) {
      const w = points[(lo + i) % points.length]!.worker;
      if (seen.has(w)) continue;
      seen.add(w);
      if (load(w) + 1 <= bound) return w;
    }
    return points[lo % points.length]!.worker;
  }
}
