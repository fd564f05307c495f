/**
 * Admission's parts in process, each on its own, with a fake clock (vitest's
 * fake timers for timeouts and expiries, a number for the cost clock): the
 * gate, the wait queue, routing keys, the load book and video jobs. The
 * composed admission is covered by admission.test.ts (processes),
 * scheduler-fleet.test.ts (virtual fleet) and admission-order.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Gate } from "../src/admission/gate.js";
import { GiveUpSweep } from "../src/admission/give-up.js";
import { RoutingKeys } from "../src/admission/keys.js";
import { LoadBook } from "../src/admission/loads.js";
import { WaitQueue, type QueueOptions } from "../src/admission/queue.js";
import type { Ticket } from "../src/admission/ticket.js";
import { VideoJobs } from "../src/admission/video-jobs.js";
import { RouterError } from "../src/errors.js";
import { Registry } from "../src/registry/registry.js";
import type { Worker } from "../src/registry/worker.js";
import { readRequestFacts, type RouteKind } from "../src/scheduler/request-facts.js";

function ticket(body: Record<string, unknown> = { prompt: "p", size: "512x512" }, kind: RouteKind = "image", extra: Partial<Ticket> = {}): Ticket {
  const facts = readRequestFacts(kind, body, null);
  return { demand: { kind, model: facts.model }, facts, exclude: null, run: null, weightVersion: null, ...extra };
}

function workers(n: number): Worker[] {
  const registry = new Registry();
  return Array.from({ length: n }, (_, i) => registry.add(`http://10.0.0.${i + 1}:8000`, { capabilities: { models: ["m"] } }).worker);
}

/** What a settled promise ended with, without awaiting a pending one. */
function outcome<T>(p: Promise<T>): { value?: T; error?: Error & { code?: string }; done: boolean } {
  const o: { value?: T; error?: Error & { code?: string }; done: boolean } = { done: false };
  p.then(
    (v) => Object.assign(o, { value: v, done: true }),
    (e: Error) => Object.assign(o, { error: e, done: true }),
  );
  return o;
}
const turn = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("gate", () => {
  it("holds until every hold is let go; letting go twice counts once", () => {
    let released = 0;
    const gate = new Gate(() => released++);
    const refit = gate.hold("refit v2");
    const sleep = gate.hold("sleep");
    expect(gate.held).toBe(true);
    expect(gate.reasons()).toBe("refit v2, sleep");
    refit();
    refit();
    expect(gate.held).toBe(true);
    expect(released).toBe(1);
    sleep();
    expect(gate.held).toBe(false);
    expect(released).toBe(2);
  });

  it("whenIdle: true once the last request ends, false after the timeout, and a late end wakes nobody twice", async () => {
    const gate = new Gate(() => undefined);
    expect(await gate.whenIdle(1000)).toBe(true);
    gate.started();
    gate.started();
    const drained = outcome(gate.whenIdle(1000));
    const timedOut = outcome(gate.whenIdle(100));
    await vi.advanceTimersByTimeAsync(100);
    expect(timedOut).toMatchObject({ done: true, value: false });
    gate.ended();
    await turn();
    expect(drained.done).toBe(false);
    gate.ended();
    await turn();
    expect(drained).toMatchObject({ done: true, value: true });
    expect(gate.inFlight).toBe(0);
  });
});

