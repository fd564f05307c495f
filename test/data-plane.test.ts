// Data plane end to end: OpenAI-style and native generation routes through the
// router (child process) to simulated workers (child processes).
import { decode as msgpackDecode } from "@msgpack/msgpack";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE_MODEL = "Qwen/Qwen-Image";
const VIDEO_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const small = { size: "64x64", num_inference_steps: 2 };
const smallVideo = { ...small, seconds: 1, fps: 8 };

let router: RouterProcess;
let images: SimProcess[] = [];
let videos: SimProcess[] = [];
const all = () => [...images, ...videos];

async function stats(sim: SimProcess): Promise<any> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}
async function routeCount(sim: SimProcess, route: string): Promise<number> {
  return (await stats(sim)).requests_by_route[route] ?? 0;
}
async function routeCounts(sims: SimProcess[], route: string): Promise<number[]> {
  return Promise.all(sims.map((s) => routeCount(s, route)));
}
const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);

async function raw(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function createVideo(prompt: string): Promise<{ id: string; worker: string; body: any }> {
  const r = await jsonRequest(`${router.url}/v1/videos`, { method: "POST", json: { prompt, ...smallVideo } });
  expect(r.status).toBe(200);
  expect(r.body.status).toBe("queued");
  return { id: r.body.id, worker: r.headers.get("x-sim-worker")!, body: r.body };
}

async function waitCompleted(id: string): Promise<any> {
  return waitFor(
    async () => {
      const r = await jsonRequest(`${router.url}/v1/videos/${id}`);
      expect(r.status).toBe(200);
      expect(r.body.status).not.toBe("failed");
      return r.body.status === "completed" ? r.body : undefined;
    },
    10_000,
    `video ${id} completed`,
  );
}

beforeAll(async () => {
  const started = await Promise.all([
    startSimProcess([]),
    startSimProcess([]),
    startSimProcess([]),
    startSimProcess(["--model-path", VIDEO_MODEL]),
    startSimProcess(["--model-path", VIDEO_MODEL]),
  ]);
  images = started.slice(0, 3);
  videos = started.slice(3);
  router = await startRouterProcess(["--worker-urls", ...all().map((s) => s.url)]);
  await waitFor(async () => {
    const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
    return ws.length === 5 && ws.every((w) => w.video_support !== null && !w.is_dead);
  }, 10_000, "5 probed workers");
}, 30_000);

afterAll(async () => {
  await Promise.all([router?.stop(), ...all().map((s) => s.stop())]);
});

describe("images", () => {
  it("b64_json: the picture comes back inline as a PNG", async () => {
    const r = await jsonRequest(`${router.url}/v1/images/generations`, {
      method: "POST",
      json: { model: IMAGE_MODEL, prompt: "a cute cat", num_images: 1, response_format: "b64_json", ...small },
    });
    expect(r.status).toBe(200);
    expect(r.body.data).toHaveLength(1);
    const png = Buffer.from(r.body.data[0].b64_json, "base64");
    expect(png.subarray(0, 8)).toEqual(PNG);
    expect(all().map((s) => s.url)).toContain(r.headers.get("x-sim-worker"));
  });

  it("url: GET /v1/images/{id}/content reaches the worker that made the picture", async () => {
    const makers = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const gen = await jsonRequest(`${router.url}/v1/images/generations`, {
        method: "POST",
        json: { prompt: `picture ${i}`, response_format: "url", ...small },
      });
      expect(gen.status).toBe(200);
      const maker = gen.headers.get("x-sim-worker")!;
      makers.add(maker);
      const path: string = gen.body.data[0].url;
      expect(path).toMatch(/^\/v1\/images\/[^/]+\/content$/);
      // The sim marks generations (not contents) with x-sim-worker: its
      // per-route counters show which worker answered the content requests.
      const before = await routeCounts(all(), "GET /v1/images/{id}/content");
      for (let k = 0; k < 2; k++) {
        const content = await raw(`${router.url}${path}`);
        expect(content.status, `content of image made by ${maker}`).toBe(200);
        expect(content.headers.get("content-type")).toBe("image/png");
        expect(content.bytes.subarray(0, 8)).toEqual(PNG);
      }
      const after = await routeCounts(all(), "GET /v1/images/{id}/content");
      all().forEach((s, j) => expect(after[j]! - before[j]!, `${s.url} (maker ${maker})`).toBe(s.url === maker ? 2 : 0));
      // The picture exists on its maker only: any other worker would have answered 404.
      for (const other of all().filter((s) => s.url !== maker)) {
        expect((await raw(`${other.url}${path}`)).status).toBe(404);
      }
    }
    expect(makers.size).toBeGreaterThanOrEqual(3);
  });

  it("an unknown image id is a 404", async () => {
    const r = await jsonRequest(`${router.url}/v1/images/does-not-exist/content`);
    expect(r.status).toBe(404);
    expect(r.body.code).toBe("image_not_found");
  });
});

