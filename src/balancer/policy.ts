/** What a policy needs to know of a worker. */
export interface Candidate {
  readonly url: string;
  readonly activeRequests: number;
}

/**
 * A load-balancing policy: a pure choice among the eligible workers. The
 * caller guarantees `candidates` is non-empty; policies keep only their own
 * cursor state.
 */
export interface Policy {
  readonly name: PolicyName;
  pick<T extends Candidate>(candidates: readonly T[]): T;
}

export type PolicyName = "least-request" | "round-robin" | "random";

export const policyNames: readonly PolicyName[] = ["least-request", "round-robin", "random"];
