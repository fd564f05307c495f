import { describe, expect, it } from "vitest";
import { createLeastRequestPolicy, createRandomPolicy, createRoundRobinPolicy, type Candidate } from "../src/balancer/index.js";

const w = (url: string, activeRequests: number): Candidate => ({ url, activeRequests });

describe("least-request", () => {
  it.each([
    { loads: [3, 1, 2], picks: ["b"] },
    { loads: [0, 0, 5], picks: ["a", "b", "a", "a"] },
    { loads: [2, 2, 2], picks: ["a", "b", "c", "a"] },
    { loads: [7], picks: ["a", "a"] },
  ])("loads $loads pick $picks", ({ loads, picks }) => {
    const policy = createLeastRequestPolicy();
    const workers = loads.map((l, i) => w(String.fromCharCode(97 + i), l));
    expect(picks.map(() => policy.pick(workers).url)).toEqual(picks);
  });

  it("fills an idle pool evenly when each pick adds load", () => {
    const policy = createLeastRequestPolicy();
    const workers = ["a", "b", "c", "d"].map((u) => ({ url: u, activeRequests: 0 }));
    for (let i = 0; i < 8; i++) policy.pick(workers).activeRequests++;
    expect(workers.map((x) => x.activeRequests)).toEqual([2, 2, 2, 2]);
  });
});

describe("round-robin", () => {
  it("cycles in order and adapts to a shrinking set", () => {
    const policy = createRoundRobinPolicy();
    const ws = [w("a", 0), w("b", 9), w("c", 0)];
    expect([0, 1, 2, 3].map(() => policy.pick(ws).url)).toEqual(["a", "b", "c", "a"]);
    expect(policy.pick([w("x", 0)]).url).toBe("x");
  });
});

describe("random", () => {
  it.each([
    [0, "a"],
    [0.5, "b"],
    [0.99, "c"],
  ])("random()=%s picks %s", (r, url) => {
    expect(createRandomPolicy(() => r).pick([w("a", 0), w("b", 0), w("c", 0)]).url).toBe(url);
  });
});
