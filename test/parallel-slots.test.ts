/**
 * dp_size-aware concurrency (issue 19): a worker with data-parallel replicas
 * behind one URL (`dp_size` in GET /server_info) is sent that many
 * generations at once in earliest-finish mode, and the plan counts it free
 * when any of its slots is. Over sockets: a router process in front of a
 * simulated worker started with `--dp-size 2` (which runs two generations at
 * once, as the real one does) or with the default dp_size 1. The plan's
 * arithmetic also runs on the virtual fleet (test/helpers/virtual-fleet.ts:
 * the real admission with a fake clock); a small HTTP server stands in for
 * odd `/server_info` answers.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeParallelSlots } from "../src/health/probe.js";
import { createUpstream, type Upstream } from "../src/proxy/upstream.js";
import { occupy, planDispatch, type PlanWorker } from "../src/scheduler/plan.js";
import { jsonRequest, startRouterProcess, waitFor } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { VirtualFleet, type Job } from "./helpers/virtual-fleet.js";

describe("reading dp_size", () => {
  let upstream: Upstream;
  let sim: SimProcess;
  let worker: Server;
  let answer: unknown = { dp_size: 4, tp_size: 1 };
  let workerUrl = "";
  beforeAll(async () => {
    upstream = createUpstream();
    sim = await startSimProcess();
    // A worker whose /server_info says what each test sets (the sim always says dp_size 1).
    worker = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(req.url === "/server_info" ? JSON.stringify(answer) : "{}");
    });
    await new Promise<void>((r) => worker.listen(0, "127.0.0.1", r));
    workerUrl = `http://127.0.0.1:${(worker.address() as AddressInfo).port}`;
  }, 20_000);
  afterAll(async () => {
    await sim?.stop();
    worker?.close();
    await upstream?.close();
  });

  it("a worker's dp_size is its parallel slots; a missing, odd or unreachable answer is 1", async () => {
    expect(await probeParallelSlots(upstream, workerUrl, 2000)).toBe(4);
    expect(await probeParallelSlots(upstream, sim.url, 2000)).toBe(1);
    for (const odd of [{}, { dp_size: 0 }, { dp_size: 1.5 }, { dp_size: "2" }, null]) {
      answer = odd;
      expect(await probeParallelSlots(upstream, workerUrl, 2000)).toBe(1);
    }
    answer = { dp_size: 1_000_000 };
    expect(await probeParallelSlots(upstream, workerUrl, 2000)).toBe(64);
    expect(await probeParallelSlots(upstream, "http://127.0.0.1:1", 2000)).toBe(1);
  });
});

describe("the plan with parallel slots", () => {
  it("a request takes the earliest free slot; the worker is next free when its earliest slot is", () => {
    const s: PlanWorker = { busyUntilMs: 0, otherSlotsMs: [50], freeSlots: 2 };
    occupy(s, 100);
    expect([s.busyUntilMs, s.otherSlotsMs]).toEqual([50, [100]]);
    occupy(s, 120);
    expect([s.busyUntilMs, s.otherSlotsMs]).toEqual([100, [120]]);
  });

  it("three equal requests, a 2-slot and a 1-slot worker, all idle: each slot gets one", () => {
    const items = Array.from({ length: 3 }, () => ({ candidates: ["dp2", "dp1"], predictMs: () => 100 }));
    const state = new Map<string, PlanWorker>([
      ["dp2", { busyUntilMs: 0, otherSlotsMs: [0], freeSlots: 2 }],
      ["dp1", { busyUntilMs: 0, freeSlots: 1 }],
    ]);
    const plan = planDispatch(items, state, 0);
    expect(plan.map(([, w]) => w).sort()).toEqual(["dp1", "dp2", "dp2"]);
  });
});

describe("earliest-finish sends a dp_size worker that many generations at once", () => {
  const jobs = (n: number): Job[] => Array.from({ length: n }, (_, i) => ({ body: { prompt: `p${i}`, size: "512x512", num_inference_steps: 20 } }));
  /** One 512x512, 20-step image at speed 1 (the virtual worker's formula). */
  const oneMs = 2 + (400 / (1024 * 1024 * 50)) * 512 * 512 * 20;

  it("a 2-slot worker holds 2 generations at once and finishes a burst in half the time; beside a 1-slot worker it takes two thirds", async () => {
    // A fixed 1 ms of router work per answer (not the measured CPU): the bound below is about slots, and a cold JIT's first plans would blur it.
    const alone = new VirtualFleet([{ speed: 1, slots: 2 }], "earliest-finish", { routerCpu: 1 });
    await alone.burst(jobs(4)); // the cost model learns the worker
    alone.nowMs += 1000;
    const { makespanMs } = await alone.burst(jobs(8));
    const [dp2] = alone.registry.all();
    expect(alone.peakConcurrency.get(dp2!)).toBe(2);
    // 8 requests on 2 slots: 4 rounds (plus the router's 1 ms per answer), not 8.
    expect(makespanMs).toBeLessThan(4 * oneMs + 20);

    const mixed = new VirtualFleet([{ speed: 1, slots: 2 }, { speed: 1 }], "earliest-finish", { routerCpu: 1 });
    await mixed.burst(jobs(6));
    mixed.nowMs += 1000;
    const burst = await mixed.burst(jobs(30));
    const [two, one] = mixed.registry.all();
    expect(burst.served.get(two!)).toBe(20);
    expect(burst.served.get(one!)).toBe(10);
    expect(burst.makespanMs).toBeLessThan(10 * oneMs * 1.1);
    expect(mixed.peakConcurrency.get(one!)).toBe(1);
  });

  it("a worker that reports no dp_size is sent one at a time", async () => {
    const fleet = new VirtualFleet([{ speed: 1 }]);
    await fleet.burst(jobs(4));
    const [w] = fleet.registry.all();
    expect(fleet.peakConcurrency.get(w!)).toBe(1);
  });
});

