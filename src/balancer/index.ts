import { createLeastRequestPolicy } from "./least-request.js";
import type { Policy, PolicyName } from "./policy.js";
import { createRandomPolicy } from "./random.js";
import { createRoundRobinPolicy } from "./round-robin.js";

export type { Candidate, Policy, PolicyName, RoutingAlgorithm } from "./policy.js";
export { policyNames, routingAlgorithms } from "./policy.js";
export { createLeastRequestPolicy } from "./least-request.js";
export { createRoundRobinPolicy } from "./round-robin.js";
export { createRandomPolicy } from "./random.js";

export function createPolicy(name: PolicyName): Policy {
  switch (name) {
    case "least-request":
      return createLeastRequestPolicy();
    case "round-robin":
      return createRoundRobinPolicy();
    case "random":
      return createRandomPolicy();
  }
}