describe("videos", () => {
  it("POST /v1/videos goes only to video workers", async () => {
    const before = await routeCounts(images, "POST /v1/videos");
    const seen = new Set<string>();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const job = await createVideo(`river ${i}`);
      expect(videos.map((s) => s.url)).toContain(job.worker);
      seen.add(job.worker);
      ids.push(job.id);
    }
    expect(seen.size).toBe(2);
    expect(await routeCounts(images, "POST /v1/videos")).toEqual(before);
    await Promise.all(ids.map(waitCompleted));
  });

  it("with only image workers, POST /v1/videos is a 400 no_video_workers", async () => {
    const imageOnly = await startRouterProcess(["--worker-urls", ...images.map((s) => s.url)]);
    try {
      await waitFor(async () => ((await jsonRequest(`${imageOnly.url}/workers`)).body.workers as any[]).filter((w) => w.video_support === false).length === 3, 15_000, "3 image workers");
      const before = await routeCounts(images, "POST /v1/videos");
      const r = await jsonRequest(`${imageOnly.url}/v1/videos`, { method: "POST", json: { model: IMAGE_MODEL, prompt: "a flowing river" } });
      expect(r.status).toBe(400);
      expect(r.body.code).toBe("no_video_workers");
      expect(await routeCounts(images, "POST /v1/videos")).toEqual(before);
    } finally {
      await imageOnly.stop();
    }
  });

  it("create, poll until completed, download an MP4", async () => {
    const job = await createVideo("a flowing river");
    const done = await waitCompleted(job.id);
    expect(done).toMatchObject({ id: job.id, object: "video", status: "completed", progress: 100 });
    const content = await raw(`${router.url}/v1/videos/${job.id}/content`);
    expect(content.status).toBe(200);
    expect(content.headers.get("content-type")).toBe("video/mp4");
    // ISO BMFF: a 32-bit box size, then the first box type, "ftyp".
    expect(content.bytes.length).toBeGreaterThan(100);
    expect(content.bytes.subarray(4, 8).toString("latin1")).toBe("ftyp");
    expect(content.bytes.readUInt32BE(0)).toBeGreaterThanOrEqual(8);
  });

  it("GET /v1/videos merges both video workers' jobs, newest first", async () => {
    const first = [await createVideo("older a"), await createVideo("older b")];
    // created_at has a 1 s resolution: once the clock is past the second the
    // older jobs were created in, the next jobs are strictly newer.
    const olderSecond = Math.max(...first.map((j) => j.body.created_at as number));
    expect(Number.isInteger(olderSecond)).toBe(true);
    await waitFor(() => Math.floor(Date.now() / 1000) > olderSecond, 2000, "the clock past the older jobs' created_at second");
    const second = [await createVideo("newer a"), await createVideo("newer b")];
    const jobs = [...first, ...second];
    expect(new Set(jobs.map((j) => j.worker)).size).toBe(2);

    const r = await jsonRequest(`${router.url}/v1/videos?limit=100`);
    expect(r.status).toBe(200);
    expect(r.body.object).toBe("list");
    const data: any[] = r.body.data;
    const listed = data.map((j) => j.id);
    for (const j of jobs) expect(listed).toContain(j.id);
    for (let i = 1; i < data.length; i++) expect(data[i - 1].created_at).toBeGreaterThanOrEqual(data[i].created_at);
    const newestOld = Math.min(...first.map((j) => listed.indexOf(j.id)));
    for (const j of second) expect(listed.indexOf(j.id)).toBeLessThan(newestOld);
    // Jobs of both workers appear, each exactly once.
    expect(new Set(listed).size).toBe(listed.length);
    await Promise.all(jobs.map((j) => waitCompleted(j.id)));
  });

  it("GET /v1/videos pages through the merged list with limit and after", async () => {
    const full = (await jsonRequest(`${router.url}/v1/videos?limit=100`)).body.data.map((j: any) => j.id) as string[];
    expect(full.length).toBeGreaterThanOrEqual(6);
    const paged: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 50; page++) {
      const r = await jsonRequest(`${router.url}/v1/videos?limit=2${after ? `&after=${after}` : ""}`);
      expect(r.status).toBe(200);
      expect(r.body.data.length).toBeLessThanOrEqual(2);
      paged.push(...r.body.data.map((j: any) => j.id));
      if (!r.body.has_more) break;
      after = r.body.last_id;
    }
    expect(paged).toEqual(full);
  });

  it("DELETE /v1/videos/{id} reaches the owner; the job is then gone", async () => {
    const job = await createVideo("delete me");
    await waitCompleted(job.id);
    const owner = videos.find((s) => s.url === job.worker)!;
    const other = videos.find((s) => s.url !== job.worker)!;
    const [ownerBefore, otherBefore] = [await routeCount(owner, "DELETE /v1/videos/{id}"), await routeCount(other, "DELETE /v1/videos/{id}")];
    const del = await jsonRequest(`${router.url}/v1/videos/${job.id}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ id: job.id, status: "deleted" });
    expect(await routeCount(owner, "DELETE /v1/videos/{id}")).toBe(ownerBefore + 1);
    expect(await routeCount(other, "DELETE /v1/videos/{id}")).toBe(otherBefore);
    expect((await jsonRequest(`${owner.url}/v1/videos/${job.id}`)).status).toBe(404);
    expect((await jsonRequest(`${router.url}/v1/videos/${job.id}`)).status).toBe(404);
  });

  it("an unknown video id is a 404 on get, content and delete", async () => {
    for (const [method, path] of [
      ["GET", "/v1/videos/video_nope"],
      ["GET", "/v1/videos/video_nope/content"],
      ["DELETE", "/v1/videos/video_nope"],
    ] as const) {
      const r = await jsonRequest(`${router.url}${path}`, { method });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.code).toBe("video_not_found");
    }
  });
});

describe("native RL routes", () => {
  const rollout = { prompt: "rl prompt", seed: 42, num_outputs_per_prompt: 3, width: 64, height: 64, num_inference_steps: 2, sim_bytes_per_sample: 4096 };

  it("POST /rollout/generate goes whole to one worker (every sample in one MessagePack answer)", async () => {
    const before = await routeCounts(all(), "POST /rollout/generate");
    // The worker answers MessagePack whatever Accept says.
    const res = await fetch(`${router.url}/rollout/generate`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(rollout) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/msgpack");
    const body = msgpackDecode(new Uint8Array(await res.arrayBuffer())) as any[];
    expect(body.map((s) => s.seed)).toEqual([42, 42, 42]);
    expect(new Set(body.map((s) => s.request_id)).size).toBe(1);
    expect(body[0].generated_output.__tensor__).toBe(true);
    const after = await routeCounts(all(), "POST /rollout/generate");
    expect(sum(after) - sum(before)).toBe(1);
  });

  it("with Accept: application/msgpack the worker's MessagePack passes through", async () => {
    const res = await fetch(`${router.url}/rollout/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/msgpack" },
      body: JSON.stringify(rollout),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/msgpack");
    const decoded = msgpackDecode(new Uint8Array(await res.arrayBuffer())) as any[];
    expect(decoded.map((s) => s.seed)).toEqual([42, 42, 42]);
  });

  it("POST /v1/diffusion/generate answers the worker's inline output", async () => {
    const r = await jsonRequest(`${router.url}/v1/diffusion/generate`, { method: "POST", json: { prompt: "native", ...small, get_log_probs: true } });
    expect(r.status).toBe(200);
    expect(["png", "mp4"]).toContain(r.body.output_format);
    const bytes = Buffer.from(r.body.output_b64, "base64");
    if (r.body.output_format === "png") expect(bytes.subarray(0, 8)).toEqual(PNG);
    else expect(bytes.subarray(4, 8).toString("latin1")).toBe("ftyp");
    expect(r.body.trajectory.log_probs_shape).toEqual([1, 2]);
  });
});

