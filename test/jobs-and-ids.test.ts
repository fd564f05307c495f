import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

/**
 * Jobs and ids (issue 19): mesh jobs go to an I2M worker and every later
 * request about them reaches it; ids the router never saw are found on the
 * pool; the tensor checker asks every worker.
 */

const ADMIN = { authorization: "Bearer admin-key" };
const VIDEO_MODEL = "Wan-AI/Wan2.2-T2V-A14B-Diffusers";
const small = { size: "64x64", num_inference_steps: 2 };

let router: RouterProcess;
let image: SimProcess;
let mesh: SimProcess;
let videos: SimProcess[] = [];
const all = () => [image, mesh, ...videos];

async function routeCount(sim: SimProcess, route: string): Promise<number> {
  return ((await jsonRequest(`${sim.url}/sim/stats`)).body.requests_by_route[route] ?? 0) as number;
}

async function download(url: string): Promise<{ status: number; type: string | null; bytes: Buffer }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type"), bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Polls a job through the router until it completed; every poll must find it (200). */
async function pollUntilDone(path: string): Promise<{ polls: number; job: any }> {
  let polls = 0;
  const job = await waitFor(async () => {
    const r = await jsonRequest(`${router.url}${path}`);
    polls++;
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.status).not.toBe("failed");
    return r.body.status === "completed" ? r.body : undefined;
  }, 20_000, `${path} completed`);
  return { polls, job };
}

beforeAll(async () => {
  [image, mesh, ...videos] = await Promise.all([
    startSimProcess([]),
    startSimProcess(["--model-path", "tencent/Hunyuan3D-2", "--task-type", "I2M"]),
    startSimProcess(["--model-path", VIDEO_MODEL]),
    startSimProcess(["--model-path", VIDEO_MODEL]),
  ]);
  router = await startRouterProcess(["--admin-api-key", "admin-key", "--worker-urls", ...all().map((s) => s.url)]);
  await waitFor(async () => {
    const ws = (await jsonRequest(`${router.url}/workers`, { headers: ADMIN })).body.workers as any[];
    return ws.length === 4 && ws.every((w) => w.task_type !== null && !w.is_dead);
  }, 15_000, "4 probed workers");
}, 40_000);

afterAll(async () => {
  await Promise.all([router?.stop(), ...all().map((s) => s?.stop())]);
});

describe("mesh jobs", () => {
  it("a mesh job is created on the I2M worker and every poll, download and delete reaches it", async () => {
    const created = await jsonRequest(`${router.url}/v1/meshes`, { method: "POST", json: { prompt: "a teapot", input_image: "data:image/png;base64,AAAA", output_format: "obj" } });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    expect(created.body.status).toBe("queued");
    expect(await routeCount(mesh, "POST /v1/meshes")).toBe(1);
    expect(await routeCount(image, "POST /v1/meshes")).toBe(0);
    const id: string = created.body.id;
    const { polls, job } = await pollUntilDone(`/v1/meshes/${id}`);
    expect(job.format).toBe("obj");
    expect(await routeCount(mesh, "GET /v1/meshes/{id}")).toBe(polls);
    const content = await download(`${router.url}/v1/meshes/${id}/content`);
    expect(content.status).toBe(200);
    expect(content.type).toContain("text/plain");
    expect(content.bytes.toString()).toContain("a teapot");
    const deleted = await jsonRequest(`${router.url}/v1/meshes/${id}`, { method: "DELETE" });
    expect(deleted.status).toBe(200);
    expect(deleted.body.status).toBe("deleted");
    // No other worker was asked about the job.
    for (const other of [image, ...videos]) expect(await routeCount(other, "GET /v1/meshes/{id}")).toBe(0);
  });

  it("a mesh create during a refit is held until the refit ends, then created on the I2M worker", async () => {
    const before = await routeCount(mesh, "POST /v1/meshes");
    expect((await jsonRequest(`${router.url}/refit/begin`, { method: "POST", json: {}, headers: ADMIN })).status).toBe(200);
    const created = jsonRequest(`${router.url}/v1/meshes`, { method: "POST", json: { input_image: "data:image/png;base64,AAAA" } });
    await waitFor(async () => (await jsonRequest(`${router.url}/refit`, { headers: ADMIN })).body.held_requests === 1, 15_000, "mesh create held");
    expect(await routeCount(mesh, "POST /v1/meshes")).toBe(before);
    expect((await jsonRequest(`${router.url}/refit/abort`, { method: "POST", json: {}, headers: ADMIN })).status).toBe(200);
    const r = await created;
    expect(r.status).toBe(200);
    expect(await routeCount(mesh, "POST /v1/meshes")).toBe(before + 1);
  });

  it("a mesh create with no I2M worker in the pool is refused: 400 no_mesh_workers", async () => {
    const onlyImages = await startRouterProcess(["--worker-urls", image.url]);
    try {
      await waitFor(async () => ((await jsonRequest(`${onlyImages.url}/health`)).body.healthy_workers === 1 ? true : undefined), 10_000, "worker probed");
      await waitFor(async () => {
        const r = await jsonRequest(`${onlyImages.url}/v1/meshes`, { method: "POST", json: { input_image: "data:image/png;base64,AAAA" } });
        return r.status === 400 && r.body.code === "no_mesh_workers" ? r : undefined;
      }, 10_000, "400 no_mesh_workers");
    } finally {
      await onlyImages.stop();
    }
  });
});

