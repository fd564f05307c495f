// Active health checks end to end: workers die (SIGKILL), get quarantined by
// an operator, or are registered before their process runs.
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let router: RouterProcess;
let s1: SimProcess;
let s2: SimProcess;
let s3: SimProcess;
const extra: SimProcess[] = [];

async function worker(url: string): Promise<any> {
  const r = await jsonRequest(`${router.url}/workers/${encodeURIComponent(url)}`);
  expect(r.status).toBe(200);
  return r.body.worker;
}

async function generations(sim: SimProcess): Promise<number> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body.requests_by_route["POST /v1/images/generations"] ?? 0;
}

/** Health probes the worker received; the router runs one at a time per worker, so each new one means the one before has finished. */
async function healthProbes(sim: SimProcess): Promise<number> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body.requests_by_route["GET /health"] ?? 0;
}

/** One small generation through the router; returns the worker that made it. */
async function generate(): Promise<string> {
  const r = await jsonRequest(`${router.url}/v1/images/generations`, {
    method: "POST",
    json: { prompt: "health", size: "64x64", num_inference_steps: 2, response_format: "b64_json" },
  });
  expect(r.status).toBe(200);
  return r.headers.get("x-sim-worker")!;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  [s1, s2, s3] = await Promise.all([startSimProcess([]), startSimProcess([]), startSimProcess([])]);
  router = await startRouterProcess(["--health-check-interval", "0.2", "--health-check-failure-threshold", "2", "--worker-urls", s1.url, s2.url, s3.url]);
  await waitFor(async () => ((await jsonRequest(`${router.url}/workers`)).body.workers as any[]).filter((w) => w.video_support === false && !w.is_dead).length === 3, 15_000, "3 healthy workers");
}, 20_000);

afterAll(async () => {
  await Promise.all([router?.stop(), s1?.stop(), s2?.stop(), s3?.stop(), ...extra.map((s) => s.stop())]);
});

describe("health checks", () => {
  it("a killed worker becomes dead after the failure threshold and gets no more traffic", async () => {
    s3.kill("SIGKILL");
    await s3.exited;
    const dead = await waitFor(async () => {
      const w = await worker(s3.url);
      return w.is_dead ? w : undefined;
    }, 15_000, "killed worker marked dead");
    expect(dead.consecutive_failures).toBeGreaterThanOrEqual(2);
    const health = await jsonRequest(`${router.url}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ healthy_workers: 2, dead_workers: 1, total_workers: 3 });

    const makers = new Set<string>();
    for (let i = 0; i < 9; i++) makers.add(await generate());
    expect([...makers].sort()).toEqual([s1.url, s2.url].sort());
  });

  it("PUT is_dead true quarantines a healthy worker until is_dead false", async () => {
    const put = await jsonRequest(`${router.url}/workers/${encodeURIComponent(s2.url)}`, { method: "PUT", json: { is_dead: true } });
    expect(put.status).toBe(200);
    const before = await generations(s2);
    for (let i = 0; i < 6; i++) expect(await generate()).toBe(s1.url);
    expect(await generations(s2)).toBe(before);
    // Good probes do not lift an operator's quarantine: 4 more probes started
    // means 3 finished, more than the --health-check-success-threshold (2)
    // that brings any other dead worker back.
    const probed = await healthProbes(s2);
    await waitFor(async () => (await healthProbes(s2)) >= probed + 4, 15_000, "4 more health probes of the quarantined worker");
    expect((await worker(s2.url)).is_dead).toBe(true);

    const back = await jsonRequest(`${router.url}/workers/${encodeURIComponent(s2.url)}`, { method: "PUT", json: { is_dead: false } });
    expect(back.status).toBe(200);
    expect(back.body.worker.is_dead).toBe(false);
    // Six at once: two idle workers that each run one at a time must share
    // them (one after another, earliest-finish may rightly keep choosing the
    // worker it has measured when predictions tie).
    const makers = new Set(await Promise.all(Array.from({ length: 6 }, () => generate())));
    expect(makers).toContain(s2.url);
    expect(await generations(s2)).toBeGreaterThan(before);
  });

  /**
   * Rounds of 6 concurrent generations until `url` made one (at most 10 rounds). One after another,
   * earliest-finish rightly keeps choosing a worker it measured fast over one it has not measured
   * (on a loaded machine one slow answer can make a worker look 5x slower); with requests waiting,
   * an unmeasured worker is probed. A worker that never serves again still fails the test.
   */
  async function makersUntil(url: string): Promise<Set<string>> {
    const makers = new Set<string>();
    for (let round = 0; round < 10 && !makers.has(url); round++) {
      for (const m of await Promise.all(Array.from({ length: 6 }, () => generate()))) makers.add(m);
    }
    return makers;
  }

  it("a worker registered while its process is down is dead, and comes back by itself once it runs", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const reg = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url } });
    expect(reg.status).toBe(200);
    expect(reg.body.worker.is_dead).toBe(true);
    for (let i = 0; i < 4; i++) expect([s1.url, s2.url]).toContain(await generate());

    const late = await startSimProcess(["--port", String(port)]);
    extra.push(late);
    expect(late.url).toBe(url);
    const alive = await waitFor(async () => {
      const w = await worker(url);
      return w.is_dead ? undefined : w;
    }, 15_000, "late worker back in rotation");
    expect(alive.video_support).toBe(false);
    expect(await makersUntil(url)).toContain(url);
  });

  it("a worker that died and restarts on its port comes back by itself", async () => {
    const restarted = await startSimProcess(["--port", String(s3.port)]);
    extra.push(restarted);
    await waitFor(async () => !(await worker(s3.url)).is_dead, 15_000, "restarted worker back in rotation");
    expect((await worker(s3.url)).consecutive_failures).toBe(0);
    expect(await makersUntil(s3.url)).toContain(s3.url);
  });
});

describe("a worker warming up (SGLang holds /v1/models until its pipeline is loaded)", () => {
  it("is `starting` at registration, never dead, and is routed to once its card arrives; a request sent meanwhile waits and is answered by it", async () => {
    // 6 s: the router must have registered it (and probed it) well before the card comes, even on a loaded machine.
    const sim = await startSimProcess(["--warmup-ms", "6000"]);
    const router = await startRouterProcess(["--health-check-interval", "0.5", "--health-check-timeout", "0.5", "--worker-urls", sim.url]);
    try {
      const states = new Set<string>();
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const w = (await jsonRequest(`${router.url}/workers`)).body.workers?.[0];
          if (w) states.add(w.state);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      await waitFor(() => states.has("starting"), 15_000, "the worker shown as starting");
      const answer = await fetch(`${router.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "a cat", size: "64x64", num_inference_steps: 1 }) });
      await answer.arrayBuffer();
      expect(answer.status).toBe(200);
      expect(answer.headers.get("x-sim-worker")).toBe(sim.url);
      await waitFor(() => states.has("healthy"), 10_000, "the worker healthy after its warm-up");
      polling = false;
      await poll;
      expect([...states]).not.toContain("dead");
    } finally {
      await router.stop();
      await sim.stop();
    }
  });
});
