/**
 * Sleep and wake across routers on one etcd (issue 21, docs/multi-router.md
 * "Sleep/wake across routers"), against a real etcd started by the test,
 * routers and simulated workers as processes: a sleep through A waits until
 * B's own requests in flight are done before the release reaches the worker
 * (the sim's `control_calls` record what was open when it arrived), B sends
 * nothing to the sleeping worker afterwards, and serves again after a wake
 * through A. A LoRA change through A is drained the same way: B's requests
 * in flight end on the old adapter before the call reaches the worker, later
 * ones carry the new one, and B answers with the pool's LoRA.
 */
import { describe, expect, it } from "vitest";
import { useEtcdRouters } from "./helpers/etcd-routers.js";
import { holdsFor } from "./helpers/idle.js";
import { jsonRequest, waitFor, type RouterProcess } from "./helpers/router.js";
import type { SimProcess } from "./helpers/sim.js";
import { needTools } from "./helpers/tools.js";

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
const { tool, server, router, sim } = useEtcdRouters();

interface Call {
  route: string;
  received_at_ms: number;
  generations_open: number;
}
interface SimStats {
  weights: string;
  sleeping: boolean;
  generations_open: number;
  requests_by_route: Record<string, number>;
  control_calls: Call[];
}
const statsOf = async (s: SimProcess): Promise<SimStats> => (await jsonRequest(`${s.url}/sim/stats`)).body as SimStats;
const generationsAt = async (s: SimProcess): Promise<number> => (await statsOf(s)).requests_by_route["POST /v1/images/generations"] ?? 0;

interface Answer {
  status: number;
  version: string | null;
  weights: string | null;
}
async function generate(base: string): Promise<Answer> {
  const res = await fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smallImage) });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get("x-weight-version"), weights: res.headers.get("x-sim-weights") };
}
/** The status and the adapter the worker had active when it made the image (the sim's x-sim-lora; null: none). */
async function generateLora(base: string): Promise<{ status: number; lora: string | null }> {
  const res = await fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smallImage) });
  await res.arrayBuffer();
  return { status: res.status, lora: res.headers.get("x-sim-lora") };
}

/** Two routers on one fresh prefix (least-request: every request goes to the worker at once), sharing `worker`, healthy in both. */
async function twoRouters(worker: SimProcess): Promise<[RouterProcess, RouterProcess, string]> {
  const store = server().storeUrl();
  const args = ["--state-store", store, "--routing-algorithm", "least-request"];
  const [a, b] = await Promise.all([router(args), router(args)]);
  expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: worker.url } })).status).toBe(200);
  await waitFor(async () => ((await jsonRequest(`${b.url}/workers`)).body.workers as { url: string; state: string }[]).some((w) => w.url === worker.url && w.state === "healthy"), 15_000, "the worker healthy in B");
  return [a, b, store];
}

const sleepingIn = async (r: RouterProcess): Promise<boolean[]> => ((await jsonRequest(`${r.url}/workers`)).body.workers as { is_sleeping: boolean }[]).map((w) => w.is_sleeping);

describe("several routers on etcd: sleep and wake", () => {
  it("a sleep through A waits for B's requests in flight (all 200 before the release reaches the worker); B sends nothing to the sleeping worker, holds its requests, and serves them after a wake through A", async (ctx) => {
    needTools(ctx, tool);
    // About 1 s per image, one at a time: B's four requests keep the worker busy ~4 s.
    const w = await sim(["--speed", "0.002"]);
    const [a, b] = await twoRouters(w);
    const base = (await statsOf(w)).weights;
    const early = Array.from({ length: 4 }, () => generate(b.url));
    await waitFor(async () => (await statsOf(w)).generations_open === 4, 15_000, "B's four requests at the worker");

    const sleep = jsonRequest(`${a.url}/release_memory_occupation`, { method: "POST", json: {} });
    await b.waitForLog((l) => String(l.msg).startsWith("state store: a memory release (sleep) started through another router"), 15_000);
    // Sent while B holds for the sleep: they must never reach the worker while it sleeps.
    const late = Array.from({ length: 2 }, () => generate(b.url));
    const slept = await sleep;
    expect(slept.status, JSON.stringify(slept.body)).toBe(200);
    expect((await Promise.all(early)).every((x) => x.status === 200 && x.version === "0" && x.weights === base)).toBe(true);
    // The release arrived only once none of B's generations was open at the worker.
    const s = await statsOf(w);
    expect(s.sleeping).toBe(true);
    expect(s.control_calls.map((c) => [c.route, c.generations_open])).toEqual([["POST /release_memory_occupation", 0]]);
    expect(await generationsAt(w)).toBe(4);

    // B knows the worker sleeps and keeps its requests (and new ones) from it.
    await waitFor(async () => (await sleepingIn(b)).every(Boolean), 2_000, "the worker asleep in B");
    const later = generate(b.url);
    await holdsFor(1_000, "nothing reaches the sleeping worker", async () => (await generationsAt(w)) === 4);
    expect(await generationsAt(w)).toBe(4);

    const woke = await jsonRequest(`${a.url}/resume_memory_occupation`, { method: "POST", json: {} });
    expect(woke.status, JSON.stringify(woke.body)).toBe(200);
    const held = await Promise.all([...late, later]);
    expect(held).toEqual(Array.from({ length: 3 }, () => ({ status: 200, version: "0", weights: base })));
    expect(await generate(b.url)).toEqual({ status: 200, version: "0", weights: base });
    expect(await sleepingIn(b)).toEqual([false]);
    expect((await statsOf(w)).control_calls.map((c) => c.route)).toEqual(["POST /release_memory_occupation", "POST /resume_memory_occupation"]);
  }, 60_000);

  it("when B does not drain within the sleep's drain timeout, nothing sleeps (504 drain_timeout naming the other router) and both routers serve on", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim(["--speed", "0.002"]);
    const [a, b] = await twoRouters(w);
    const early = Array.from({ length: 4 }, () => generate(b.url));
    await waitFor(async () => (await statsOf(w)).generations_open === 4, 15_000, "B's four requests at the worker");
    const sleep = await jsonRequest(`${a.url}/release_memory_occupation?drain_timeout_s=1`, { method: "POST", json: {} });
    expect(sleep.status).toBe(504);
    expect(sleep.body.code).toBe("drain_timeout");
    expect(sleep.body.error).toMatch(/other router/);
    expect((await Promise.all(early)).map((x) => x.status)).toEqual([200, 200, 200, 200]);
    expect((await statsOf(w)).control_calls).toEqual([]);
    for (const r of [a, b]) expect((await generate(r.url)).status).toBe(200);
    expect(await sleepingIn(b)).toEqual([false]);
  }, 60_000);
});

