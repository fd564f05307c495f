/**
 * The retry decision as a table: which failures before any answer byte move
 * a request to another worker, per route class and attempt facts.
 */
import { describe, expect, it } from "vitest";
import type { FailureKind } from "../src/proxy/network-errors.js";
import { decideRetry, mayTryAgain, type AttemptFacts, type RetryClass } from "../src/proxy/retry-decision.js";

const fresh: AttemptFacts = { attempt: 0, maxRetries: 2, elapsedMs: 10, retryBudgetMs: 300_000, replayableBody: true, otherWorker: true };

describe("decideRetry", () => {
  const table: [FailureKind, RetryClass, "retry" | "answer"][] = [
    ["not_sent", "generation", "retry"],
    ["maybe_sent", "generation", "retry"],
    ["timeout", "generation", "retry"],
    ["status_5xx", "generation", "retry"],
    // A video job could exist twice: only a request no worker saw moves.
    ["not_sent", "create_once", "retry"],
    ["maybe_sent", "create_once", "answer"],
    ["timeout", "create_once", "answer"],
    ["status_5xx", "create_once", "answer"],
    // Forwarded unknown paths are never retried.
    ["not_sent", "none", "answer"],
    ["maybe_sent", "none", "answer"],
  ];
  it.each(table)("%s on a %s route: %s", (failure, route, expected) => {
    expect(decideRetry(failure, route, fresh)).toBe(expected);
  });

  const limits: [string, Partial<AttemptFacts>][] = [
    ["the retries are used up", { attempt: 2 }],
    ["the retry budget has passed", { elapsedMs: 300_000 }],
    ["the body streamed through (the router cannot send it again)", { replayableBody: false }],
    ["no other eligible worker is left", { otherWorker: false }],
  ];
  it.each(limits)("answers when %s, whatever the failure", (_what, change) => {
    for (const failure of ["not_sent", "maybe_sent", "timeout", "status_5xx"] as FailureKind[]) {
      expect(decideRetry(failure, "generation", { ...fresh, ...change })).toBe("answer");
    }
    expect(mayTryAgain("generation", { ...fresh, ...change })).toBe(false);
  });

  it("the last allowed retry still retries; the one after answers", () => {
    expect(decideRetry("maybe_sent", "generation", { ...fresh, attempt: 1 })).toBe("retry");
    expect(decideRetry("maybe_sent", "generation", { ...fresh, attempt: 2 })).toBe("answer");
    expect(decideRetry("maybe_sent", "generation", { ...fresh, maxRetries: 0 })).toBe("answer");
  });

  it("asks whether another worker exists only when everything else allows a retry (it walks the pool)", () => {
    let asked = 0;
    const facts = {
      ...fresh,
      attempt: 5,
      get otherWorker() {
        asked++;
        return true;
      },
    };
    expect(mayTryAgain("generation", facts)).toBe(false);
    expect(asked).toBe(0);
  });
});
