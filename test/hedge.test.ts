/**
 * Hedged tails over real sockets: the built router and simulated workers as
 * processes. One worker turns slow behind the router's back (its speed set
 * on the sim after the router learned it fast); the idle fast worker gets a
 * copy of the seeded request running there, the client's answer is the
 * copy's, and the slow worker's connection is cut while its GPU work goes
 * on (SGLang has no abort). No copy while a request waits in the queue, none
 * during a refit, a copy in flight is cut when a refit begins, and no copy
 * of a request without a seed. The access log, /metrics and rollout results
 * say what happened.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generations, hedgeMetrics, image, large, learnedPair, lines, pairWithSlow, setSpeed, simStats, small, stopAll } from "./helpers/hedge.js";
import { jsonRequest, waitFor, type RouterProcess } from "./helpers/router.js";
import type { SimProcess } from "./helpers/sim.js";
import { createRouterClient, type RolloutJobResult } from "../sdk/src/index.js";

describe("a slow worker and an idle fast one", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    ({ sims, router } = await learnedPair());
  });
  afterAll(() => stopAll(router, sims));

  it("the client gets the fast copy's answer (headers, body and its image), the slow original is cut while its GPU work goes on", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    const before = await hedgeMetrics(router);
    await setSpeed(slow, 0.005); // ~2.4 s for a small image, unknown to the router
    // A burst of two: one runs on each worker; the fast one then idles while the slow one still works.
    const { pair, prefix } = await pairWithSlow(router, slow, small, "hedge");
    const slowBefore = await simStats(slow); // the pair's request is open there, not run yet
    const answers = await Promise.all(pair);
    const slowNow = await simStats(slow);

    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    // Both answers came from the fast worker: its own, and the copy of the one the slow worker had.
    expect(answers.map((a) => a.worker)).toEqual([fast.url, fast.url]);
    expect(generations(slowNow)).toBe(generations(slowBefore));
    // The slow worker's request was cut: its connection is gone, its GPU still runs it (no abort in SGLang).
    expect(slowNow.in_flight).toBe(0);
    expect(slowNow.scheduler_running).toBe(1);
    expect(slowNow.generations_run).toBe(slowBefore.generations_run);

    // Never mixed: the answer's image is on the worker whose headers came, and the router sends its url there.
    // The access log is written when each answer ended; the lines come through the router's stdout.
    await waitFor(() => lines(router, prefix).length === 2, 15_000, "both access-log lines");
    const hedged = lines(router, prefix).find((l) => l.hedge !== undefined);
    expect(hedged).toMatchObject({ hedge: "copy", hedgeWorker: fast.url, worker: fast.url, status: 200 });
    const answer = answers.find((a) => a.requestId === hedged.requestId)!;
    const content = await fetch(`${router.url}${answer.body.data[0].url}`);
    expect(content.status).toBe(200);
    expect(content.headers.get("content-type")).toBe("image/png");
    await content.arrayBuffer();
    // The image exists on the fast worker only (the slow one never finished it).
    expect((await fetch(`${fast.url}${answer.body.data[0].url}`)).status).toBe(200);
    expect((await fetch(`${slow.url}${answer.body.data[0].url}`)).status).toBe(404);
    // Only the hedged request's line says so.
    expect(lines(router, prefix).filter((l) => l.hedge !== undefined)).toHaveLength(1);

    const after = await hedgeMetrics(router);
    expect(after.started - before.started).toBe(1);
    expect(after.won - before.won).toBe(1);
    expect(after.cut - before.cut).toBe(0);
    // The cut request's GPU work still ends on the slow worker.
    await waitFor(async () => (await simStats(slow)).generations_run > slowBefore.generations_run, 20_000, "the cut generation ran to its end");
  });

  it("a rollout item's result says it was hedged and which copy won", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await waitFor(async () => (await simStats(slow)).scheduler_running === 0, 20_000, "the slow worker idle");
    // A job of two: one item on each worker, as a rule (again if both went to the fast one).
    let results: any[] = [];
    for (let i = 0; i < 6; i++) {
      const before = generations(await simStats(slow));
      const r = await fetch(`${router.url}/v1/rollouts`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ requests: [1, 2].map((seed) => ({ path: "/v1/images/generations", body: { ...small, seed: 100 * i + seed } })) }),
      });
      expect(r.status).toBe(200);
      results = (await r.text())
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
        .filter((l) => l.index !== undefined);
      if (generations(await simStats(slow)) > before) break;
    }
    expect(results.map((x) => x.status)).toEqual([200, 200]);
    const hedged = results.filter((x) => x.hedge !== null);
    expect(hedged).toHaveLength(1);
    expect(hedged[0].hedge).toEqual({ worker_id: encodeURIComponent(fast.url), winner: "copy" });
    expect(hedged[0].worker_id).toBe(encodeURIComponent(fast.url));
    expect(results.find((x) => x.hedge === null).hedge).toBeNull();
  });

  it("over RPC too (RolloutService.Run through the SDK): the result names the copy's worker and the winner", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await waitFor(async () => (await simStats(slow)).scheduler_running === 0, 20_000, "the slow worker idle");
    const client = createRouterClient({ baseUrl: router.url, transport: "connect" });
    let results: RolloutJobResult[] = [];
    for (let i = 0; i < 6; i++) {
      const before = generations(await simStats(slow));
      results = [];
      for await (const r of client.rollouts.run([1, 2].map((seed) => ({ path: "/v1/images/generations", body: { ...small, seed: 500 + 10 * i + seed } })))) results.push(r);
      if (generations(await simStats(slow)) > before) break;
    }
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    const hedged = results.filter((r) => r.hedgeWinner !== "");
    expect(hedged.map((r) => [r.hedgeWorkerId, r.hedgeWinner, r.workerId])).toEqual([[encodeURIComponent(fast.url), "copy", encodeURIComponent(fast.url)]]);
    expect(results.filter((r) => r.hedgeWinner === "").map((r) => r.hedgeWorkerId)).toEqual([""]);
  });

  it("a request without a seed is never copied: its answer comes from the slow worker", async () => {
    const [slow] = sims as [SimProcess, SimProcess];
    await waitFor(async () => (await simStats(slow)).scheduler_running === 0, 20_000, "the slow worker idle");
    await setSpeed(slow, 0.02); // ~600 ms
    const before = await hedgeMetrics(router);
    const answers = await Promise.all((await pairWithSlow(router, slow, small, "noseed", false)).pair);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(answers.map((a) => a.worker)).toContain(slow.url);
    expect((await hedgeMetrics(router)).started).toBe(before.started);
  });
});

describe("a copy whose worker fails", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    ({ sims, router } = await learnedPair());
  });
  afterAll(() => stopAll(router, sims));

  it("is never the client's answer: the copy's 500 is dropped and the original's answer comes from the slow worker", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await setSpeed(slow, 0.005);
    const { pair, prefix } = await pairWithSlow(router, slow, small, "failing");
    // The fast worker answered its own request; from now on it fails every generation (plain-text 500).
    const first = await Promise.race(pair);
    expect(first.worker).toBe(fast.url);
    expect((await jsonRequest(`${fast.url}/sim/config`, { method: "POST", json: { failure_rate: 1 } })).status).toBe(200);
    const fastBefore = generations(await simStats(fast));
    const answers = await Promise.all(pair);
    const original = answers.find((a) => a !== first)!;
    expect(original.status).toBe(200);
    expect(original.worker).toBe(slow.url);
    expect(original.body.data).toHaveLength(1);
    const line = await router.waitForLog((l) => l.msg === "request" && l.requestId === original.requestId);
    expect(line).toMatchObject({ status: 200, worker: slow.url, hedge: "original", hedgeWorker: fast.url });
    expect(await hedgeMetrics(router)).toEqual({ started: 1, won: 0, cut: 0, failed: 1 });
    // The copy did reach the fast worker (and failed there).
    expect(generations(await simStats(fast))).toBe(fastBefore + 1);
    await waitFor(() => lines(router, prefix).length === 2, 15_000, "both access-log lines");
  });
});

describe("a loaded fleet pays nothing", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    ({ sims, router } = await learnedPair());
  });
  afterAll(() => stopAll(router, sims));

  it("no copy while requests wait in the queue: the straggler's copy starts only after the last queued request left, so it answers last", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await setSpeed(slow, 0.005);
    const order: string[] = [];
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        image(router, { ...small, seed: 200 + i }, `loaded-${i}`).then((a) => {
          order.push(a.requestId);
          return a;
        }),
      ),
    );
    expect(answers.every((a) => a.status === 200 && a.worker === fast.url)).toBe(true);
    await waitFor(() => lines(router, "loaded-").length === 8, 15_000, "every access-log line");
    const hedged = lines(router, "loaded-").filter((l) => l.hedge !== undefined);
    expect(hedged).toHaveLength(1);
    expect(hedged[0].hedge).toBe("copy");
    // Seven requests went through the fast worker (one at a time, from the queue) before the copy started.
    expect(order.at(-1)).toBe(hedged[0].requestId);
    expect((await hedgeMetrics(router)).started).toBe(1);
  });
});

describe("hedging and refits", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  // A fresh pair each: a slow answer teaches the router that worker's speed.
  beforeEach(async () => {
    ({ sims, router } = await learnedPair(["--drain-timeout", "60"]));
  });
  afterEach(() => stopAll(router, sims));

  it("a refit that begins while a request runs: no copy, the original's answer on the old weights", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await setSpeed(slow, 0.03); // ~3.4 s for the large image
    const before = await hedgeMetrics(router);
    const version = (await jsonRequest(`${router.url}/workers`)).body.workers[0].weight_version;
    // A pair: one on each worker. A copy of the slow one would be worth it some 0.6 s in (overdue); the refit's hold comes first.
    const { pair, prefix } = await pairWithSlow(router, slow, large, "refit-hold");
    const refit = jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/hold" } });
    const answers = await Promise.all(pair);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(answers.map((a) => a.worker).sort()).toEqual([slow.url, fast.url].sort());
    // Both ran on the weights they were sent with: the refit drained them.
    expect(answers.map((a) => a.version)).toEqual([version, version]);
    expect((await refit).status).toBe(200);
    expect((await hedgeMetrics(router)).started).toBe(before.started);
    expect(lines(router, prefix).filter((l) => l.hedge !== undefined)).toEqual([]);
  });

  it("a copy in flight when a refit begins is cut; the client gets the original's answer", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    await setSpeed(slow, 0.03); // ~3.4 s for the large image
    const before = await hedgeMetrics(router);
    const version = (await jsonRequest(`${router.url}/workers`)).body.workers[0].weight_version;
    const { pair } = await pairWithSlow(router, slow, large, "refit-cut");
    // The fast worker turns slow too (unknown to the router) once its own request runs (the sim reads its
    // speed when a request starts), before the copy can start (~0.6 s in): the copy will still run when the refit begins.
    await waitFor(async () => (await simStats(fast)).in_flight === 1 || (await Promise.race([Promise.race(pair).then(() => true), Promise.resolve(false)])), 10_000, "the fast worker's own request started");
    await setSpeed(fast, 0.02);
    const first = await Promise.race(pair);
    expect(first.worker).toBe(fast.url);
    await waitFor(async () => (await hedgeMetrics(router)).started > before.started, 10_000, "a copy started");
    await waitFor(async () => (await simStats(fast)).in_flight === 1, 15_000, "the copy reached the fast worker");
    const refit = jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/cut" } });
    // The copy's connection is cut at once; its GPU work goes on.
    await waitFor(async () => (await hedgeMetrics(router)).cut > before.cut, 15_000, "the copy cut");
    const fastNow = await simStats(fast);
    expect(fastNow.in_flight).toBe(0);
    expect(fastNow.scheduler_running).toBe(1);
    const answers = await Promise.all(pair);
    const original = answers.find((a) => a !== first)!;
    expect(original.status).toBe(200);
    expect(original.worker).toBe(slow.url);
    expect(original.version).toBe(version);
    expect((await refit).status).toBe(200);
    const after = await hedgeMetrics(router);
    expect(after.started - before.started).toBe(1);
    expect(after.won - before.won).toBe(0);
    const line = await router.waitForLog((l) => l.msg === "request" && l.requestId === original.requestId);
    expect(line).toMatchObject({ hedge: "original", hedgeWorker: fast.url, worker: slow.url });
  });
});

describe("--hedge off", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    ({ sims, router } = await learnedPair(["--hedge", "off"]));
  });
  afterAll(() => stopAll(router, sims));

  it("never copies: the straggler's answer comes from the slow worker", async () => {
    const [slow] = sims as [SimProcess, SimProcess];
    await setSpeed(slow, 0.02);
    const answers = await Promise.all((await pairWithSlow(router, slow, small, "off")).pair);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(answers.map((a) => a.worker)).toContain(slow.url);
    expect(await hedgeMetrics(router)).toEqual({ started: 0, won: 0, cut: 0, failed: 0 });
    expect(router.logs.filter((l) => l.msg === "request" && l.hedge !== undefined)).toEqual([]);
  });
});
