/** The pure parts of prompt groups, in process: where a group's item may go, and what a job hands out of its groups. */
import { describe, expect, it } from "vitest";
import { groupCandidates, type PromptGroup } from "../src/admission/groups.js";
import type { Worker } from "../src/registry/worker.js";
import { GroupBook } from "../src/rollouts/group-book.js";

const worker = (url: string, dead = false) => ({ url, dead }) as Worker;

describe("groupCandidates", () => {
  const [a, b, c] = [worker("http://a"), worker("http://b"), worker("http://c")];
  const registry = new Map([a, b, c].map((w) => [w.url, w]));
  const lookup = (url: string) => registry.get(url);

  it("an unplaced group may take any worker; a placed one only its own", () => {
    const g: PromptGroup = { name: "g", worker: null };
    expect(groupCandidates(g, [a, b, c], lookup, null)).toEqual([a, b, c]);
    g.worker = b;
    expect(groupCandidates(g, [a, b, c], lookup, null)).toEqual([b]);
  });

  it("its worker unavailable for now (busy, asleep, not eligible for a moment): the item waits for it", () => {
    const g: PromptGroup = { name: "g", worker: b };
    expect(groupCandidates(g, [a, c], lookup, null)).toEqual([]);
    expect(g.worker).toBe(b);
  });

  it("its worker dead or removed: the group is unplaced and may go anywhere", () => {
    const dead = worker("http://d", true);
    const g: PromptGroup = { name: "g", worker: dead };
    expect(groupCandidates(g, [a, c], (u) => (u === dead.url ? dead : lookup(u)), null)).toEqual([a, c]);
    expect(g.worker).toBeNull();
    const gone: PromptGroup = { name: "h", worker: worker("http://gone") };
    expect(groupCandidates(gone, [a], lookup, null)).toEqual([a]);
    expect(gone.worker).toBeNull();
  });

  it("an item that failed on the group's worker retries elsewhere", () => {
    const g: PromptGroup = { name: "g", worker: b };
    expect(groupCandidates(g, [a, b, c], lookup, new Set([b.url]))).toEqual([a, c]);
  });
});

describe("GroupBook", () => {
  const ev = (log: string[], name: string) => ({ emit: () => log.push(`emit ${name}`), drop: () => log.push(`drop ${name}`) });

  it("a group is complete when every item answered 2xx; the count is told once per group", () => {
    const book = new GroupBook(["a", "a", "b", null], false);
    expect(book.size).toBe(2);
    expect(book.answerEnded("a", true)).toBe(0);
    expect(book.answerEnded("b", true)).toBe(1);
    expect(book.answerEnded("a", false)).toBe(0);
    expect(book.completed()).toEqual(["b"]);
  });

  it("not holding: results go out as they come", () => {
    const log: string[] = [];
    const book = new GroupBook(["a", "a"], false);
    book.resolved("a", ev(log, "a0"));
    expect(log).toEqual(["emit a0"]);
  });

  it("holding: a group's results go out together once all are in; a cancelled item drops the group's results, held and to come", () => {
    const log: string[] = [];
    const book = new GroupBook(["a", "a", "b", "b", "b"], true);
    book.resolved("a", ev(log, "a0"));
    expect(log).toEqual([]);
    book.resolved("a", ev(log, "a1"));
    expect(log).toEqual(["emit a0", "emit a1"]);
    book.resolved("b", ev(log, "b0"));
    book.resolved("b", null);
    book.resolved("b", ev(log, "b2"));
    expect(log).toEqual(["emit a0", "emit a1", "drop b0", "drop b2"]);
  });

  it("holding: results of a group still incomplete when the job ends are dropped", () => {
    const log: string[] = [];
    const book = new GroupBook(["a", "a"], true);
    book.resolved("a", ev(log, "a0"));
    book.dropHeld();
    expect(log).toEqual(["drop a0"]);
  });
});
