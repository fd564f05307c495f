/**
 * A rollout submission's validation (src/rollouts/submission.ts), pure: what
 * a valid one becomes, and that each bad field is refused naming itself.
 */
import { describe, expect, it } from "vitest";
import type { RouteSpec } from "../src/dispatch/context.js";
import { RouterError } from "../src/errors.js";
import { parseSubmission, type RolloutSubmission } from "../src/rollouts/submission.js";

const image: RouteSpec = { kind: "image", retry: "generation", capture: 0 };
const generation: RouteSpec = { kind: "generation", retry: "generation", capture: 0 };
const limits = { maxItems: 3, routes: new Map([["/v1/images/generations", image], ["/rollout/generate", generation]]), currentVersion: "7" };

function refusal(s: RolloutSubmission): RouterError {
  try {
    parseSubmission(s, limits);
  } catch (err) {
    return err as RouterError;
  }
  throw new Error("accepted");
}

describe("parseSubmission", () => {
  it("a valid submission: each item with its route spec and its body serialized once; the options filled in (a numeric version as a string)", () => {
    const { requests, options } = parseSubmission(
      { requests: [{ path: "/rollout/generate", body: { prompt: "a" } }, { path: "/v1/images/generations", body: {} }], min_complete: 1, deadline_s: 1.5, routing_key: "g", weight_version: 7 },
      limits,
    );
    expect(requests.map((r) => [r.path, r.route, r.body.toString()])).toEqual([
      ["/rollout/generate", generation, '{"prompt":"a"}'],
      ["/v1/images/generations", image, "{}"],
    ]);
    expect(options).toEqual({ minComplete: 1, minCompleteGroups: null, deadlineMs: 1500, routingKey: "g", weightVersion: "7" });
  });

  it("empty strings mean none, as a proto string cannot be absent", () => {
    const { options } = parseSubmission({ requests: [{ path: "/rollout/generate", body: {} }], routing_key: "", weight_version: "" }, limits);
    expect(options).toEqual({ minComplete: null, minCompleteGroups: null, deadlineMs: null, routingKey: null, weightVersion: null });
  });

  it.each<[string, RolloutSubmission, string, string]>([
    ["an unknown field", { requests: [], extra: 1 } as RolloutSubmission, "unknown_field", "extra"],
    ["no requests", { requests: [] }, "invalid_request", "requests"],
    ["too many requests", { requests: [1, 2, 3, 4] }, "invalid_request", "requests"],
    ["an item that is not an object", { requests: ["x"] }, "invalid_request", "requests[0]"],
    ["an unknown item field", { requests: [{ path: "/rollout/generate", body: {}, seed: 1 }] }, "unknown_field", "requests[0].seed"],
    ["a path that is no generation route", { requests: [{ path: "/v1/videos", body: {} }] }, "invalid_request", "requests[0].path"],
    ["a body that is not an object", { requests: [{ path: "/rollout/generate", body: [1] }] }, "invalid_request", "requests[0].body"],
    ["min_complete above the size", { requests: [{ path: "/rollout/generate", body: {} }], min_complete: 2 }, "invalid_request", "min_complete"],
    ["a negative deadline", { requests: [{ path: "/rollout/generate", body: {} }], deadline_s: -1 }, "invalid_request", "deadline_s"],
    ["a routing key that is no string", { requests: [{ path: "/rollout/generate", body: {} }], routing_key: 5 }, "invalid_request", "routing_key"],
    ["a group that is no string", { requests: [{ path: "/rollout/generate", body: {}, group: 3 }] }, "invalid_request", "requests[0].group"],
    ["min_complete_groups without groups", { requests: [{ path: "/rollout/generate", body: {} }], min_complete_groups: 1 }, "invalid_request", "min_complete_groups"],
    ["min_complete_groups above the groups", { requests: [{ path: "/rollout/generate", body: {}, group: "a" }, { path: "/rollout/generate", body: {}, group: "a" }], min_complete_groups: 2 }, "invalid_request", "min_complete_groups"],
    ["min_complete_groups with min_complete", { requests: [{ path: "/rollout/generate", body: {}, group: "a" }], min_complete_groups: 1, min_complete: 1 }, "invalid_request", "min_complete_groups"],
    ["another weight version", { requests: [{ path: "/rollout/generate", body: {} }], weight_version: "v6" }, "weight_version_mismatch", "weight_version"],
  ])("%s is refused naming its field", (_name, s, code, param) => {
    const e = refusal(s);
    expect(e).toBeInstanceOf(RouterError);
    expect([e.code, e.details.param]).toEqual([code, param]);
  });

  it("items name their group (\"\" is none); min_complete_groups counts distinct groups", () => {
    const g = (group: unknown) => ({ path: "/rollout/generate", body: {}, group });
    const { requests, options } = parseSubmission({ requests: [g("a"), g("b"), g("a"), g(""), g(null)], min_complete_groups: 2 }, { ...limits, maxItems: 10 });
    expect(requests.map((r) => r.group)).toEqual(["a", "b", "a", null, null]);
    expect(options.minCompleteGroups).toBe(2);
  });

  it("a bad path's message lists the paths an item may take", () => {
    expect(refusal({ requests: [{ path: "/nope", body: {} }] }).message).toBe('requests[0].path must be one of /v1/images/generations, /rollout/generate, got "/nope"');
  });
});
