import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../src/audit/audit.js";
import type { Caller } from "../src/audit/call-context.js";
import { RefusalWindow } from "../src/audit/refusal-window.js";

const caller = (remote: string, key: Caller["key"] = "none", transport: Caller["transport"] = "rest"): Caller => ({ remote, key, transport });
const event = (): AuditEvent => ({ id: 1, requestId: "", action: "auth.refused", caller: caller("1.2.3.4:1"), args: {}, startedAt: "", durationMs: 0, outcome: "failed" });

// Which refusals fold into the first one's event (one event per source and route a minute), which are new.
describe("RefusalWindow", () => {
  const first = { caller: caller("10.0.0.7:40000"), route: "GET /workers", atMs: 0 };
  const cases: { name: string; caller: Caller; route: string; atMs: number; folded: boolean }[] = [
    { name: "the same caller again, on a new connection", caller: caller("10.0.0.7:40001"), route: "GET /workers", atMs: 1_000, folded: true },
    { name: "just inside the window", caller: caller("10.0.0.7:40000"), route: "GET /workers", atMs: 59_999, folded: true },
    { name: "once the window is over", caller: caller("10.0.0.7:40000"), route: "GET /workers", atMs: 60_000, folded: false },
    { name: "another route", caller: caller("10.0.0.7:40000"), route: "GET /refit", atMs: 1_000, folded: false },
    { name: "another host", caller: caller("10.0.0.8:40000"), route: "GET /workers", atMs: 1_000, folded: false },
    { name: "another key class (the data key)", caller: caller("10.0.0.7:40000", "data"), route: "GET /workers", atMs: 1_000, folded: false },
    { name: "another transport", caller: caller("10.0.0.7:40000", "none", "grpc"), route: "GET /workers", atMs: 1_000, folded: false },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.folded ? "folded, repeats 2" : "a new event"}`, () => {
      const w = new RefusalWindow(60_000);
      const e = event();
      w.remember(RefusalWindow.keyOf(first.caller, first.route), e, first.atMs);
      const repeated = w.repeat(RefusalWindow.keyOf(c.caller, c.route), c.atMs);
      expect(repeated === e).toBe(c.folded);
      expect(e.repeats).toBe(c.folded ? 2 : undefined);
    });
  }

  it("IPv6 callers: the host in brackets, the port dropped", () => {
    expect(RefusalWindow.keyOf(caller("[::1]:5000"), "r")).toBe(RefusalWindow.keyOf(caller("[::1]:6000"), "r"));
    expect(RefusalWindow.keyOf(caller("[::1]:5000"), "r")).not.toBe(RefusalWindow.keyOf(caller("[::2]:5000"), "r"));
  });

  it("counts every repeat", () => {
    const w = new RefusalWindow(60_000);
    const e = event();
    const key = RefusalWindow.keyOf(first.caller, first.route);
    w.remember(key, e, 0);
    for (let i = 1; i <= 5; i++) w.repeat(key, i * 1_000);
    expect(e.repeats).toBe(6);
  });
});