describe("models and other routes", () => {
  it("GET /v1/models merges the workers' cards, one per model id", async () => {
    const r = await jsonRequest(`${router.url}/v1/models`);
    expect(r.status).toBe(200);
    expect(r.body.object).toBe("list");
    const ids = r.body.data.map((c: any) => c.id).sort();
    expect(ids).toEqual([IMAGE_MODEL, VIDEO_MODEL].sort());
    const byId = Object.fromEntries(r.body.data.map((c: any) => [c.id, c]));
    expect(byId[IMAGE_MODEL].task_type).toBe("T2I");
    expect(byId[VIDEO_MODEL].task_type).toBe("T2V");
  });

  it("GET /v1/models/{model} is answered by a worker serving it, unknown models are 404", async () => {
    const r = await jsonRequest(`${router.url}/v1/models/${VIDEO_MODEL}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: VIDEO_MODEL, task_type: "T2V" });
    const missing = await jsonRequest(`${router.url}/v1/models/nope/nothing`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("model_not_found");
  });

  it("an unknown path is forwarded to a worker", async () => {
    // (The LoRA routes are the router's own now: test/lora.test.ts.)
    const before = await routeCounts(all(), "GET /v1/model_info");
    const r = await jsonRequest(`${router.url}/v1/model_info`);
    expect(r.status).toBe(200);
    expect(typeof r.body.model_path).toBe("string");
    expect(sum(await routeCounts(all(), "GET /v1/model_info")) - sum(before)).toBe(1);
  });
});

describe("worker answers pass through unchanged", () => {
  it("FastAPI's 422 for a missing prompt", async () => {
    const r = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { ...small } });
    expect(r.status).toBe(422);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.body.detail).toEqual([{ type: "missing", loc: ["body", "prompt"], msg: "Field required", input: null }]);
    expect(r.headers.get("x-sim-worker")).not.toBeNull();
  });

  it("the plain-text 500 of a failing worker keeps its status, content-type and body", async () => {
    await Promise.all(all().map((s) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { failure_rate: 1 } })));
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${router.url}/v1/images/generations`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "fail", ...small }),
        });
        expect(res.status).toBe(500);
        expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
        expect(await res.text()).toBe("Internal Server Error");
      }
    } finally {
      await Promise.all(all().map((s) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { failure_rate: 0 } })));
    }
    expect((await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "ok again", ...small } })).status).toBe(200);
  });
});