describe("several routers on etcd: LoRA changes", () => {
  it("a set_lora through A waits for B's requests in flight (they end on no adapter before the call reaches the worker), later ones carry the new adapter, and B answers with the pool's LoRA; an unmerge through A reaches B's view too", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim(["--speed", "0.002"]);
    const [a, b, store] = await twoRouters(w);
    const early = Array.from({ length: 4 }, () => generateLora(b.url));
    await waitFor(async () => (await statsOf(w)).generations_open === 4, 15_000, "B's four requests at the worker");

    const set = jsonRequest(`${a.url}/v1/set_lora`, { method: "POST", json: { lora_nickname: "style", lora_path: "/loras/style" } });
    await b.waitForLog((l) => String(l.msg).startsWith("state store: a LoRA change started through another router"), 15_000);
    const late = Array.from({ length: 2 }, () => generateLora(b.url));
    const done = await set;
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(await Promise.all(early)).toEqual(Array.from({ length: 4 }, () => ({ status: 200, lora: null })));
    expect(await Promise.all(late)).toEqual(Array.from({ length: 2 }, () => ({ status: 200, lora: "style" })));
    expect((await statsOf(w)).control_calls.map((c) => [c.route, c.generations_open])).toEqual([["POST /v1/set_lora", 0]]);

    // B answers with the pool's LoRA, set through A.
    const listed = await jsonRequest(`${b.url}/v1/list_loras`);
    expect(listed.body.pool).toEqual([{ model: null, nickname: "style", merged: true }]);
    expect(((await jsonRequest(`${b.url}/workers`)).body.workers as { lora: unknown }[]).map((x) => x.lora)).toEqual([{ nickname: "style", merged: true }]);

    expect((await jsonRequest(`${a.url}/v1/unmerge_lora_weights`, { method: "POST", json: {} })).status).toBe(200);
    await waitFor(async () => JSON.stringify((await jsonRequest(`${b.url}/v1/list_loras`)).body.pool) === JSON.stringify([{ model: null, nickname: "style", merged: false }]), 2_000, "the unmerge in B's pool LoRA");
    // B replayed nothing of its own: the worker got exactly A's two calls.
    const s = await statsOf(w);
    expect(s.control_calls.map((c) => c.route)).toEqual(["POST /v1/set_lora", "POST /v1/unmerge_lora_weights"]);
    expect(await generateLora(b.url)).toEqual({ status: 200, lora: "style" });

    // A router that starts on the store afterwards answers with the pool's LoRA too, and replays nothing.
    const c = await router(["--state-store", store, "--routing-algorithm", "least-request"]);
    await waitFor(async () => ((await jsonRequest(`${c.url}/workers`)).body.workers as { state: string }[]).some((x) => x.state === "healthy"), 15_000, "the worker healthy in C");
    expect((await jsonRequest(`${c.url}/v1/list_loras`)).body.pool).toEqual([{ model: null, nickname: "style", merged: false }]);
    expect(await generateLora(c.url)).toEqual({ status: 200, lora: "style" });
    expect((await statsOf(w)).control_calls).toHaveLength(2);
  }, 60_000);
});