describe("ids the router does not know", () => {
  it("a video created on a worker directly is found, polled and downloaded through the router; its owner is remembered", async () => {
    const owner = videos[1]!;
    const other = videos[0]!;
    const direct = await jsonRequest(`${owner.url}/v1/videos`, { method: "POST", json: { prompt: "a river", ...small, seconds: 1, fps: 8 } });
    expect(direct.status).toBe(200);
    const id: string = direct.body.id;
    const { polls } = await pollUntilDone(`/v1/videos/${id}`);
    // The other video worker was asked once (the lookup), never again after: the owner is remembered.
    expect(await routeCount(other, "GET /v1/videos/{id}")).toBe(1);
    expect(await routeCount(owner, "GET /v1/videos/{id}")).toBe(polls + 1);
    const content = await download(`${router.url}/v1/videos/${id}/content`);
    expect(content.status).toBe(200);
    expect(content.type).toBe("video/mp4");
    expect(content.bytes.subarray(4, 8).toString()).toBe("ftyp");
    expect(content.bytes.equals((await download(`${owner.url}/v1/videos/${id}/content`)).bytes)).toBe(true);
  });

  it("an image and a mesh made on workers directly are found too; an id nobody holds is 404", async () => {
    const img = await jsonRequest(`${image.url}/v1/images/generations`, { method: "POST", json: { prompt: "a fox", response_format: "url", ...small } });
    expect(img.status).toBe(200);
    const png = await download(`${router.url}${img.body.data[0].url}`);
    expect(png.status).toBe(200);
    expect(png.type).toBe("image/png");
    const m = await jsonRequest(`${mesh.url}/v1/meshes`, { method: "POST", json: { input_image: "data:image/png;base64,AAAA" } });
    const { job } = await pollUntilDone(`/v1/meshes/${m.body.id}`);
    expect(job.id).toBe(m.body.id);
    // The list is the I2M workers' lists merged (the image and video workers have no mesh jobs to show).
    for (let i = 0; i < 4; i++) {
      const list = await jsonRequest(`${router.url}/v1/meshes?order=asc`);
      expect(list.status).toBe(200);
      expect(list.body.data.map((j: { id: string }) => j.id)).toContain(m.body.id);
    }
    for (const [path, code] of [
      ["/v1/videos/video_nobody_has", "video_not_found"],
      ["/v1/meshes/mesh_nobody_has", "mesh_not_found"],
      ["/v1/images/image_nobody_has/content", "image_not_found"],
    ] as const) {
      const r = await jsonRequest(`${router.url}${path}`);
      expect([path, r.status, r.body.code]).toEqual([path, 404, code]);
    }
  });
});

describe("POST /update_weights_from_tensor_checker", () => {
  it("asks every worker with the same body and answers each worker's result; admin key", async () => {
    const updated = videos[0]!;
    const load = await jsonRequest(`${updated.url}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["payload"], weight_version: "v7" } });
    expect(load.status).toBe(200);
    const name = "blocks.0.attn.qkv.weight";
    const sha = createHash("sha256").update(`tensor:v7\u0000transformer\u0000${name}`).digest("hex");
    const body = { target_module: "transformer", expected_named_tensors_sha256: { [name]: sha } };
    const refused = await jsonRequest(`${router.url}/update_weights_from_tensor_checker`, { method: "POST", json: body });
    expect(refused.status).toBe(401);
    const r = await jsonRequest(`${router.url}/update_weights_from_tensor_checker`, { method: "POST", json: body, headers: ADMIN });
    expect(r.status).toBe(200);
    const byUrl = new Map((r.body.results as any[]).map((x) => [x.worker_url, x]));
    expect([...byUrl.keys()].sort()).toEqual(all().map((s) => s.url).sort());
    for (const s of all()) {
      const result = byUrl.get(s.url);
      if (s === updated) expect(result).toMatchObject({ status_code: 200, body: { success: true } });
      else expect(result).toMatchObject({ status_code: 400, body: { success: false } });
    }
    for (const s of all()) expect(await routeCount(s, "POST /update_weights_from_tensor_checker")).toBe(1);
  });
});
