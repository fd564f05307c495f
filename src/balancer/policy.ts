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

/**
 * What `--routing-algorithm` accepts: the new default, `earliest-finish`
 * (the router's own queue, planned largest-first onto the worker that
 * finishes each request earliest; see src/scheduler), and the policies.
 */
export type RoutingAlgorithm = "earliest-finish" | PolicyName;

export const routingAlgorithms: readonly RoutingAlgorithm[] = ["earliest-finish", ...policyNames];
