/**
 * Several routers on one etcd (issue 21, docs/multi-router.md step 3),
 * against a real etcd started by the test (Debian's etcd-server), routers and
 * simulated workers as processes: a refit through A waits until B's own
 * requests in flight are done (B's answers never overlap the load on the
 * worker), or changes nothing when B does not drain in time; a refit whose
 * router is SIGKILLed before or during its load, or whose last write was
 * lost, is settled by B (one version, nothing lost by clients that retry);
 * a worker's ids leave etcd with it; mesh ids are shared.
 */
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import { useEtcdRouters } from "./helpers/etcd-routers.js";
import { jsonRequest, runRouterCli, waitFor, type RouterProcess } from "./helpers/router.js";
import type { SimProcess } from "./helpers/sim.js";
import { needTools } from "./helpers/tools.js";
import { retryLikeRl } from "./helpers/clients.js";

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
const { tool, server, router, sim } = useEtcdRouters();

interface SimStats {
  weights: string;
  generations_open: number;
  requests_by_route: Record<string, number>;
  weight_updates: { route: string; received_at_ms: number; generations_open: number }[];
}
const statsOf = async (s: SimProcess): Promise<SimStats> => (await jsonRequest(`${s.url}/sim/stats`)).body as SimStats;

/** Two routers on one fresh prefix (least-request: every request is sent to the worker at once, so B has several in flight), sharing `worker`. */
async function twoRouters(worker: SimProcess, extra: string[] = [], query = ""): Promise<[RouterProcess, RouterProcess, string]> {
  const store = server().storeUrl() + query;
  const args = ["--state-store", store, "--routing-algorithm", "least-request", ...extra];
  const [a, b] = await Promise.all([router(args), router(args)]);
  expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: worker.url } })).status).toBe(200);
  await waitFor(async () => ((await jsonRequest(`${b.url}/workers`)).body.workers as { url: string; state: string }[]).some((w) => w.url === worker.url && w.state === "healthy"), 15_000, "the worker healthy in B");
  return [a, b, store];
}

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

/** One client request as RL frameworks send it (helpers/clients.ts). */
function generateRetrying(base: string): Promise<Answer> {
  return retryLikeRl(() => generate(base), (err) => ({ status: 0, version: null, weights: String(err) }));
}

/** A slow worker (about 1 s per image, one at a time) shared by A and B, and four requests of B's at it (~4 s of work). */
async function bBusy(): Promise<{ w: SimProcess; a: RouterProcess; b: RouterProcess; base: string; early: Promise<Answer>[] }> {
  const w = await sim(["--speed", "0.002"]);
  const [a, b] = await twoRouters(w);
  const base = (await statsOf(w)).weights;
  const early = Array.from({ length: 4 }, () => generate(b.url));
  await waitFor(async () => (await statsOf(w)).generations_open === 4, 15_000, "B's four requests at the worker");
  return { w, a, b, base, early };
}

