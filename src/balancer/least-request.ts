import type { Candidate, Policy } from "./policy.js";

/**
 * Picks the worker with the fewest requests in flight. Ties are broken by a
 * rotating start index, so an idle pool is filled evenly instead of always
 * starting at the first worker (which the original did).
 */
export function createLeastRequestPolicy(): Policy {
  let start = 0;
  return {
    name: "least-request",
    pick<T extends Candidate>(candidates: readonly T[]): T {
      const n = candidates.length;
      const offset = start++ % n;
      let best = candidates[offset]!;
      for (let i = 1; i < n; i++) {
        const c = candidates[(offset + i) % n]!;
        if (c.activeRequests < best.activeRequests) best = c;
      }
      return best;
    },
  };
}