describe("request ids", () => {
  it("X-Request-Id is passed through when given and created when absent", async () => {
    const given = await jsonRequest(`${router.url}/v1/images/generations`, {
      method: "POST",
      headers: { "x-request-id": "trainer-step-17-sample-3" },
      json: { prompt: "id", ...small },
    });
    expect(given.status).toBe(200);
    expect(given.headers.get("x-request-id")).toBe("trainer-step-17-sample-3");

    const made1 = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "id", ...small } });
    const made2 = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "id", ...small } });
    const id1 = made1.headers.get("x-request-id");
    const id2 = made2.headers.get("x-request-id");
    expect(id1).toBeTruthy();
    expect(id2).toBeTruthy();
    expect(id1).not.toBe(id2);
  });
});

// The simulated worker does not report the headers it received, so this part
// uses a tiny worker (a child process too) that echoes them.
const echoWorker = `
import { createServer } from "node:http";
const server = createServer((req, res) => {
  const send = (status, body, extra = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...extra });
    res.end(text);
  };
  if (req.url === "/health") return send(200, { status: "ok" });
  if (req.url === "/v1/models") return send(200, { object: "list", data: [{ id: "echo", object: "model", created: 1, task_type: "T2I" }] });
  let n = 0;
  req.on("data", (c) => (n += c.length));
  req.on("end", () => send(200, { method: req.method, url: req.url, headers: req.headers, bytes: n }, {
    connection: "keep-alive, x-worker-hop",
    "x-worker-hop": "secret",
    "proxy-authenticate": "Basic realm=worker",
    "x-worker-custom": "kept",
  }));
});
server.listen(0, "127.0.0.1", () => console.log("ECHO_LISTENING http://127.0.0.1:" + server.address().port));
`;

