/**
 * --state-store etcd://... (issue 21, docs/multi-router.md steps 1-2),
 * against a real etcd started by the test (Debian's etcd-server): one router
 * restarted on it behaves as with --state-file, and two routers on one
 * prefix serve one pool: a worker registered, drained or removed through
 * one is so in the other within a second, and a video made through one is
 * polled and downloaded through the other.
 */
import { describe, expect, it } from "vitest";
import { useEtcdRouters } from "./helpers/etcd-routers.js";
import { jsonRequest, runRouterCli, waitFor, type RouterProcess } from "./helpers/router.js";
import type { SimProcess } from "./helpers/sim.js";
import { needTools } from "./helpers/tools.js";
import { imageRetrying } from "./helpers/clients.js";

const VIDEO_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
const smallVideo = { prompt: "a river", size: "64x64", num_inference_steps: 2, seconds: 1, fps: 8 };
const { tool, server, router, sim } = useEtcdRouters();

const workerPath = (url: string) => `/workers/${encodeURIComponent(url)}`;
async function listed(r: RouterProcess): Promise<{ url: string; state: string; weight_version: string }[]> {
  return (await jsonRequest(`${r.url}/workers`)).body.workers;
}
async function simCount(s: SimProcess, route: string): Promise<number> {
  return (await jsonRequest(`${s.url}/sim/stats`)).body.requests_by_route[route] ?? 0;
}

/** One client request as RL frameworks send it (helpers/clients.ts). */
const generateRetrying = (base: string) => imageRetrying(base, smallImage);