describe("registration reads dp_size", () => {
  it("a worker registered over REST shows its dp_size as parallel_slots; the sim (no dp) shows 1", async () => {
    const sim = await startSimProcess();
    const dp = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/server_info") res.end(JSON.stringify({ dp_size: 2 }));
      else if (req.url === "/v1/models") res.end(JSON.stringify({ object: "list", data: [{ id: "Qwen/Qwen-Image", task_type: "T2I" }] }));
      else res.end("{}");
    });
    await new Promise<void>((r) => dp.listen(0, "127.0.0.1", r));
    const dpUrl = `http://127.0.0.1:${(dp.address() as AddressInfo).port}`;
    const router = await startRouterProcess(["--health-check-interval", "3600"]);
    try {
      for (const url of [sim.url, dpUrl]) expect((await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url } })).status).toBeLessThan(300);
      const workers = await waitFor(async () => {
        const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as { url: string; parallel_slots: number; task_type: string | null }[];
        return ws.length === 2 && ws.every((w) => w.task_type !== null) ? ws : undefined;
      }, 10_000, "both workers probed");
      expect(Object.fromEntries(workers.map((w) => [w.url, w.parallel_slots]))).toEqual({ [sim.url]: 1, [dpUrl]: 2 });
    } finally {
      await router.stop();
      await sim.stop();
      dp.close();
    }
  }, 30_000);
});

describe("over sockets: a dp_size-2 simulated worker behind the router (default flags: earliest-finish)", () => {
  /** ~0.7 s per generation at --speed 0.06 (512x512, 20 steps): long enough to see both outstanding. */
  const body = { size: "512x512", num_inference_steps: 20, response_format: "b64_json" };
  type Stats = { in_flight: number; peak_in_flight: number; scheduler_running: number; generations_run: number };
  const simStats = async (url: string): Promise<Stats> => (await jsonRequest(`${url}/sim/stats`)).body as Stats;

  async function twoAtOnce(dpSize: number): Promise<{ peakRunning: number; peakInFlight: number; statuses: number[]; workerIds: (string | null)[] }> {
    const sim = await startSimProcess(["--dp-size", String(dpSize), "--speed", "0.06"]);
    const router = await startRouterProcess(["--worker-urls", sim.url]);
    try {
      const generate = (prompt: string) => jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt, ...body } });
      // Two answers first, so the cost model knows the worker.
      for (const p of ["learn-1", "learn-2"]) expect((await generate(p)).status).toBe(200);
      await jsonRequest(`${sim.url}/sim/reset_stats`, { method: "POST" });
      let peakRunning = 0;
      let outstanding = true;
      const pair = Promise.all([generate("a"), generate("b")]).finally(() => (outstanding = false));
      while (outstanding) {
        peakRunning = Math.max(peakRunning, (await simStats(sim.url)).scheduler_running);
        await new Promise((r) => setTimeout(r, 20));
      }
      const answers = await pair;
      const after = await simStats(sim.url);
      expect(after.generations_run).toBe(2);
      return { peakRunning, peakInFlight: after.peak_in_flight, statuses: answers.map((a) => a.status), workerIds: answers.map((a) => a.headers.get("x-sim-worker")) };
    } finally {
      await router.stop();
      await sim.stop();
    }
  }

  it("the dp_size-2 worker holds 2 generations at once; a dp_size-1 worker holds 1 (the other waits in the router)", async () => {
    const dp2 = await twoAtOnce(2);
    expect(dp2.statuses).toEqual([200, 200]);
    expect(dp2.peakRunning).toBe(2);
    expect(dp2.peakInFlight).toBe(2);
    const dp1 = await twoAtOnce(1);
    expect(dp1.statuses).toEqual([200, 200]);
    expect(dp1.peakRunning).toBe(1);
    expect(dp1.peakInFlight).toBe(1);
  }, 60_000);
});