describe("several routers on etcd: distributed drain before a refit", () => {
  it("a refit through A waits for B's requests in flight: they end on the old weights before the load reaches the worker, later ones carry the new version; no answer mixes versions", async (ctx) => {
    needTools(ctx, tool);
    const { w, a, b, base, early } = await bBusy();
    const refit = jsonRequest(`${a.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-2", weight_version: "2" } });
    await b.waitForLog((l) => String(l.msg).startsWith("state store: a refit started through another router"), 15_000);
    const late = Array.from({ length: 2 }, () => generate(b.url));
    const done = await refit;
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const earlyAnswers = await Promise.all(early);
    const lateAnswers = await Promise.all(late);
    expect(earlyAnswers).toEqual(Array.from({ length: 4 }, () => ({ status: 200, version: "0", weights: base })));
    expect(lateAnswers).toEqual(Array.from({ length: 2 }, () => ({ status: 200, version: "2", weights: "/ckpt/step-2" })));
    // The load arrived at the worker only once none of B's generations was open there: no overlap.
    const updates = (await statsOf(w)).weight_updates;
    expect(updates.map((u) => [u.route, u.generations_open])).toEqual([["POST /update_weights_from_disk", 0]]);
  }, 60_000);

  it("when B does not drain within the refit's drain timeout, the refit through A changes nothing (504 drain_timeout naming B's wait) and both routers serve the old weights again", async (ctx) => {
    needTools(ctx, tool);
    const { w, a, b, base, early } = await bBusy();
    const refit = await jsonRequest(`${a.url}/update_weights_from_disk?drain_timeout_s=1`, { method: "POST", json: { model_path: "/ckpt/step-2", weight_version: "2" } });
    expect(refit.status).toBe(504);
    expect(refit.body.code).toBe("drain_timeout");
    expect(refit.body.error).toMatch(/other router/);
    expect((await Promise.all(early)).every((x) => x.status === 200 && x.version === "0" && x.weights === base)).toBe(true);
    expect((await statsOf(w)).weight_updates).toEqual([]);
    for (const r of [a, b]) expect(await generate(r.url)).toEqual({ status: 200, version: "0", weights: base });
  }, 60_000);
});

describe("several routers on etcd: the refit router dies", () => {
  it("A SIGKILLed during a refit's load: B settles it when A's lease expires (rolled forward, the worker re-synced), serves one version, frees the lock; clients retrying through B lose nothing", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim(["--weight-load-ms", "2000"]);
    const [a, b] = await twoRouters(w);
    const base = (await statsOf(w)).weights;
    let stop = false;
    const answers: Answer[] = [];
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) answers.push(await generateRetrying(b.url));
    });
    await waitFor(() => answers.length >= 4, 10_000, "answers before the refit");
    const refit = jsonRequest(`${a.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-3", weight_version: "3" } }).catch((err: unknown) => err);
    await waitFor(async () => (await statsOf(w)).weight_updates.length === 1, 10_000, "the load reaching the worker");
    a.proc.kill("SIGKILL");
    const killedAt = Date.now();
    await refit;
    await b.waitForLog((l) => String(l.msg).startsWith("state store: an unfinished refit of another router is settled"), 25_000);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    const settled = await waitFor(async () => {
      const ws = (await jsonRequest(`${b.url}/workers`)).body.workers as { url: string; state: string; weight_version: string }[];
      return ws.length === 1 && ws[0]!.state === "healthy" && ws[0]!.weight_version === "3" ? ws : undefined;
    }, 15_000, "the worker back at version 3 in B");
    expect(settled[0]!.url).toBe(w.url);
    const before = answers.length;
    await waitFor(() => answers.length >= before + 4, 20_000, "answers after the settle");
    stop = true;
    await Promise.all(clients);
    expect(answers.filter((x) => x.status !== 200)).toEqual([]);
    // One version per answer, and the weights that made it: never old weights under the new label or the reverse.
    for (const x of answers) expect([x.version, x.weights]).toEqual(x.version === "3" ? ["3", "/ckpt/step-3"] : ["0", base]);
    expect(answers.at(-1)!.version).toBe("3");
    expect((await statsOf(w)).weights).toBe("/ckpt/step-3");
    // The lock went with A's lease: a refit through B runs.
    const next = await jsonRequest(`${b.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-4", weight_version: "4" } });
    expect(next.status, JSON.stringify(next.body)).toBe(200);
  }, 90_000);
});

describe("several routers on etcd: the refit router dies before the load", () => {
  it("A SIGKILLed while it waits for B's drain: B's requests end on the old weights, B rolls the refit forward when A's lease expires, and the one load that reaches the worker finds nothing open; a request held meanwhile gets the new weights", async (ctx) => {
    needTools(ctx, tool);
    const { w, a, b, base, early } = await bBusy();
    const refit = jsonRequest(`${a.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-5", weight_version: "5" } }).catch((err: unknown) => err);
    await b.waitForLog((l) => String(l.msg).startsWith("state store: a refit started through another router"), 15_000);
    a.proc.kill("SIGKILL");
    await refit;
    const held = generate(b.url);
    expect((await Promise.all(early)).every((x) => x.status === 200 && x.version === "0" && x.weights === base)).toBe(true);
    await b.waitForLog((l) => String(l.msg).startsWith("state store: an unfinished refit of another router is settled"), 25_000);
    expect(await held).toEqual({ status: 200, version: "5", weights: "/ckpt/step-5" });
    // A never sent its load; B's re-sync is the only one, after B's requests ended.
    expect((await statsOf(w)).weight_updates.map((u) => [u.route, u.generations_open])).toEqual([["POST /update_weights_from_disk", 0]]);
  }, 60_000);
});

describe("several routers on etcd: a refit state left in progress", () => {
  it("a live router's refit left in progress without the lock (its last write lost while etcd was away) is settled by the other within ~3 s: both routers then serve its target, the worker re-synced", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim();
    const [a, b, store] = await twoRouters(w);
    const prefix = `/${store.split("/").slice(3).join("/")}`;
    const client = new Etcd3({ hosts: `http://${server().hostPort}` });
    try {
      // What A's lost write leaves behind: A alive (its presence key), no lock, the state still in progress by A.
      const present = Object.values(await client.getAll().prefix(`${prefix}/routers/`).strings()).map((v) => JSON.parse(v) as { id: string; pid: number });
      const aId = present.find((r) => r.pid === a.proc.pid)!.id;
      const current = JSON.parse((await client.get(`${prefix}/refit`).string()) ?? "null") as Record<string, unknown> | null;
      const body = JSON.stringify({ model_path: "/ckpt/step-9", weight_version: "9" });
      const left = { version: "0", refits: 0, last: null, workers: {}, ...(current ?? {}), inProgress: { kind: "disk", body, targetVersion: "9", startedAtMs: Date.now() }, by: aId };
      await client.put(`${prefix}/refit`).value(JSON.stringify(left));
      await b.waitForLog((l) => String(l.msg).startsWith("state store: a refit started through another router"), 15_000);
      const heldAt = Date.now();
      await b.waitForLog((l) => String(l.msg).startsWith("state store: an unfinished refit of another router is settled"), 10_000);
      expect(Date.now() - heldAt).toBeGreaterThan(2_000);
      for (const r of [b, a]) {
        const x = await waitFor(async () => {
          const g = await generate(r.url);
          return g.version === "9" ? g : undefined;
        }, 10_000, "version 9");
        expect(x).toEqual({ status: 200, version: "9", weights: "/ckpt/step-9" });
      }
    } finally {
      client.close();
    }
  }, 60_000);
});

describe("several routers on etcd: ids", () => {
  it("a worker's ids leave etcd when it is removed, a deleted video's at once; a mesh made through A is found through B from etcd", async (ctx) => {
    needTools(ctx, tool);
    const video = await sim(["--model-path", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]);
    const mesh = await sim(["--model-path", "tencent/Hunyuan3D-2", "--task-type", "I2M"]);
    const [a, b, store] = await twoRouters(video);
    expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: mesh.url } })).status).toBe(200);
    await waitFor(async () => ((await jsonRequest(`${b.url}/workers`)).body.workers as { state: string }[]).filter((w) => w.state === "healthy").length === 2, 15_000, "both workers healthy in B");
    const prefix = `/${store.split("/").slice(3).join("/")}`;
    const client = new Etcd3({ hosts: `http://${server().hostPort}` });
    try {
      const owner = (id: string) => client.get(`${prefix}/affinity/${id}`).string();
      const smallVideo = { prompt: "a river", size: "64x64", num_inference_steps: 2, seconds: 1, fps: 8 };
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push((await jsonRequest(`${a.url}/v1/videos`, { method: "POST", json: smallVideo })).body.id as string);
      const meshId = (await jsonRequest(`${a.url}/v1/meshes`, { method: "POST", json: { prompt: "a teapot", input_image: "data:image/png;base64,AAAA", output_format: "obj" } })).body.id as string;
      await waitFor(async () => (await owner(ids[1]!)) === video.url && (await owner(meshId)) === mesh.url, 2_000, "the ids in etcd");
      // B finds the mesh from etcd, without asking the workers who holds it.
      const polled = await jsonRequest(`${b.url}/v1/meshes/${meshId}`);
      expect(polled.status).toBe(200);
      expect(polled.body.id).toBe(meshId);
      expect((await statsOf(mesh)).requests_by_route["GET /v1/meshes/{id}"]).toBe(1);

      expect((await jsonRequest(`${b.url}/v1/videos/${ids[0]}`, { method: "DELETE" })).status).toBe(200);
      await waitFor(async () => (await owner(ids[0]!)) === null, 2_000, "the deleted video's id gone from etcd");
      expect(await owner(ids[1]!)).toBe(video.url);
      expect((await jsonRequest(`${a.url}/workers/${encodeURIComponent(video.url)}`, { method: "DELETE" })).status).toBe(200);
      await waitFor(async () => (await owner(ids[1]!)) === null, 2_000, "the removed worker's id gone from etcd");
      // Its list of ids goes after them; the mesh worker's stays.
      const left = await waitFor(async () => {
        const keys = await client.getAll().prefix(`${prefix}/affinity-of/`).keys();
        return keys.length === 1 ? keys : undefined;
      }, 2_000, "the removed worker's id list gone from etcd");
      expect(left).toEqual([expect.stringContaining(`/mesh/${meshId}`)]);
      expect(await owner(meshId)).toBe(mesh.url);
      expect((await jsonRequest(`${b.url}/v1/videos/${ids[1]}`)).body.code).toBe("video_not_found");
    } finally {
      client.close();
    }
  }, 60_000);

  it("an image id's keys leave etcd by themselves affinity_ttl_s after it was made (a lease nobody keeps alive); B still serves the image by asking the workers; a bad affinity_ttl_s refuses the start", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim();
    const [a, b, store] = await twoRouters(w, [], "?affinity_ttl_s=2");
    const prefix = `/${store.split("/").slice(3).join("/").split("?")[0]}`;
    const client = new Etcd3({ hosts: `http://${server().hostPort}` });
    try {
      const made = await jsonRequest(`${a.url}/v1/images/generations`, { method: "POST", json: { ...smallImage, response_format: "url" } });
      expect(made.status).toBe(200);
      const url = (made.body.data as { url: string }[])[0]!.url;
      const id = /\/v1\/images\/([^/]+)\/content/.exec(url)![1]!;
      const keys = async () => (await client.getAll().prefix(`${prefix}/affinity`).keys()).filter((k) => k.includes(id));
      await waitFor(async () => (await keys()).length === 2, 2_000, "the id and its index entry in etcd");
      const leased = await client.get(`${prefix}/affinity/${id}`).exec();
      expect(leased.kvs[0]!.lease).not.toBe("0");
      const writtenAt = Date.now();
      // 2 s, plus at most one bucket (1 s) and etcd's expiry check (every 500 ms).
      await waitFor(async () => (await keys()).length === 0, 8_000, "the id's keys expired from etcd");
      expect(Date.now() - writtenAt).toBeGreaterThan(1_000);
      // B never learnt the id: etcd no longer has it, so B asks the workers, and the one that made it answers.
      const before = (await statsOf(w)).requests_by_route["GET /v1/images/{id}/content"] ?? 0;
      const res = await fetch(`${b.url}${url}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).subarray(1, 4).toString()).toBe("PNG");
      expect((await statsOf(w)).requests_by_route["GET /v1/images/{id}/content"]).toBeGreaterThan(before);
    } finally {
      client.close();
    }
    const bad = await runRouterCli(["--port", "0", "--state-store", `${server().storeUrl()}?affinity_ttl_s=0`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr + bad.stdout).toMatch(/affinity_ttl_s must be a whole number of seconds >= 1/);
  }, 60_000);
});
