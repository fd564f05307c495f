/**
 * The byte rules of the proxy's HTTP/1.1 client that are not about framing
 * (framing is checked against llhttp in h1-differential.test.ts): how long a
 * worker says it keeps an idle connection.
 */
import { describe, expect, it } from "vitest";
import { keepAliveTimeoutMs } from "../src/proxy/h1-syntax.js";

describe("keepAliveTimeoutMs", () => {
  it.each([
    ["timeout=5", 5_000],
    ["timeout=5, max=100", 5_000],
    ["max=100, timeout=2", 2_000],
    ["Timeout=30", 30_000],
    ["max=100,timeout=0", 0],
    ["max=100", -1],
    ["timeout=", -1],
    ["timeout=5s", -1],
    ["xtimeout=5", -1],
    ["timeout = 5", -1],
    ["", -1],
  ])("%j is %d ms", (value, ms) => {
    expect(keepAliveTimeoutMs(value)).toBe(ms);
  });
});