describe("--state-store etcd, one router", () => {
  it("a router SIGKILLed and restarted on the same store serves the REST-registered workers at the refit's version within 2 s; retrying clients lose nothing", async (ctx) => {
    needTools(ctx, tool);
    const workers = await Promise.all([sim(), sim(), sim()]);
    const store = server().storeUrl();
    const first = await router(["--state-store", store]);
    for (const w of workers) expect((await jsonRequest(`${first.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    expect((await jsonRequest(`${first.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-7", weight_version: "7" } })).status).toBe(200);
    expect((await jsonRequest(`${first.url}${workerPath(workers[2]!.url)}`, { method: "PUT", json: { draining: true } })).status).toBe(200);
    expect((await jsonRequest(`${first.url}/health`)).body.state_store).toBe("etcd");

    let stop = false;
    const answers: { status: number; version: string | null }[] = [];
    const clients = Array.from({ length: 8 }, async () => {
      while (!stop) answers.push(await generateRetrying(first.url));
    });
    await waitFor(() => answers.length >= 8, 10_000, "answers before the crash");
    first.proc.kill("SIGKILL");
    await new Promise((res) => first.proc.once("exit", res));
    // Same port: the clients keep their address, as behind a service name.
    const second = await router(["--state-store", store, "--port", String(first.port)]);
    const restartedAt = second.logs.find((l) => l.msg === "router listening")!.time as number;
    const ws = await waitFor(async () => {
      const list = await listed(second);
      return list.length === 3 && list.every((w) => w.weight_version === "7") ? list : undefined;
    }, 5_000, "the three workers at version 7");
    expect(Date.now() - restartedAt).toBeLessThan(2_000);
    expect(Object.fromEntries(ws.map((w) => [w.url, w.state]))).toEqual({ [workers[0]!.url]: "healthy", [workers[1]!.url]: "healthy", [workers[2]!.url]: "draining" });
    const before = answers.length;
    await waitFor(() => answers.length >= before + 16, 20_000, "answers after the restart");
    stop = true;
    await Promise.all(clients);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.every((a) => a.version === "7")).toBe(true);
  }, 60_000);

  it("refuses to start with both --state-file and --state-store, or when etcd does not answer", async (ctx) => {
    needTools(ctx, tool);
    const both = await runRouterCli(["--port", "0", "--state-file", "/tmp/x.json", "--state-store", server().storeUrl()]);
    expect(both.code).not.toBe(0);
    expect(both.stderr + both.stdout).toMatch(/cannot be combined with --state-file/);
    const away = await runRouterCli(["--port", "0", "--state-store", "etcd://127.0.0.1:1/sgld/none"], 20_000);
    expect(away.code).not.toBe(0);
    expect(away.stderr + away.stdout).toMatch(/etcd did not answer/);
  }, 30_000);
});

describe("--state-store etcd, two routers on one prefix", () => {
  it("a worker registered through A serves through B; drained and removed through A, B follows within 1 s", async (ctx) => {
    needTools(ctx, tool);
    const store = server().storeUrl();
    const [a, b] = await Promise.all([router(["--state-store", store]), router(["--state-store", store])]);
    const w = await sim();
    expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    const registeredAt = Date.now();
    await waitFor(async () => (await listed(b)).some((x) => x.url === w.url && x.state === "healthy"), 1_000, "the worker in B");
    expect(Date.now() - registeredAt).toBeLessThan(1_000);
    const before = await simCount(w, "POST /v1/images/generations");
    const viaB = await jsonRequest(`${b.url}/v1/images/generations`, { method: "POST", json: smallImage });
    expect(viaB.status).toBe(200);
    expect(await simCount(w, "POST /v1/images/generations")).toBe(before + 1);
    // An image id made through A (url mode) is served through B.
    const made = await jsonRequest(`${a.url}/v1/images/generations`, { method: "POST", json: { ...smallImage, response_format: "url" } });
    expect(made.status).toBe(200);
    const png = await fetch(`${b.url}${(made.body.data as { url: string }[])[0]!.url}`);
    expect(png.status).toBe(200);
    expect(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString("latin1")).toBe("PNG");

    // Operator states travel too: drained through A is draining in B.
    expect((await jsonRequest(`${a.url}${workerPath(w.url)}`, { method: "PUT", json: { draining: true } })).status).toBe(200);
    await waitFor(async () => (await listed(b)).find((x) => x.url === w.url)?.state === "draining", 1_000, "draining in B");
    expect((await jsonRequest(`${a.url}${workerPath(w.url)}`, { method: "PUT", json: { draining: false } })).status).toBe(200);
    await waitFor(async () => (await listed(b)).find((x) => x.url === w.url)?.state === "healthy", 1_000, "back in rotation in B");

    expect((await jsonRequest(`${a.url}${workerPath(w.url)}`, { method: "DELETE" })).status).toBe(200);
    await waitFor(async () => !(await listed(b)).some((x) => x.url === w.url), 1_000, "the worker gone from B");
    const served = await simCount(w, "POST /v1/images/generations");
    const after = await jsonRequest(`${b.url}/v1/images/generations`, { method: "POST", json: smallImage });
    expect(after.status).toBe(503);
    expect(after.body.code).toBe("no_healthy_workers");
    expect(await simCount(w, "POST /v1/images/generations")).toBe(served);
    // Still gone after a while: B did not write its old copy back.
    expect((await listed(a)).some((x) => x.url === w.url)).toBe(false);
  }, 60_000);

  it("a video created through A is polled and downloaded through B", async (ctx) => {
    needTools(ctx, tool);
    const store = server().storeUrl();
    const [a, b] = await Promise.all([router(["--state-store", store]), router(["--state-store", store])]);
    const w = await sim(["--model-path", VIDEO_MODEL]);
    expect((await jsonRequest(`${b.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    // A learns the worker from etcd, then probes it itself: until then it cannot know the worker serves videos.
    await waitFor(async () => (await listed(a)).some((x) => x.url === w.url && x.state === "healthy" && (x as { video_support?: boolean }).video_support === true), 15_000, "the video worker in A, probed");
    const created = await jsonRequest(`${a.url}/v1/videos`, { method: "POST", json: smallVideo });
    expect(created.status).toBe(200);
    const id = created.body.id as string;
    const done = await waitFor(async () => {
      const r = await jsonRequest(`${b.url}/v1/videos/${id}`);
      expect(r.status).toBe(200);
      return r.body.status === "completed" ? r.body : undefined;
    }, 15_000, `video ${id} completed, polled through B`);
    expect(done.id).toBe(id);
    const content = await fetch(`${b.url}/v1/videos/${id}/content`);
    const bytes = Buffer.from(await content.arrayBuffer());
    expect(content.status).toBe(200);
    expect(bytes.subarray(4, 8).toString("latin1")).toBe("ftyp");
    // An id nobody made is still a 404 through either router.
    expect((await jsonRequest(`${b.url}/v1/videos/video_nobody_made`)).body.code).toBe("video_not_found");
  }, 60_000);

  it("refit lock: a refit or sleep through B while A's two-phase refit is open is a 409 refit_in_progress; after A's abort B's refit runs", async (ctx) => {
    needTools(ctx, tool);
    const store = server().storeUrl();
    const [a, b] = await Promise.all([router(["--state-store", store]), router(["--state-store", store])]);
    const w = await sim();
    expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    await waitFor(async () => (await listed(b)).some((x) => x.url === w.url && x.state === "healthy"), 1_000, "the worker in B");
    expect((await jsonRequest(`${a.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    expect((await jsonRequest(`${a.url}/health`)).body).toMatchObject({ state_store: "etcd", holds_refit_lock: true });
    const status = await jsonRequest(`${a.url}/sgl.diffusion.router.v1.AdminService/GetRouterStatus`, { method: "POST", json: {} });
    expect(status.body).toMatchObject({ stateStore: "etcd", holdsRefitLock: true });
    const listWorkers = (base: string) => jsonRequest(`${base}/sgl.diffusion.router.v1.AdminService/ListWorkers`, { method: "POST", json: {} });
    expect((await listWorkers(a.url)).body).toMatchObject({ stateStore: "etcd", holdsRefitLock: true });
    expect((await listWorkers(b.url)).body).toMatchObject({ stateStore: "etcd" });
    expect((await listWorkers(b.url)).body.holdsRefitLock ?? false).toBe(false);
    const refitViaB = await jsonRequest(`${b.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/b", weight_version: "b" } });
    expect(refitViaB.status).toBe(409);
    expect(refitViaB.body.code).toBe("refit_in_progress");
    expect(refitViaB.body.error).toMatch(/another router/);
    expect((await jsonRequest(`${b.url}/release_memory_occupation`, { method: "POST", json: {} })).status).toBe(409);
    expect((await jsonRequest(`${b.url}/health`)).body.holds_refit_lock).toBe(false);
    // Nothing of B's refused refit reached the worker.
    expect(await simCount(w, "POST /update_weights_from_disk")).toBe(0);

    expect((await jsonRequest(`${a.url}/refit/abort`, { method: "POST", json: {} })).status).toBe(200);
    await waitFor(async () => (await jsonRequest(`${a.url}/health`)).body.holds_refit_lock === false, 2_000, "A released the lock");
    const after = await jsonRequest(`${b.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/b", weight_version: "b" } });
    expect(after.status).toBe(200);
    expect(after.body.weight_version ?? after.headers.get("x-weight-version")).toBe("b");
    expect(await simCount(w, "POST /update_weights_from_disk")).toBe(1);
  }, 60_000);

  it("B follows A's refits: held while A's refit is open, answered at A's committed version; a disk refit through A moves B's X-Weight-Version within 1 s", async (ctx) => {
    needTools(ctx, tool);
    const store = server().storeUrl();
    const [a, b] = await Promise.all([router(["--state-store", store]), router(["--state-store", store])]);
    const w = await sim();
    expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    await waitFor(async () => (await listed(b)).some((x) => x.url === w.url && x.state === "healthy"), 1_000, "the worker in B");
    expect((await jsonRequest(`${a.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/8", weight_version: "8" } })).status).toBe(200);
    const refitAt = Date.now();
    await waitFor(async () => (await jsonRequest(`${b.url}/v1/images/generations`, { method: "POST", json: smallImage })).headers.get("x-weight-version") === "8", 1_000, "B answering at version 8");
    expect(Date.now() - refitAt).toBeLessThan(1_000);
    // One broadcast (A's): B took the worker A saw load the weights, it did not load them again.
    expect((await listed(b)).find((x) => x.url === w.url)).toMatchObject({ state: "healthy", weight_version: "8" });
    expect(await simCount(w, "POST /update_weights_from_disk")).toBe(1);

    expect((await jsonRequest(`${a.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    // B learns of A's refit through its watch: a request sent before that is answered (at 8, before any tensor moved); one after is held.
    let answered = true;
    let viaB: ReturnType<typeof jsonRequest> | null = null;
    await waitFor(async () => {
      if (answered) {
        answered = false;
        viaB = jsonRequest(`${b.url}/v1/images/generations`, { method: "POST", json: smallImage }).finally(() => (answered = true));
      }
      return (await jsonRequest(`${b.url}/refit`)).body.held_requests >= 1;
    }, 2_000, "B holding a request");
    const served = await simCount(w, "POST /v1/images/generations");
    const up = await jsonRequest(`${a.url}${workerPath(w.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["h"], weight_version: "9" } });
    expect(up.status).toBe(200);
    expect((await jsonRequest(`${a.url}/refit/commit`, { method: "POST", json: { weight_version: "9" } })).status).toBe(200);
    expect(answered).toBe(false);
    expect(await simCount(w, "POST /v1/images/generations")).toBe(served);
    const held = await viaB!;
    expect(held.status).toBe(200);
    expect(held.headers.get("x-weight-version")).toBe("9");
  }, 60_000);
});

describe("--state-store etcd, etcd lost", () => {
  it("a router that loses etcd holds generation, then answers 503 state_store_unavailable with Retry-After after a short wait (not --queue-timeout), nothing sent to the worker, and serves again once etcd is back", async (ctx) => {
    needTools(ctx, tool);
    const r = await router(["--state-store", server().storeUrl()]);
    const w = await sim();
    expect((await jsonRequest(`${r.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    expect((await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage })).status).toBe(200);
    await server().kill();
    try {
      await r.waitForLog((l) => String(l.msg).startsWith("state store: etcd unreachable"), 10_000);
      const served = await simCount(w, "POST /v1/images/generations");
      const sentAt = Date.now();
      const held = await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage });
      // Held a bounded while (5 s), far short of the 300 s queue timeout, then a code of its own a retrying client acts on.
      expect(Date.now() - sentAt).toBeLessThan(15_000);
      expect(held.status).toBe(503);
      expect(held.body.code).toBe("state_store_unavailable");
      expect(held.body.error).toMatch(/state store \(etcd\)/);
      expect(Number(held.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await simCount(w, "POST /v1/images/generations")).toBe(served);
    } finally {
      await server().restart();
    }
    await r.waitForLog((l) => String(l.msg).startsWith("state store: etcd reachable again"), 30_000);
    expect((await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage })).status).toBe(200);
  }, 60_000);
});
