import { describe, expect, it } from "vitest";
import { createFingerprintJudge } from "../src/health/fingerprint.js";

// A model card's `created` is a process fingerprint only once it held still for
// stableMs; a value that moves (SGLang answers the request time) never is.
describe("fingerprint judge", () => {
  const cases: { name: string; seen: [string | null, number][]; stored: string | null; want: { fingerprint: string | null; change: { previous: string; current: string } | null } }[] = [
    { name: "a first value is not yet a fingerprint", seen: [["100", 0]], stored: null, want: { fingerprint: null, change: null } },
    { name: "a value unchanged for 3 s becomes the fingerprint", seen: [["100", 0], ["100", 3_000]], stored: null, want: { fingerprint: "100", change: null } },
    { name: "a moving clock never qualifies", seen: [["100", 0], ["101", 1_000], ["102", 2_000], ["103", 3_500]], stored: null, want: { fingerprint: null, change: null } },
    { name: "no value keeps what was stored", seen: [[null, 0], [null, 5_000]], stored: "100", want: { fingerprint: "100", change: null } },
    { name: "a new stable value is another process", seen: [["200", 0], ["200", 3_000]], stored: "100", want: { fingerprint: "200", change: { previous: "100", current: "200" } } },
    { name: "a new value not yet stable keeps the stored one", seen: [["200", 0], ["200", 2_999]], stored: "100", want: { fingerprint: "100", change: null } },
    { name: "the same stable value is the same process", seen: [["100", 0], ["100", 9_000]], stored: "100", want: { fingerprint: "100", change: null } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const judge = createFingerprintJudge(3_000);
      let verdict;
      for (const [raw, at] of c.seen) verdict = judge.judge("http://w", raw, c.stored, at);
      expect(verdict).toEqual(c.want);
    });
  }

  it("forgets a removed worker: its value must hold still again", () => {
    const judge = createFingerprintJudge(3_000);
    judge.judge("http://w", "100", null, 0);
    judge.forget("http://w");
    expect(judge.judge("http://w", "100", null, 3_000)).toEqual({ fingerprint: null, change: null });
  });
});
