// REST admin API end to end: the router and simulated workers run as child
// processes; everything goes over real sockets. Shapes follow the original
// Python router's README (our compatibility contract).
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsFor } from "./helpers/idle.js";
import { jsonRequest, routerErrorCode, runRouterCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const ADMIN_LIMIT = 4096;

let router: RouterProcess;
let a: SimProcess;
let b: SimProcess;
let v: SimProcess;

const id = (url: string) => encodeURIComponent(url);

async function workers(): Promise<any[]> {
  const r = await jsonRequest(`${router.url}/workers`);
  expect(r.status).toBe(200);
  return r.body.workers;
}

async function simStats(sim: SimProcess): Promise<any> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}

/** Requests a worker received, not counting the router's health and capability probes (`/server_info` is read on every health round too). */
async function trafficOf(sim: SimProcess): Promise<number> {
  const st = await simStats(sim);
  const by = st.requests_by_route as Record<string, number>;
  return st.requests_total - (by["GET /health"] ?? 0) - (by["GET /v1/models"] ?? 0) - (by["GET /server_info"] ?? 0);
}

async function generate(): Promise<{ status: number; headers: Headers; body: any }> {
  return jsonRequest(`${router.url}/v1/images/generations`, {
    method: "POST",
    json: { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" },
  });
}

/** Sends a raw request with a chunked body (no content-length). */
function chunkedPost(url: string, chunks: Buffer[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

beforeAll(async () => {
  [a, b, v] = await Promise.all([
    startSimProcess([]),
    startSimProcess([]),
    startSimProcess(["--model-path", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]),
  ]);
  router = await startRouterProcess(["--max-admin-body-bytes", String(ADMIN_LIMIT)]);
}, 20_000);

afterAll(async () => {
  await Promise.all([router?.stop(), a?.stop(), b?.stop(), v?.stop()]);
});

describe("worker registration", () => {
  it("registers through JSON url, ?url= and JSON worker_url, answering the original's shape", async () => {
    const viaJson = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: a.url } });
    expect(viaJson.status).toBe(200);
    expect(viaJson.body.status).toBe("success");
    expect(viaJson.body.worker).toMatchObject({
      worker_id: id(a.url),
      display_id: a.url.replace("http://", ""),
      url: a.url,
      active_requests: 0,
      is_dead: false,
      is_sleeping: false,
      consecutive_failures: 0,
      video_support: false,
    });

    const viaQuery = await jsonRequest(`${router.url}/workers?url=${encodeURIComponent(b.url)}`, { method: "POST" });
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.body).toMatchObject({ status: "success", worker: { url: b.url } });

    const viaWorkerUrl = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { worker_url: v.url } });
    expect(viaWorkerUrl.status).toBe(200);
    expect(viaWorkerUrl.body).toMatchObject({ status: "success", worker: { url: v.url, video_support: true } });

    const list = await workers();
    expect(list.map((w) => w.url).sort()).toEqual([a.url, b.url, v.url].sort());
    for (const w of list) {
      expect(typeof w.worker_id).toBe("string");
      expect(decodeURIComponent(w.worker_id)).toBe(w.url);
      expect(w.display_id).toBe(w.url.replace("http://", ""));
      expect(w.active_requests).toBe(0);
      expect(w.is_dead).toBe(false);
      expect(w.is_sleeping).toBe(false);
      expect(w.consecutive_failures).toBe(0);
      expect(typeof w.video_support).toBe("boolean");
    }
  });

  it("treats a repeated registration (any spelling of the same URL) as the same worker", async () => {
    const port = new URL(a.url).port;
    for (const spelling of [a.url, `${a.url}/`, `HTTP://127.0.0.1:${port}`, ` ${a.url} `]) {
      const r = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: spelling } });
      expect(r.status, spelling).toBe(200);
      expect(r.body.status).toBe("success");
      expect(r.body.worker.worker_id).toBe(id(a.url));
    }
    const r = await jsonRequest(`${router.url}/add_worker?url=${encodeURIComponent(a.url)}`, { method: "POST" });
    expect(r.status).toBe(200);
    expect(await workers()).toHaveLength(3);
  });

  it("refuses a body without a worker url", async () => {
    const r = await jsonRequest(`${router.url}/workers`, { method: "POST", json: {} });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/url/);
    expect(await workers()).toHaveLength(3);
  });
});

