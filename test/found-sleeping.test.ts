/**
 * A worker put to sleep behind the router's back (`POST
 * /release_memory_occupation` sent to it directly). Like the real server,
 * the sleeping sim still says ok on `/health`, fails image generations with
 * the plain-text 500 "Internal Server Error" and `/rollout/generate` with
 * 500 `{"detail": "Server is sleeping. ..."}`. The router must see it as
 * asleep (the state of a worker it put to sleep itself), not as failing:
 * with `--eject-after-failures 1` a single 500 counted as a fault would
 * eject it. Clients get their answers from the other worker; the sleeper
 * gets no generation until it is woken, through the router or directly.
 */
import { afterEach, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { holdsFor } from "./helpers/idle.js";

const IMAGE = "/v1/images/generations";
const small = { size: "64x64", num_inference_steps: 2, response_format: "b64_json" };

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function sim(): Promise<SimProcess> {
  // ~150 ms per image, so a burst of requests spreads over both workers.
  const s = await startSimProcess(["--speed", "0.003"]);
  cleanup.push(() => s.stop());
  return s;
}

async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(args);
  cleanup.push(() => r.stop());
  return r;
}

interface WorkerView {
  url: string;
  state: string;
  is_dead: boolean;
  is_sleeping: boolean;
  consecutive_failures: number;
}

async function workerOf(r: RouterProcess, url: string): Promise<WorkerView> {
  const all = (await jsonRequest(`${r.url}/workers`)).body.workers as WorkerView[];
  return all.find((w) => w.url === url)!;
}

async function burst(r: RouterProcess, n: number): Promise<{ status: number; worker: string | null }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const res = await jsonRequest(`${r.url}${IMAGE}`, { method: "POST", json: { prompt: `p${i}`, ...small } });
      return { status: res.status, worker: res.headers.get("x-sim-worker") };
    }),
  );
}

async function imagesOn(s: SimProcess): Promise<number> {
  return (await jsonRequest(`${s.url}/sim/stats`)).body.requests_by_route[`POST ${IMAGE}`] ?? 0;
}

describe("a worker put to sleep behind the router's back", () => {
  it("is recognised as asleep (not ejected), its requests succeed elsewhere, it gets nothing until woken through the router", async () => {
    const [a, b] = await Promise.all([sim(), sim()]);
    const r = await router(["--eject-after-failures", "1", "--worker-urls", a.url, b.url]);
    await waitFor(async () => (await workerOf(r, a.url))?.state === "healthy" && (await workerOf(r, b.url))?.state === "healthy", 10_000, "both workers probed");
    expect((await jsonRequest(`${a.url}/release_memory_occupation`, { method: "POST" })).body).toMatchObject({ success: true, sleeping: true });

    // Until the router knows, requests reach the sleeper, get its 500 and are retried on b.
    const first = await burst(r, 6);
    expect(first.map((x) => x.status)).toEqual(Array(6).fill(200));
    expect(first.every((x) => x.worker === b.url)).toBe(true);
    expect(await imagesOn(a)).toBeGreaterThan(0); // the sleeper was tried
    const seen = await waitFor(async () => ((await workerOf(r, a.url)).state === "sleeping" ? workerOf(r, a.url) : undefined), 15_000, "the sleeper seen as sleeping");
    expect(seen).toMatchObject({ is_dead: false, is_sleeping: true, consecutive_failures: 0 });
    await r.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("worker is sleeping") && l.worker === a.url);
    expect(r.logs.filter((l) => l.msg === "worker ejected after failed requests")).toEqual([]);

    // Asleep in the router's eyes: no generation reaches it, whatever /health says.
    const triedBefore = await imagesOn(a);
    const meanwhile = await burst(r, 8);
    expect(meanwhile.map((x) => x.status)).toEqual(Array(8).fill(200));
    expect(await imagesOn(a)).toBe(triedBefore);
    expect((await jsonRequest(`${r.url}/health`)).body.sleeping_workers).toBe(1);

    // The router's wake wakes it, and it serves again.
    const woke = await jsonRequest(`${r.url}/resume_memory_occupation`, { method: "POST", json: {} });
    expect(woke.status).toBe(200);
    expect(woke.body.results.map((x: { worker_url: string }) => x.worker_url)).toEqual([a.url]);
    expect((await workerOf(r, a.url)).state).toBe("healthy");
    await waitFor(async () => (await burst(r, 6)).some((x) => x.status === 200 && x.worker === a.url), 10_000, "a generation answered by the woken worker");
  }, 60_000);

  it("woken behind the router's back too: the router notices (a check every --health-check-interval) and routes to it again", async () => {
    const [a, b] = await Promise.all([sim(), sim()]);
    const r = await router(["--eject-after-failures", "1", "--health-check-interval", "0.5", "--worker-urls", a.url, b.url]);
    await waitFor(async () => (await workerOf(r, a.url))?.state === "healthy" && (await workerOf(r, b.url))?.state === "healthy", 10_000, "both workers probed");
    await jsonRequest(`${a.url}/release_memory_occupation`, { method: "POST" });
    await waitFor(async () => {
      await burst(r, 4);
      return (await workerOf(r, a.url)).state === "sleeping";
    }, 10_000, "the sleeper seen as sleeping");
    // Still asleep after a few checks: it stays out (checked throughout, not only at the end).
    await holdsFor(1500, "a sleeping worker stays sleeping through 3 checks", async () => (await workerOf(r, a.url)).state === "sleeping");

    expect((await jsonRequest(`${a.url}/resume_memory_occupation`, { method: "POST" })).body).toMatchObject({ success: true, sleeping: false });
    await waitFor(async () => (await workerOf(r, a.url)).state === "healthy", 10_000, "the router to notice the wake");
    await r.waitForLog((l) => l.msg === "a worker found asleep answers again: back in rotation" && l.worker === a.url);
    await waitFor(async () => (await burst(r, 6)).some((x) => x.status === 200 && x.worker === a.url), 10_000, "a generation answered by the woken worker");
    expect(r.logs.filter((l) => l.msg === "worker ejected after failed requests")).toEqual([]);
  }, 60_000);
});
