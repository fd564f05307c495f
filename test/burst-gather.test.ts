import { describe, expect, it } from "vitest";
import { keepGathering, type GatherState } from "../src/admission/burst-gather.js";

// The rule the deferred plan follows (admission/burst-gather.ts); its outcomes on
// makespan are in test/scheduler-batching.test.ts and test/scheduler-drift.test.ts.
const base: GatherState = { active: 0, queued: 3, arrivedSince: false, turns: 1, waitedMs: 1, batchingLearned: false, anyStale: () => false };

describe("burst gather: whether a burst's first plan waits one more turn", () => {
  const rows: [string, Partial<GatherState>, boolean][] = [
    ["nothing stale, no batching: plan now", {}, false],
    ["a batching fleet with a learned gain while arrivals come", { arrivedSince: true, batchingLearned: true }, true],
    ["the same once arrivals stop", { batchingLearned: true }, false],
    ["the same after 10 ms", { arrivedSince: true, batchingLearned: true, waitedMs: 10 }, false],
    ["a batching fleet that never measured a batch", { arrivedSince: true }, false],
    ["stale workers: always the first extra turn", { turns: 0, anyStale: () => true }, true],
    ["stale workers while arrivals come", { arrivedSince: true, turns: 5, anyStale: () => true }, true],
    ["stale workers once arrivals stop", { turns: 2, anyStale: () => true }, false],
    ["stale workers after 25 ms", { arrivedSince: true, waitedMs: 25, anyStale: () => true }, false],
    ["stale workers, nothing queued", { turns: 0, queued: 0, anyStale: () => true }, false],
    ["under load: never", { active: 1, arrivedSince: true, batchingLearned: true, turns: 0, anyStale: () => true }, false],
  ];
  for (const [name, change, want] of rows) {
    it(name, () => expect(keepGathering({ ...base, ...change })).toBe(want));
  }

  it("asks for stale workers only when the rest holds (LoadBook.staleIdle walks the fleet)", () => {
    let asked = 0;
    const anyStale = () => (asked++, true);
    keepGathering({ ...base, active: 2, turns: 0, anyStale });
    keepGathering({ ...base, queued: 0, turns: 0, anyStale });
    expect(asked).toBe(0);
  });
});