describe("GET/PUT/DELETE /workers/{worker_id}", () => {
  it("gets one worker by its URL-encoded URL", async () => {
    const r = await jsonRequest(`${router.url}/workers/${id(b.url)}`);
    expect(r.status).toBe(200);
    expect(r.body.worker).toMatchObject({ worker_id: id(b.url), url: b.url, is_dead: false, video_support: false });
  });

  it("also accepts the raw (unencoded) URL as worker_id", async () => {
    const r = await jsonRequest(`${router.url}/workers/${b.url}`);
    expect(r.status).toBe(200);
    expect(r.body.worker.worker_id).toBe(id(b.url));
  });

  it("PUT is_dead true quarantines, is_dead false recovers", async () => {
    const put = await jsonRequest(`${router.url}/workers/${id(b.url)}`, { method: "PUT", json: { is_dead: true } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ status: "success", worker: { url: b.url, is_dead: true } });
    expect((await workers()).find((w) => w.url === b.url).is_dead).toBe(true);
    const health = await jsonRequest(`${router.url}/health`);
    expect(health.body).toMatchObject({ healthy_workers: 2, dead_workers: 1, total_workers: 3 });

    const back = await jsonRequest(`${router.url}/workers/${id(b.url)}`, { method: "PUT", json: { is_dead: false } });
    expect(back.status).toBe(200);
    expect(back.body.worker.is_dead).toBe(false);
    expect((await workers()).find((w) => w.url === b.url).is_dead).toBe(false);
  });

  it("PUT refresh_video_support re-reads the worker's task type", async () => {
    const r = await jsonRequest(`${router.url}/workers/${id(v.url)}`, { method: "PUT", json: { refresh_video_support: true, is_dead: false } });
    expect(r.status).toBe(200);
    expect(r.body.worker).toMatchObject({ url: v.url, video_support: true, is_dead: false });
    const img = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", json: { refresh_video_support: true } });
    expect(img.body.worker.video_support).toBe(false);
  });

  it("PUT refuses an unknown field (named), a non-boolean, an empty body and bad JSON", async () => {
    const unknown = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", json: { is_dead: true, weight: 3 } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toContain("weight");
    expect(unknown.body.code).toBe("unknown_field");

    const notBool = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", json: { is_dead: "yes" } });
    expect(notBool.status).toBe(400);
    expect(notBool.body.error).toContain("is_dead");

    const empty = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", json: {} });
    expect(empty.status).toBe(400);

    const bad = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", body: "{is_dead: true", headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe("invalid_json");

    // None of them changed the worker.
    expect((await workers()).find((w) => w.url === a.url).is_dead).toBe(false);
  });

  it("answers 404 for an unknown worker on GET, PUT and DELETE", async () => {
    const ghost = id("http://127.0.0.1:1");
    for (const [method, json] of [["GET", undefined], ["PUT", { is_dead: true }], ["DELETE", undefined]] as const) {
      const r = await jsonRequest(`${router.url}/workers/${ghost}`, { method, json });
      expect(r.status, method).toBe(404);
      expect(r.body.code).toBe("worker_not_found");
    }
    expect(await workers()).toHaveLength(3);
  });

  it("DELETE deregisters; the worker gets no more traffic until it is added again", async () => {
    const del = await jsonRequest(`${router.url}/workers/${id(b.url)}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(del.body.status).toBe("success");
    expect((await workers()).map((w) => w.url)).not.toContain(b.url);
    expect((await jsonRequest(`${router.url}/workers/${id(b.url)}`)).status).toBe(404);

    const before = (await simStats(b)).requests_by_route["POST /v1/images/generations"] ?? 0;
    for (let i = 0; i < 4; i++) expect((await generate()).status).toBe(200);
    expect((await simStats(b)).requests_by_route["POST /v1/images/generations"] ?? 0).toBe(before);

    const again = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: b.url } });
    expect(again.status).toBe(200);
    expect(await workers()).toHaveLength(3);
  });
});

describe("aliases RL frameworks call", () => {
  it("POST /remove_worker?url=, GET /list_workers, POST /add_worker?url=", async () => {
    const removed = await jsonRequest(`${router.url}/remove_worker?url=${encodeURIComponent(a.url)}`, { method: "POST" });
    expect(removed.status).toBe(200);
    const list1 = await jsonRequest(`${router.url}/list_workers`);
    expect(list1.status).toBe(200);
    expect(list1.body.urls.sort()).toEqual([b.url, v.url].sort());

    const added = await jsonRequest(`${router.url}/add_worker?url=${encodeURIComponent(a.url)}`, { method: "POST" });
    expect(added.status).toBe(200);
    expect(added.body.status).toBe("success");
    const list2 = await jsonRequest(`${router.url}/list_workers`);
    expect(list2.body.urls.sort()).toEqual([a.url, b.url, v.url].sort());

    const ghost = await jsonRequest(`${router.url}/remove_worker?url=${encodeURIComponent("http://127.0.0.1:1")}`, { method: "POST" });
    expect(ghost.status).toBe(404);
  });
});

describe("/health", () => {
  it("aggregates the pool", async () => {
    const r = await jsonRequest(`${router.url}/health`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "healthy", healthy_workers: 3, total_workers: 3, dead_workers: 0, sleeping_workers: 0 });
  });

  it("is 503 when no worker is registered", async () => {
    const empty = await startRouterProcess([]);
    try {
      const r = await jsonRequest(`${empty.url}/health`);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ healthy_workers: 0, total_workers: 0, dead_workers: 0, sleeping_workers: 0 });
      expect(r.body.status).not.toBe("healthy");
    } finally {
      await empty.stop();
    }
  });
});

describe("weights and memory broadcasts", () => {
  it("update_weights_from_disk reaches every worker of the named model and answers {results:[{worker_url,status_code,body}]}", async () => {
    // This pool serves an image and a video model: a refit names the one it is for (issue 24).
    const unnamed = await jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "Qwen/Qwen-Image-2512" } });
    expect(unnamed.status).toBe(400);
    expect(unnamed.body).toMatchObject({ code: "invalid_request", param: "model" });
    const r = await jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "Qwen/Qwen-Image-2512", model: "Qwen/Qwen-Image" } });
    expect(r.status).toBe(200);
    for (const res of r.body.results) {
      expect(Object.keys(res).sort()).toEqual(["body", "status_code", "worker_url"]);
      expect(res.status_code).toBe(200);
      expect(res.body.success).toBe(true);
    }
    expect(r.body.results.map((x: any) => x.worker_url).sort()).toEqual([a.url, b.url].sort());
    for (const sim of [a, b]) expect((await simStats(sim)).weights).toBe("Qwen/Qwen-Image-2512");
    expect((await simStats(v)).weights).not.toBe("Qwen/Qwen-Image-2512");
    // Generation now comes from the new weights.
    const g = await generate();
    expect(g.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image-2512");
  });

  it("update_weights_from_disk without model_path is a 400 and reaches no worker", async () => {
    const before = await Promise.all([a, b, v].map(async (s) => (await simStats(s)).requests_by_route["POST /update_weights_from_disk"] ?? 0));
    const r = await jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { flush_cache: true } });
    expect(r.status).toBe(400);
    expect(r.body.error).toContain("model_path");
    const after = await Promise.all([a, b, v].map(async (s) => (await simStats(s)).requests_by_route["POST /update_weights_from_disk"] ?? 0));
    expect(after).toEqual(before);
  });

  it("release puts workers to sleep (no generation reaches them), resume wakes them", async () => {
    const rel = await jsonRequest(`${router.url}/release_memory_occupation`, { method: "POST", json: {} });
    expect(rel.status).toBe(200);
    expect(rel.body.results).toHaveLength(3);
    for (const res of rel.body.results) expect(res.status_code).toBe(200);
    for (const w of await workers()) expect(w.is_sleeping).toBe(true);
    for (const sim of [a, b, v]) expect((await simStats(sim)).sleeping).toBe(true);
    const health = await jsonRequest(`${router.url}/health`);
    // Asleep on purpose: healthy for a probe (issue 24), and it says why nothing serves.
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "sleeping", healthy_workers: 0, sleeping_workers: 3, total_workers: 3 });

    // The router either refuses the request (503) or holds it until a worker
    // wakes; either way no generation reaches a sleeping worker.
    const before = await Promise.all([a, b, v].map(trafficOf));
    let answered = false;
    const during = generate().finally(() => (answered = true));
    await waitFor(async () => answered || (await jsonRequest(`${router.url}/refit`)).body.held_requests === 1, 15_000, "the request refused or held");
    if (!answered) await holdsFor(500, "a held request reaches no sleeping worker", async () => (await Promise.all([a, b, v].map(trafficOf))).every((n, i) => n === before[i]));
    const after = await Promise.all([a, b, v].map(trafficOf));
    expect(after).toEqual(before);

    const res = await jsonRequest(`${router.url}/resume_memory_occupation`, { method: "POST", json: {} });
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(3);
    for (const w of await workers()) expect(w.is_sleeping).toBe(false);
    for (const sim of [a, b, v]) expect((await simStats(sim)).sleeping).toBe(false);
    const held = await during;
    expect([200, 503]).toContain(held.status);
    if (held.status === 503) expect(held.body.code).toBe("no_healthy_workers");
    expect((await generate()).status).toBe(200);
  });
});

/** Worker URLs the router must refuse, however they are spelled. */
const refused: string[] = [
  "http://169.254.169.254:80",
  "http://2852039166:80", // decimal
  "http://0xa9fea9fe:80", // hex
  "http://0xA9.0xFE.0xA9.0xFE:80",
  "http://0251.0376.0251.0376:80", // octal
  "http://169.254.169.254.:80",
  "http://[::ffff:169.254.169.254]:80", // IPv4-mapped IPv6
  "http://[::ffff:a9fe:a9fe]:80",
  "http://[fe80::1]:8000",
  "http://metadata.google.internal:80",
  "http://METADATA.Google.Internal:80",
  "http://metadata.google.internal.:80",
  "http://100.100.100.200:80",
  "http://[fd00:ec2::254]:80",
  "http://user:pass@127.0.0.1:8000", // credentials
  "http://127.0.0.1:8000/v1", // path
  "http://127.0.0.1:8000?x=1", // query
  "http://127.0.0.1:8000#frag", // fragment
  "http://127.0.0.1", // no port
  "ftp://127.0.0.1:21",
];

describe("refused worker URLs", () => {
  it.each(refused)("%s: 400 invalid_worker_url on POST /workers (JSON and ?url=) and /add_worker", async (url) => {
    const viaJson = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url } });
    expect(viaJson.status).toBe(400);
    expect(viaJson.body.code).toBe("invalid_worker_url");
    const viaQuery = await jsonRequest(`${router.url}/workers?url=${encodeURIComponent(url)}`, { method: "POST" });
    expect(viaQuery.status).toBe(400);
    expect(viaQuery.body.code).toBe("invalid_worker_url");
    const alias = await jsonRequest(`${router.url}/add_worker?url=${encodeURIComponent(url)}`, { method: "POST" });
    expect(alias.status).toBe(400);
    expect(alias.body.code).toBe("invalid_worker_url");
  });

  it("none of them was registered", async () => {
    expect((await workers()).map((w) => w.url).sort()).toEqual([a.url, b.url, v.url].sort());
  });

  it("--worker-urls with any of them: the router refuses to start, names the URL, never listens", async () => {
    const run = async (url: string) => ({ url, ...(await runRouterCli(["--host", "127.0.0.1", "--port", "0", "--worker-urls", a.url, url])) });
    // One spelling per kind of refusal (each start loads the whole router: ~1 s of CPU).
    const atStartup = refused.filter((u) => !["http://0xA9.0xFE.0xA9.0xFE:80", "http://[::ffff:a9fe:a9fe]:80", "http://metadata.google.internal:80", "http://169.254.169.254.:80"].includes(u));
    const results: Awaited<ReturnType<typeof run>>[] = [];
    for (let i = 0; i < atStartup.length; i += 4) results.push(...(await Promise.all(atStartup.slice(i, i + 4).map(run))));
    expect(results).toHaveLength(16);
    for (const r of results) {
      expect(r.code, r.url).not.toBe(0);
      expect(r.code, r.url).not.toBeNull();
      expect(r.stderr, r.url).toContain(JSON.stringify(r.url));
      expect(r.stdout, r.url).not.toContain("router listening");
    }
  }, 30_000);
});

describe("bad admin requests", () => {
  it("malformed JSON is a 400 invalid_json", async () => {
    const r = await jsonRequest(`${router.url}/workers`, { method: "POST", body: '{"url": ', headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe("invalid_json");
    const arr = await jsonRequest(`${router.url}/workers`, { method: "POST", json: [a.url] });
    expect(arr.status).toBe(400);
    expect(arr.body.code).toBe("invalid_json");
  });

  it("a body over --max-admin-body-bytes is a 413 (declared or chunked), and the router keeps serving", async () => {
    const big = JSON.stringify({ url: a.url, pad: "x".repeat(ADMIN_LIMIT) });
    const declared = await jsonRequest(`${router.url}/workers`, { method: "POST", body: big, headers: { "content-type": "application/json" } });
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe("body_too_large");

    const chunks = Array.from({ length: 8 }, () => Buffer.alloc(1024, 0x20));
    const chunked = await chunkedPost(`${router.url}/update_weights_from_disk`, chunks);
    expect(chunked.status).toBe(413);

    const put = await jsonRequest(`${router.url}/workers/${id(a.url)}`, { method: "PUT", body: big, headers: { "content-type": "application/json" } });
    expect(put.status).toBe(413);
    expect((await jsonRequest(`${router.url}/health`)).status).toBe(200);
    for (const sim of [a, b]) expect((await simStats(sim)).weights).toBe("Qwen/Qwen-Image-2512");
  });

  it("unknown admin paths are the router's own 404/405 JSON, never forwarded to a worker", async () => {
    const before = await Promise.all([a, b, v].map(trafficOf));
    const cases: [string, string, number[]][] = [
      ["POST", `/workers/${id(a.url)}/y`, [404, 405]],
      ["POST", "/workers/x/y", [404, 405]],
      ["GET", "/refit/nothing", [404]],
      ["POST", "/refit/nothing", [404]],
      ["GET", "/router/whatever", [404]],
      ["DELETE", "/workers", [405]],
      ["GET", "/add_worker", [405]],
    ];
    for (const [method, path, statuses] of cases) {
      const r = await jsonRequest(`${router.url}${path}`, { method, ...(method === "POST" ? { json: {} } : {}) });
      expect(statuses, `${method} ${path} -> ${r.status}`).toContain(r.status);
      expect(r.headers.get("content-type"), path).toMatch(/application\/json/);
      expect(routerErrorCode(path, r.body), `${method} ${path}`).toMatch(/^(not_found|method_not_allowed)$/);
      expect(r.headers.get("x-router-error-code"), path).toBe(r.body.code ?? r.body.error.code);
      expect(r.headers.get("x-sim-worker"), path).toBeNull();
    }
    const after = await Promise.all([a, b, v].map(trafficOf));
    expect(after).toEqual(before);
  });
});

describe("load counters", () => {
  it("active_requests shows a request in flight and returns to 0", async () => {
    // A slow generation (256x256, 400 steps ≈ 0.5 s) keeps one worker busy.
    const slow = jsonRequest(`${router.url}/v1/images/generations`, {
      method: "POST",
      json: { prompt: "slow", size: "256x256", num_inference_steps: 400, response_format: "b64_json" },
    });
    await waitFor(async () => (await workers()).some((w) => w.active_requests === 1), 15_000, "a worker with active_requests 1");
    expect((await slow).status).toBe(200);
    await waitFor(async () => (await workers()).every((w) => w.active_requests === 0), 15_000, "active_requests back to 0");
  });
});