function rawRequest(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("headers", () => {
  let echo: ChildProcess;
  let echoRouter: RouterProcess;

  beforeAll(async () => {
    echo = spawn(process.execPath, ["--input-type=module", "-e", echoWorker], { stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(echo.stdout!.setEncoding("utf8"), "data")) as [string];
    const url = /ECHO_LISTENING (\S+)/.exec(line)![1]!;
    echoRouter = await startRouterProcess(["--worker-urls", url]);
    await waitFor(async () => ((await jsonRequest(`${echoRouter.url}/workers`)).body.workers as any[])[0]?.video_support === false, 15_000, "echo worker probed");
  }, 20_000);

  afterAll(async () => {
    await echoRouter?.stop();
    echo?.kill();
  });

  it("hop-by-hop headers do not cross the router, end-to-end ones do, in both directions", async () => {
    const body = JSON.stringify({ prompt: "headers" });
    const r = await rawRequest(`${echoRouter.url}/v1/images/generations`, "POST", {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      connection: "keep-alive, x-client-hop",
      "x-client-hop": "secret",
      "keep-alive": "timeout=5",
      "proxy-authorization": "Basic c2VjcmV0",
      te: "trailers",
      authorization: "Bearer end-to-end",
      "x-custom": "kept",
      "x-request-id": "hop-test-1",
    }, body);
    expect(r.status).toBe(200);
    const seen = r.body.headers as Record<string, string>;
    expect(r.body.bytes).toBe(Buffer.byteLength(body));
    expect(seen["x-custom"]).toBe("kept");
    expect(seen["authorization"]).toBe("Bearer end-to-end");
    expect(seen["content-type"]).toBe("application/json");
    expect(seen["x-request-id"]).toBe("hop-test-1");
    expect(seen["x-client-hop"]).toBeUndefined();
    expect(seen["keep-alive"]).toBeUndefined();
    expect(seen["proxy-authorization"]).toBeUndefined();
    expect(seen["te"]).toBeUndefined();
    expect(seen["connection"] ?? "").not.toContain("x-client-hop");
    expect(seen["host"]).not.toBe(new URL(echoRouter.url).host);

    expect(r.headers["x-worker-custom"]).toBe("kept");
    expect(r.headers["x-worker-hop"]).toBeUndefined();
    expect(r.headers["proxy-authenticate"]).toBeUndefined();
    expect(r.headers["connection"] ?? "").not.toContain("x-worker-hop");
    expect(r.headers["x-request-id"]).toBe("hop-test-1");
  });

  it("the request id the router creates is the one the worker receives", async () => {
    const r = await rawRequest(`${echoRouter.url}/v1/anything`, "GET", {});
    expect(r.status).toBe(200);
    const id = r.headers["x-request-id"];
    expect(typeof id).toBe("string");
    expect(r.body.headers["x-request-id"]).toBe(id);
    expect(r.body.url).toBe("/v1/anything");
  });
});
