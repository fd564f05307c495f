import type { Candidate, Policy } from "./policy.js";

/** Cycles through the eligible workers in registration order. */
export function createRoundRobinPolicy(): Policy {
  let next = 0;
  return {
    name: "round-robin",
    pick<T extends Candidate>(candidates: readonly T[]): T {
      const c = candidates[next % candidates.length]!;
      next = (next + 1) % 1_000_000_007;
      return c;
    },
  };
}
