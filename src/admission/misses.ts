/**
 * What a worker's answer says of how much slower it runs now than the cost
 * model predicts (LoadBook.slowdown): a last answer 2x or more off stretches
 * the worker's predictions until its next answer, without moving the model
 * (one answer may be a stall), and a run of such answers keeps the stretch
 * at what the model has not learned yet.
 */

/** A last answer this much slower than predicted stretches the worker's predictions until its next answer (see {@link LoadBook.slowdown}). */
const MISS_ALONE = 2;
/**
 * ...once the worker has this many observations: before, its pace and the
 * fleet's shape are still being learned, and a miss is the model learning,
 * not the worker changing. Counting those from the first stretched a
 * thousand new workers' predictions in their first burst (1,024 workers:
 * 1.16-1.17 of the bound instead of 1.05; docs/benchmarks.md, Scale part 4).
 * Not the 8 the cost model's change detection needs (cost-shape.ts): with
 * bursts of 3 requests per worker (bench --quick) a worker slowed 3x had 6-7
 * observations at the second burst after its change, so neither the change
 * nor this bridge saw it and it was sent a large request as if fast (the
 * second slowed burst 1.17x offline LPT, median of 10 seeds; 1.08 with 4;
 * 1,024 workers in bench:scale 1.011, warm-up 1.050).
 */
export const MISS_MIN_OBSERVATIONS = 4;
/**
 * ...but a worker's first answer after an idle gap (a stale worker's probe,
 * LoadBook.staleIdle) counts from this many: the worker was known before the
 * gap (its first-burst learning is over), and what may have changed is its
 * speed, which the probe exists to find (issue 20: a slowed worker whose
 * history the cost model's change detection had cut to 3 answers was sent a
 * large request planned at 1.6x its speed right after its 3x-slow probe).
 */
export const MISS_GAP_OBSERVATIONS = 2;
/**
 * ...and only a miss of at least this many ms beyond the prediction: on a
 * busy host (the test suite on 2 cores) requests of a few ms took over 100 ms
 * with no slow GPU, and a stretch that keeps a worker from its next request
 * lasts until that request's answer (a hedge test's pairs then all went to
 * the other worker). A GPU request takes seconds; a 2x miss of one is more.
 */
const MISS_MIN_MS = 250;
/**
 * ...except for a stale worker's first answer (its probe, the burst's
 * smallest request), from this many ms: the probe exists to find a speed
 * that changed during the gap, and it is small. The `straggler` fleet
 * (--quick: 62 ms for the smallest image) had a worker 4x slower answer its
 * probe in ~250 ms, ~170 ms beyond what the model then predicted: under 250,
 * so no miss; the worker looked fast again and was sent a 1.3 s request that
 * took 5 s (bursts 2.9-3.3x the bound, issue 20). Once per worker per idle
 * gap, so the host noise the 250 guards against (tests on 2 busy cores) can
 * stretch a worker only until its next answer.
 */
export const MISS_GAP_MIN_MS = 100;
/**
 * A miss right after a miss (the worker still stretched) counts from this
 * much: the cost model learned part of the change from the two answers (one
 * slow answer is a stall to its Huber weights), so the second answer is
 * only 1.5-1.8x off what it predicts now, and without this the stretch
 * ended there while the model still planned the worker 1.7x faster than it
 * was. Bench drift's second slowed burst (--quick) gave a 3x-slowed worker
 * a 6 s request planned at 3.3 s (1.28-1.36x offline LPT).
 */
export const MISS_AGAIN = 1.25;

/**
 * The stretch after an answer that took `took` ms where the cost model, having
 * learned from it, predicts `now` (0: not trusted yet, see
 * MISS_MIN_OBSERVATIONS); `last` is the stretch after the worker's previous
 * answer (1: none); `floorMs` the least miss in ms that counts. 1 when the
 * answer is no miss.
 */
export function missAfter(took: number, now: number, last: number, floorMs = MISS_MIN_MS): number {
  const miss = now > 0 && took - now >= floorMs ? took / now : 1;
  // A run of misses keeps the worker stretched by what the model has not learned yet.
  return miss >= MISS_ALONE || (last > 1 && miss >= MISS_AGAIN) ? miss : 1;
}
