import type { Candidate, Policy } from "./policy.js";

/** Uniform random choice; `random` is injectable so tests can fix it. */
export function createRandomPolicy(random: () => number = Math.random): Policy {
  return {
    name: "random",
    pick<T extends Candidate>(candidates: readonly T[]): T {
      return candidates[Math.floor(random() * candidates.length)]!;
    },
  };
}