describe("wait queue", () => {
  const options = (o: Partial<QueueOptions> = {}): QueueOptions => ({ queueSize: 3, queueTimeoutMs: 1000, ordered: false, whyWaiting: () => "no worker became free", ...o });
  const w = workers(1)[0]!;

  it("first in, first out unless ordered; ordered: largest key first, ties in arrival order", () => {
    const fifo = new WaitQueue(options({ queueSize: 10 }));
    const sorted = new WaitQueue(options({ queueSize: 10, ordered: true }));
    const names = new Map<Ticket, string>();
    [1, 5, 3, 5].forEach((k, i) => {
      const f = ticket();
      const t = ticket();
      names.set(f, `f${i}`).set(t, `s${i}`);
      void fifo.add(f, k, null, () => 0);
      void sorted.add(t, k, null, () => 0);
    });
    expect(fifo.live().map((x) => names.get(x.ticket))).toEqual(["f0", "f1", "f2", "f3"]);
    expect(sorted.live().map((x) => names.get(x.ticket))).toEqual(["s1", "s3", "s2", "s0"]);
  });

  it("handing a waiter resolves it with the worker and takes it off the count", async () => {
    const q = new WaitQueue(options());
    const p = outcome(q.add(ticket(), 0, null, () => 0));
    q.hand(q.live()[0]!, w);
    await turn();
    expect(p).toMatchObject({ done: true, value: w });
    expect(q.queued).toBe(0);
  });

  it("full: queue_full past queueSize unless the next dispatch sends enough at once; rollout items are never refused", async () => {
    const q = new WaitQueue(options());
    for (let i = 0; i < 3; i++) void q.add(ticket(), 0, null, () => 0);
    const full = outcome(q.add(ticket(), 0, null, () => 0));
    await turn();
    expect(full.error?.code).toBe("queue_full");
    expect(q.queued).toBe(3);
    void q.add(ticket(), 0, null, () => 1);
    void q.add(ticket(), 0, null, () => 0, ).catch(() => undefined);
    void q.add(ticket({ prompt: "job" }, "image", { fromJob: true }), 0, null, () => 0);
    expect(q.queued).toBe(5);
  });

  it("timeout: queue_timeout after queueTimeoutMs saying why, the count back to 0; a rollout item outlives it", async () => {
    const q = new WaitQueue(options({ whyWaiting: () => "held by refit v2" }));
    const plain = outcome(q.add(ticket(), 0, null, () => 0));
    const job = outcome(q.add(ticket({ prompt: "j" }, "image", { fromJob: true }), 0, null, () => 0));
    await vi.advanceTimersByTimeAsync(999);
    expect(plain.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(plain.error?.code).toBe("queue_timeout");
    expect(plain.error?.message).toMatch(/waited 1 s .*held by refit v2/);
    expect(q.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(job.done).toBe(false);
    q.rejectAll(new Error("shutting down"));
    await turn();
    expect(job.error?.message).toBe("shutting down");
    expect(q.queued).toBe(0);
  });

  it("a client that leaves is answered with its abort reason at once, before or while waiting, and never handed a worker", async () => {
    const q = new WaitQueue(options());
    const gone = new AbortController();
    gone.abort(new Error("client closed"));
    const before = outcome(q.add(ticket(), 0, gone.signal, () => 0));
    const leaving = new AbortController();
    const during = outcome(q.add(ticket(), 0, leaving.signal, () => 0));
    expect(q.queued).toBe(1);
    leaving.abort(new Error("client closed while queued"));
    await turn();
    expect(before.error?.message).toBe("client closed");
    expect(during.error?.message).toBe("client closed while queued");
    expect(q.queued).toBe(0);
    expect(q.live().every((x) => x.settled)).toBe(true);
    await vi.advanceTimersByTimeAsync(2000); // its timer was cleared: no second answer, no negative count
    expect(q.queued).toBe(0);
  });

  it("after rejectAll every later wait fails with the same error", async () => {
    const q = new WaitQueue(options());
    const err = new Error("shutting down");
    q.rejectAll(err);
    const late = outcome(q.add(ticket(), 0, null, () => 0));
    await turn();
    expect(late.error).toBe(err);
    expect(q.queued).toBe(0);
  });

  it("answered waiters are compacted away under a long hold", () => {
    const q = new WaitQueue(options({ queueSize: 1000 }));
    const controllers = Array.from({ length: 200 }, () => new AbortController());
    for (const c of controllers) void q.add(ticket(), 0, c.signal, () => 0).catch(() => undefined);
    for (const c of controllers.slice(0, 190)) c.abort();
    expect(q.queued).toBe(10);
    expect(q.live().length).toBe(10);
  });
});

describe("a hold that gives up (a router that lost etcd)", () => {
  const lostEtcd = () => ({ afterMs: 5_000, error: () => new RouterError("state_store_unavailable", "etcd away", { details: { retryAfterS: 2 } }) });
  function held(queueTimeoutMs: number) {
    const gate = new Gate(() => undefined);
    const q = new WaitQueue({ queueSize: 10, queueTimeoutMs, ordered: false, whyWaiting: () => "held", heldError: () => gate.failing()?.error() ?? null });
    return { gate, q, sweep: new GiveUpSweep(gate, q) };
  }

  it("each held request ends with the hold's error 5 s after the later of its arrival and the hold; a rollout item keeps waiting; once released nothing more fails", async () => {
    const { gate, q, sweep } = held(60_000);
    const early = outcome(q.add(ticket(), 0, null, () => 0));
    await vi.advanceTimersByTimeAsync(2_000);
    const release = gate.hold("etcd lost", lostEtcd());
    sweep.start();
    await vi.advanceTimersByTimeAsync(3_000);
    const late = outcome(q.add(ticket({ prompt: "l" }), 0, null, () => 0));
    const job = outcome(q.add(ticket({ prompt: "j" }, "image", { fromJob: true }), 0, null, () => 0));
    await vi.advanceTimersByTimeAsync(1_750);
    expect(early.done).toBe(false);
    await vi.advanceTimersByTimeAsync(500);
    expect(early.error?.code).toBe("state_store_unavailable");
    expect(late.done).toBe(false);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(late.error?.code).toBe("state_store_unavailable");
    expect(q.queued).toBe(1);
    release();
    const after = outcome(q.add(ticket({ prompt: "a" }), 0, null, () => 0));
    await vi.advanceTimersByTimeAsync(10_000);
    expect([after.done, job.done]).toEqual([false, false]);
  });

  it("a queue timeout shorter than the hold's wait answers with the hold's error, not queue_timeout", async () => {
    const { gate, q, sweep } = held(1_000);
    gate.hold("etcd lost", lostEtcd());
    sweep.start();
    const r = outcome(q.add(ticket(), 0, null, () => 0));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.error?.code).toBe("state_store_unavailable");
  });
});

describe("routing keys", () => {
  const demand = { kind: "image" as const, model: null };

  it("a key goes to the same worker every time, and different keys spread over the workers", () => {
    const keys = new RoutingKeys();
    const all = workers(4);
    const first = keys.pinned("group-1", demand, all);
    for (let i = 0; i < 5; i++) expect(keys.pinned("group-1", demand, all)).toBe(first);
    const used = new Set(Array.from({ length: 64 }, (_, i) => keys.pinned(`g${i}`, demand, all)));
    expect(used.size).toBe(4);
    expect(keys.pinned(null, demand, all)).toBeNull();
  });

  it("bounded loads: a worker holding more than 1.25x the average of running keys gets no new key", () => {
    const keys = new RoutingKeys();
    const all = workers(2);
    // Every running key on one worker: new keys all go to the other until it catches up.
    const busy = keys.pinned("k0", demand, all)!;
    for (let i = 0; i < 6; i++) keys.stick(`hot${i}`, busy);
    const other = all.find((w) => w !== busy)!;
    for (let i = 0; i < 20; i++) expect(keys.pinned(`new${i}`, demand, all)).toBe(other);
  });

  it("a key with requests running stays on its worker; once they end it is placed by the ring again", () => {
    const keys = new RoutingKeys();
    const all = workers(3);
    const ringChoice = keys.pinned("g", demand, all)!;
    const elsewhere = all.find((w) => w !== ringChoice)!;
    keys.stick("g", elsewhere);
    keys.stick("g", elsewhere);
    expect(keys.pinned("g", demand, all)).toBe(elsewhere);
    keys.unstick("g", elsewhere);
    expect(keys.pinned("g", demand, all)).toBe(elsewhere);
    keys.unstick("g", elsewhere);
    expect(keys.size).toBe(0);
    expect(keys.pinned("g", demand, all)).toBe(ringChoice);
    // A key's worker that is no candidate any more is not waited for.
    keys.stick("g", elsewhere);
    const without = all.filter((w) => w !== elsewhere);
    expect(without).toContain(keys.pinned("g", demand, without));
  });
});

/** A worker's first answer is a cold start the cost model does not learn from (cost-model.ts): spend it. */
function warm(loads: LoadBook, w: Worker, now: { ms: number }): void {
  const t = ticket({ prompt: "warm-up" });
  const run = loads.start(w, t, null);
  now.ms += 50;
  loads.end(run, t, { ok: true });
}

describe("load book", () => {
  it("runs are counted until they end; an ended request teaches the cost model its service time", () => {
    const now = { ms: 0 };
    const loads = new LoadBook(() => now.ms);
    const [w] = workers(1);
    warm(loads, w!, now);
    const t = ticket();
    const run = loads.start(w!, t, null);
    expect(loads.runsOn(w!)).toBe(1);
    now.ms += 400;
    loads.end(run, t, { ok: true });
    expect(loads.runsOn(w!)).toBe(0);
    expect(loads.snapshot(w!).observations).toBe(1);
    expect(loads.predictMs(t.facts.work, w!)).toBeGreaterThan(100);
  });

  it("a batch is observed once, when its last member ends; a size never seen teaches the gain only, a known size teaches each member's time", () => {
    const now = { ms: 0 };
    const loads = new LoadBook(() => now.ms);
    const [w] = workers(1);
    // Gains are learned against the worker's own prediction, so only once it has been measured alone.
    while (loads.snapshot(w!).observations === 0) warm(loads, w!, now);
    const before = loads.snapshot(w!).observations;
    const runBatch = () => {
      const batch = { left: 3, size: 3, key: null, startedMs: now.ms, items: [] };
      const ts = [ticket({ prompt: "a" }), ticket({ prompt: "b" }), ticket({ prompt: "c" })];
      const runs = ts.map((t) => loads.start(w!, t, batch));
      now.ms += 120; // 2.4x one member alone (50 ms): a gain
      loads.end(runs[0]!, ts[0]!, { ok: true });
      loads.end(runs[1]!, ts[1]!, { ok: true });
      expect(loads.snapshot(w!).observations).toBe(before);
      loads.end(runs[2]!, ts[2]!, { ok: true });
    };
    runBatch();
    // The first batch of 3: its members' time alone would be its time / a guessed F(3); only F(3) is learned.
    expect(loads.snapshot(w!).observations).toBe(before);
    expect(loads.batchFactor(w!, ticket({ prompt: "a" }).facts.work, 3)).toBeCloseTo(2.4, 1);
    runBatch();
    expect(loads.snapshot(w!).observations).toBe(before + 3);
  });

  it("a gain class with no batch of 2 observed is untried until one runs; one that ends unobserved leaves it untried, one observed ends it", () => {
    const now = { ms: 0 };
    const loads = new LoadBook(() => now.ms);
    const [w] = workers(1);
    const small = ticket({ prompt: "a", size: "512x512" }).facts.work;
    const large = ticket({ prompt: "a", size: "1024x1024" }).facts.work;
    const runPair = (ms: number) => {
      const batch = { left: 2, size: 2, key: null, startedMs: now.ms, items: [] };
      const ts = [ticket({ prompt: "a", size: "512x512" }), ticket({ prompt: "b", size: "512x512" })];
      const runs = ts.map((t) => loads.start(w!, t, batch));
      expect(loads.batchUntried(w!, small)).toBe(false); // one exploring batch at a time
      expect(loads.batchUntried(w!, large)).toBe(true); // another class
      now.ms += ms;
      runs.forEach((r, i) => loads.end(r, ts[i]!, { ok: true }));
    };
    expect(loads.batchUntried(w!, small)).toBe(true);
    // A cold worker's batch teaches no gain (nothing to measure it against): still untried after it.
    runPair(80);
    expect(loads.batchUntried(w!, small)).toBe(true);
    while (loads.snapshot(w!).observations === 0) warm(loads, w!, now);
    runPair(80);
    expect(loads.batchUntried(w!, small)).toBe(false);
    expect(loads.batchUntried(w!, large)).toBe(true);
  });

  it("busyUntil chains runs in start order; a run past its prediction slows the worker's estimate", () => {
    let now = 0;
    const loads = new LoadBook(() => now);
    const [w] = workers(1);
    const a = loads.start(w!, ticket(), null);
    loads.start(w!, ticket(), null);
    expect(loads.busyUntil(w!, 0, 1)).toBeCloseTo(2 * a.predictedMs);
    expect(loads.slowdown(w!, a.predictedMs / 2)).toBe(1);
    now = 2 * a.predictedMs;
    expect(loads.slowdown(w!, now)).toBeCloseTo(3);
    expect(loads.inFlightWorkMs(w!, 0)).toBeCloseTo(2 * a.predictedMs);
  });

  it("another process behind the URL, or a removed worker, is learned anew", () => {
    const now = { ms: 0 };
    const registry = new Registry();
    const loads = new LoadBook(() => now.ms);
    registry.on("change", (e) => loads.onRegistryChange(e));
    const { worker } = registry.add("http://10.0.0.1:8000", { capabilities: { models: ["m"] } });
    warm(loads, worker, now);
    const t = ticket();
    const run = loads.start(worker, t, null);
    now.ms += 100;
    loads.end(run, t, { ok: true });
    expect(loads.snapshot(worker).observations).toBe(1);
    registry.processChanged(worker.url);
    expect(loads.snapshot(worker).observations).toBe(0);
  });
});

describe("video jobs", () => {
  it("a job counts as work on its worker until a poll shows it done; its own timestamps teach the cost model", () => {
    const loads = new LoadBook(() => 0);
    let ended = 0;
    const jobs = new VideoJobs(loads, () => ended++);
    const [w] = workers(1);
    const t = ticket({ prompt: "v", num_frames: 16 }, "video");
    jobs.started(w!, "video_0", t);
    jobs.ended("video_0", true, { createdMs: 0, completedMs: 1000 }); // the cold start, not learned from
    jobs.started(w!, "video_1", t);
    expect(loads.runsOn(w!)).toBe(1);
    jobs.ended("video_1", true, { createdMs: 1000, completedMs: 9000 });
    expect(loads.runsOn(w!)).toBe(0);
    expect(jobs.size).toBe(0);
    expect(ended).toBe(2);
    expect(loads.snapshot(w!).observations).toBe(1);
    jobs.ended("video_1", true, { createdMs: 1000, completedMs: 9000 }); // a second poll: nothing more
    expect(ended).toBe(2);
    expect(loads.snapshot(w!).observations).toBe(1);
  });

  it("a failed job frees its slot without teaching anything; one never polled expires after 3x its prediction (at least 60 s)", async () => {
    const loads = new LoadBook(() => 0);
    const jobs = new VideoJobs(loads, () => undefined);
    const [w] = workers(1);
    const t = ticket({ prompt: "v", num_frames: 16 }, "video");
    jobs.started(w!, "failed", t);
    jobs.ended("failed", false);
    expect(loads.snapshot(w!).observations).toBe(0);
    jobs.started(w!, "lost", t);
    const expiry = Math.max(60_000, 3 * loads.predictMs(t.facts.work, w!));
    await vi.advanceTimersByTimeAsync(expiry - 1);
    expect(loads.runsOn(w!)).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loads.runsOn(w!)).toBe(0);
  });

  it("the same job id started again (a retried create) counts once", () => {
    const loads = new LoadBook(() => 0);
    const jobs = new VideoJobs(loads, () => undefined);
    const [a, b] = workers(2);
    const t = ticket({ prompt: "v", num_frames: 16 }, "video");
    jobs.started(a!, "j", t);
    jobs.started(b!, "j", t);
    expect([loads.runsOn(a!), loads.runsOn(b!), jobs.size]).toEqual([0, 1, 1]);
  });
});
