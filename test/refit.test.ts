import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { holdsFor } from "./helpers/idle.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { requestLoops } from "./helpers/clients.js";

/**
 * The refit protocol, end to end: a router process, simulated workers that
 * stamp every answer with the weights they hold (`x-sim-weights`), and
 * clients that check no answer came from weights older than the refit.
 */

const BASE = "Qwen/Qwen-Image";
const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function sim(args: string[] = []): Promise<SimProcess> {
  const s = await startSimProcess(args);
  cleanup.push(() => s.stop());
  return s;
}

async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", ...args]);
  cleanup.push(() => r.stop());
  return r;
}

interface Answer {
  sentAtMs: number;
  status: number;
  version: string | null;
  weights: string | null;
  worker: string | null;
}

async function generate(base: string, body: object = smallImage): Promise<Answer> {
  const sentAtMs = Date.now();
  const res = await fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return { sentAtMs, status: res.status, version: res.headers.get("x-weight-version"), weights: res.headers.get("x-sim-weights"), worker: res.headers.get("x-sim-worker") };
}

/** `clients` loops of generations until stop() (helpers/clients.ts). */
function load(base: string, clients: number) {
  return requestLoops(() => generate(base), clients);
}

async function simStats(s: SimProcess): Promise<{ weights: string; requests_total: number; requests_by_route: Record<string, number> }> {
  return (await jsonRequest(`${s.url}/sim/stats`)).body;
}

async function workers(r: RouterProcess): Promise<any[]> {
  return (await jsonRequest(`${r.url}/workers`)).body.workers;
}

describe("coordinated refit from disk", () => {
  it("under steady load: zero failures, no old weights after the refit began, every answer stamped with its version", async () => {
    const sims = await Promise.all([sim(["--weight-load-ms", "400"]), sim(["--weight-load-ms", "400"]), sim(["--weight-load-ms", "400"])]);
    const r = await router(["--worker-urls", ...sims.map((s) => s.url)]);
    const traffic = load(r.url, 8);
    await waitFor(() => traffic.answers.filter((a) => a.version === "0").length >= 10, 15_000, "traffic answered on the old weights");
    const refitStartedMs = Date.now();
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } });
    await waitFor(() => traffic.answers.filter((a) => a.sentAtMs > refitStartedMs + 20).length >= 10, 15_000, "traffic sent after the refit began answered");
    await traffic.stop();

    expect(refit.status).toBe(200);
    expect(refit.body.weight_version).toBe("1");
    expect(refit.body.previous_weight_version).toBe("0");
    expect(refit.body.results).toHaveLength(3);
    expect(refit.body.summary).toMatchObject({ targets: 3, succeeded: 3, failed: 0 });

    expect(traffic.errors).toEqual([]);
    expect(traffic.answers.length).toBeGreaterThan(20);
    expect(traffic.answers.filter((a) => a.status !== 200)).toEqual([]);
    // Each answer's header matches the weights that really made it.
    for (const a of traffic.answers) {
      expect(a.version === "0" ? BASE : "ckpt/step-1").toBe(a.weights);
    }
    // Requests sent after the refit call began (with a margin for the refit
    // call itself to reach the router) all came from the new weights.
    const after = traffic.answers.filter((a) => a.sentAtMs > refitStartedMs + 20);
    expect(after.length).toBeGreaterThan(5);
    expect(after.filter((a) => a.weights !== "ckpt/step-1")).toEqual([]);
    // There was traffic before the refit too, on the old weights.
    expect(traffic.answers.some((a) => a.version === "0")).toBe(true);

    const health = (await jsonRequest(`${r.url}/health`)).body;
    expect(health.weight_version).toBe("1");
    for (const w of await workers(r)) expect(w.weight_version).toBe("1");
  });

  it("partial failure: the failing worker leaves rotation, the answer is not 200, the others are updated", async () => {
    const good = await sim();
    const bad = await sim(["--fail-updates"]);
    const r = await router(["--worker-urls", good.url, bad.url]);
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } });
    expect(refit.status).toBe(502);
    expect(refit.body.code).toBe("upstream_failed");
    expect(refit.body.weight_version).toBe("1");
    expect(refit.body.summary).toMatchObject({ targets: 2, succeeded: 1, failed: 1 });
    expect(refit.body.summary.failed_workers[0].worker_url).toBe(bad.url);
    const byUrl = Object.fromEntries((await workers(r)).map((w) => [w.url, w]));
    expect(byUrl[good.url]).toMatchObject({ state: "healthy", weight_version: "1" });
    expect(byUrl[bad.url].state).toBe("stale");
    expect(byUrl[bad.url].last_error).toMatch(/update_weights_from_disk/);

    // The router's health and capability probes (GET) may arrive at any time; count what could change weights or generate.
    const posts = (st: { requests_by_route: Record<string, number> }) => Object.entries(st.requests_by_route).filter(([k]) => k.startsWith("POST ")).reduce((n, [, v]) => n + v, 0);
    const before = posts(await simStats(bad));
    const answers = await Promise.all(Array.from({ length: 10 }, () => generate(r.url)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set([good.url]));
    expect(answers.every((a) => a.weights === "ckpt/step-1" && a.version === "1")).toBe(true);
    // Only the router's replay attempts reach the stale worker, never a generation.
    const stats = await simStats(bad);
    expect(stats.requests_by_route["POST /v1/images/generations"] ?? 0).toBe(0);
    expect(posts(stats) - before).toBeLessThanOrEqual(2);
  });

  it("a refit where every worker fails keeps the pool on its weights and in rotation", async () => {
    const a = await sim(["--fail-updates"]);
    const r = await router(["--worker-urls", a.url]);
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } });
    expect(refit.status).toBe(502);
    expect(refit.body.weight_version).toBe("0");
    expect((await generate(r.url)).status).toBe(200);
  });

  it("a second refit while one runs gets 409", async () => {
    const a = await sim(["--weight-load-ms", "1500"]);
    const r = await router(["--worker-urls", a.url]);
    const first = jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/a" } });
    await waitFor(async () => (await jsonRequest(`${r.url}/refit`)).body.phase !== "idle", 15_000, "refit to start");
    const second = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/b" } });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe("refit_in_progress");
    expect((await first).status).toBe(200);
    expect((await simStats(a)).weights).toBe("ckpt/a");
  });

  it("a trainer-supplied weight_version names the version; a drain timeout changes nothing", async () => {
    const a = await sim(["--speed", "0.002"]); // a 64x64 2-step image takes ~1 s
    const r = await router(["--worker-urls", a.url]);
    const named = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/a", weight_version: "step-7" } });
    expect(named.body.weight_version).toBe("step-7");
    const slow = generate(r.url);
    await waitFor(async () => (await simStats(a)).requests_total > 0 && (await jsonRequest(`${r.url}/workers`)).body.workers[0].active_requests === 1, 15_000, "request in flight");
    const timedOut = await jsonRequest(`${r.url}/update_weights_from_disk?drain_timeout_s=0.2`, { method: "POST", json: { model_path: "ckpt/b" } });
    expect(timedOut.status).toBe(504);
    expect(timedOut.body.code).toBe("drain_timeout");
    expect((await slow).status).toBe(200);
    expect((await simStats(a)).weights).toBe("ckpt/a");
    expect((await jsonRequest(`${r.url}/health`)).body.weight_version).toBe("step-7");
  });
});

describe("joining and returning workers", () => {
  it("a worker registered after a refit serves only once it holds the new weights", async () => {
    const a = await sim();
    const r = await router(["--worker-urls", a.url]);
    expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } })).status).toBe(200);
    const late = await sim(["--weight-load-ms", "800"]);
    const traffic = load(r.url, 6);
    expect((await jsonRequest(`${r.url}/workers`, { method: "POST", json: { url: late.url } })).status).toBe(200);
    await waitFor(async () => (await workers(r)).find((w) => w.url === late.url)?.weight_version === "1", 10_000, "late worker re-synced");
    await waitFor(() => traffic.answers.some((x) => x.worker === late.url), 15_000, "an answer from the late worker");
    await traffic.stop();
    expect(traffic.answers.filter((x) => x.status !== 200)).toEqual([]);
    expect(traffic.answers.filter((x) => x.weights !== "ckpt/step-1")).toEqual([]);
    // The late worker did take traffic once synced.
    expect(traffic.answers.some((x) => x.worker === late.url)).toBe(true);
    expect((await simStats(late)).weights).toBe("ckpt/step-1");
  });

  it("a worker whose process restarts behind its URL is re-synced before it takes traffic", async () => {
    const a = await sim();
    let b = await sim(["--weight-load-ms", "300"]);
    const port = b.port;
    const r = await router(["--worker-urls", a.url, b.url, "--health-check-interval", "0.2", "--health-check-failure-threshold", "2"]);
    expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } })).status).toBe(200);
    await b.stop();
    // A probe found nothing listening, so the router knows a new process may come back there.
    await waitFor(async () => (await workers(r)).find((w) => w.url === b.url)?.weight_version === null, 15_000, "the router seeing the process gone");
    b = await sim(["--port", String(port), "--weight-load-ms", "300"]); // a new process: base weights
    const traffic = load(r.url, 4);
    await waitFor(async () => (await simStats(b)).weights === "ckpt/step-1" && (await workers(r)).find((w) => w.url === b.url)?.state === "healthy", 10_000, "restarted worker re-synced");
    await waitFor(() => traffic.answers.some((x) => x.worker === b.url), 15_000, "an answer from the restarted worker");
    await traffic.stop();
    expect(traffic.answers.filter((x) => x.status !== 200)).toEqual([]);
    expect(traffic.answers.filter((x) => x.weights !== "ckpt/step-1")).toEqual([]);
    expect(traffic.answers.some((x) => x.worker === b.url)).toBe(true);
  });
});

describe("real workers' model cards", () => {
  it("a `created` that changes on every probe (SGLang answers the request time) never looks like a restarted process", async () => {
    const a = await sim();
    const r = await router(["--worker-urls", a.url, "--health-check-interval", "0.2"]);
    expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-1" } })).status).toBe(200);
    const c1 = (await jsonRequest(`${a.url}/v1/models`)).body.data[0].created;
    const cards = (await simStats(a)).requests_by_route["GET /v1/models"] ?? 0;
    // The router read the card ~10 times, across at least one change of `created`.
    await waitFor(async () => ((await simStats(a)).requests_by_route["GET /v1/models"] ?? 0) >= cards + 10 && (await jsonRequest(`${a.url}/v1/models`)).body.data[0].created !== c1, 10_000, "10 model-card probes and `created` moved on");
    expect((await jsonRequest(`${a.url}/v1/models`)).body.data[0].created).not.toBe(c1);
    const [w] = await workers(r);
    expect(w).toMatchObject({ state: "healthy", weight_version: "1" });
    // No replay happened: the worker loaded the weights once.
    expect((await simStats(a)).requests_by_route["POST /update_weights_from_disk"]).toBe(1);
    expect((await generate(r.url)).weights).toBe("ckpt/step-1");
  });
});

describe("two-phase refit for tensor updates", () => {
  it("an abort keeps workers that took uncommitted tensors out of rotation", async () => {
    const a = await sim();
    const b = await sim();
    const r = await router(["--worker-urls", a.url, b.url]);
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    const held = Array.from({ length: 4 }, () => generate(r.url));
    await jsonRequest(`${r.url}/workers/${encodeURIComponent(a.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["h"], weight_version: "t3" } });
    const abort = await jsonRequest(`${r.url}/refit/abort`, { method: "POST", json: {} });
    expect(abort.body.stale_workers).toEqual([a.url]);
    const answers = [...(await Promise.all(held)), ...(await Promise.all(Array.from({ length: 4 }, () => generate(r.url))))];
    // Neither the released held requests nor later ones reach the worker with uncommitted weights.
    expect(answers.map((x) => [x.status, x.worker, x.weights])).toEqual(Array(8).fill([200, b.url, BASE]));
    expect((await workers(r)).find((w) => w.url === a.url)).toMatchObject({ state: "stale", weight_version: null });
  });

  it("a disk refit cannot be aborted (it ends by itself)", async () => {
    const a = await sim(["--weight-load-ms", "1000"]);
    const r = await router(["--worker-urls", a.url]);
    const refit = jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/a" } });
    await waitFor(async () => (await jsonRequest(`${r.url}/refit`)).body.phase !== "idle", 15_000, "refit started");
    const abort = await jsonRequest(`${r.url}/refit/abort`, { method: "POST", json: {} });
    expect(abort.status).toBe(409);
    expect((await refit).status).toBe(200);
    expect((await generate(r.url)).weights).toBe("ckpt/a");
  });

  it("begin holds and drains, per-worker tensor updates pass through, commit releases held requests onto the new weights", async () => {
    const a = await sim();
    const b = await sim();
    const r = await router(["--worker-urls", a.url, b.url]);
    const outside = await jsonRequest(`${r.url}/workers/${encodeURIComponent(a.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["x"], weight_version: "t1" } });
    expect(outside.status).toBe(409);
    expect(outside.body.error.code).toBe("no_refit_in_progress");

    const begin = await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: { timeout_s: 30 } });
    expect(begin.status).toBe(200);
    expect(begin.body.workers.sort()).toEqual([a.url, b.url].sort());
    const held = Array.from({ length: 4 }, () => generate(r.url));
    await waitFor(async () => (await jsonRequest(`${r.url}/refit`)).body.held_requests === 4, 15_000, "requests held");
    for (const s of [a, b]) {
      const up = await jsonRequest(`${r.url}/workers/${encodeURIComponent(s.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["ipc-handle"], load_format: "flattened_bucket", weight_version: "t1" } });
      expect(up.status).toBe(200);
      expect(up.body.success).toBe(true);
    }
    expect((await simStats(a)).requests_by_route["POST /v1/images/generations"] ?? 0).toBe(0);
    const commit = await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "t1" } });
    expect(commit.status).toBe(200);
    expect(commit.body).toMatchObject({ weight_version: "t1", stale_workers: [] });
    const answers = await Promise.all(held);
    expect(answers.map((x) => [x.status, x.version, x.weights])).toEqual(Array(4).fill([200, "t1", "tensor:t1"]));
  });

  it("a worker not updated before commit leaves rotation; a second begin is 409", async () => {
    const a = await sim();
    const b = await sim();
    const r = await router(["--worker-urls", a.url, b.url]);
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(409);
    await jsonRequest(`${r.url}/workers/${encodeURIComponent(a.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["h"], weight_version: "t2" } });
    const commit = await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "t2" } });
    expect(commit.body.stale_workers).toEqual([b.url]);
    const answers = await Promise.all(Array.from({ length: 6 }, () => generate(r.url)));
    expect(new Set(answers.map((x) => x.worker))).toEqual(new Set([a.url]));
    expect((await workers(r)).find((w) => w.url === b.url)?.state).toBe("stale");
  });

  it("a refit left open past its timeout aborts and releases held requests on the old weights", async () => {
    const a = await sim();
    const r = await router(["--worker-urls", a.url]);
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: { timeout_s: 0.8 } })).status).toBe(200);
    const startedMs = Date.now();
    const answer = await generate(r.url);
    expect(answer.status).toBe(200);
    expect(answer.version).toBe("0");
    expect(answer.weights).toBe(BASE);
    expect(Date.now() - startedMs).toBeGreaterThan(500);
    expect((await jsonRequest(`${r.url}/refit`)).body.phase).toBe("idle");
    expect((await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: {} })).status).toBe(409);
  });
});

describe("sleep and wake", () => {
  it("under load nothing is sent to a sleeping worker; held requests finish after wake", async () => {
    const sims = await Promise.all([sim(), sim()]);
    const r = await router(["--worker-urls", ...sims.map((s) => s.url)]);
    const traffic = load(r.url, 6);
    await waitFor(() => traffic.answers.length >= 6, 15_000, "traffic flowing before the sleep");
    const release = await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: {} });
    expect(release.status).toBe(200);
    expect(release.body.results.map((x: any) => x.status_code)).toEqual([200, 200]);
    for (const w of await workers(r)) expect(w.is_sleeping).toBe(true);
    const during = await Promise.all(sims.map(simStats));
    const generations = (s: { requests_by_route: Record<string, number> }) => s.requests_by_route["POST /v1/images/generations"];
    // The clients' requests are held by the router meanwhile.
    await waitFor(async () => (await jsonRequest(`${r.url}/refit`)).body.held_requests === 6, 15_000, "all 6 clients' requests held");
    await holdsFor(500, "nothing reaches a sleeping worker", async () => (await Promise.all(sims.map(simStats))).every((s, i) => generations(s) === generations(during[i]!)));
    const after = await Promise.all(sims.map(simStats));
    // Nothing reached the sleeping workers (their request counters did not move).
    expect(after.map((s) => s.requests_by_route["POST /v1/images/generations"])).toEqual(during.map((s) => s.requests_by_route["POST /v1/images/generations"]));
    const health = await jsonRequest(`${r.url}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "sleeping", sleeping_workers: 2 });
    const answeredBeforeWake = traffic.answers.length;
    const resume = await jsonRequest(`${r.url}/resume_memory_occupation`, { method: "POST", json: {} });
    expect(resume.status).toBe(200);
    await waitFor(() => traffic.answers.length >= answeredBeforeWake + 6, 15_000, "the 6 held requests answered after wake");
    await traffic.stop();
    // No SLEEPING 400 ever reached a client; every request succeeded.
    expect(traffic.errors).toEqual([]);
    expect(traffic.answers.filter((x) => x.status !== 200)).toEqual([]);
    // Some requests waited through the whole sleep.
    expect(traffic.answers.length).toBeGreaterThan(10);
  });

  it("a refit while the workers sleep fails clearly (the worker refuses) and changes nothing", async () => {
    const a = await sim();
    const r = await router(["--worker-urls", a.url]);
    await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: {} });
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/asleep" } });
    expect(refit.status).toBe(502);
    expect(refit.body.weight_version).toBe("0");
    expect(refit.body.summary.failed_workers[0].message).toMatch(/worker is sleeping \(call \/resume_memory_occupation first\)/);
    expect((await jsonRequest(`${r.url}/resume_memory_occupation`, { method: "POST", json: {} })).status).toBe(200);
    const answer = await generate(r.url);
    expect([answer.status, answer.version, answer.weights]).toEqual([200, "0", BASE]);
  });

  it("requests held while every worker sleeps get 503 with Retry-After after the queue timeout", async () => {
    const a = await sim();
    const r = await router(["--worker-urls", a.url, "--queue-timeout", "0.5"]);
    await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: {} });
    const res = await fetch(`${r.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smallImage) });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    const body = (await res.json()) as { error: string; code: string };
    expect(body.code).toBe("queue_timeout");
    expect(typeof body.error).toBe("string");
  });
});

describe("state file", () => {
  it("a router restarted mid-refit keeps unverified workers out until they hold the refit's weights", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sgl-state-"));
    const stateFile = join(dir, "state.json");
    const sims = await Promise.all([sim(["--weight-load-ms", "2500"]), sim(["--weight-load-ms", "2500"])]);
    const first = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--state-file", stateFile, "--worker-urls", ...sims.map((s) => s.url)]);
    void jsonRequest(`${first.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-9" } }).catch(() => undefined);
    await waitFor(async () => (await jsonRequest(`${first.url}/refit`)).body.phase === "updating", 15_000, "refit to reach the workers");
    first.proc.kill("SIGKILL");
    await new Promise((res) => first.proc.once("exit", res));

    const second = await router(["--state-file", stateFile, "--worker-urls", ...sims.map((s) => s.url)]);
    const ws = await workers(second);
    expect(ws.map((w) => w.state)).toEqual(["syncing", "syncing"]);
    // Requests sent now wait until the workers are verified, then get the refit's weights.
    const answers = await Promise.all(Array.from({ length: 4 }, () => generate(second.url)));
    expect(answers.map((x) => [x.status, x.weights, x.version])).toEqual(Array(4).fill([200, "ckpt/step-9", "1"]));
    expect((await jsonRequest(`${second.url}/health`)).body.weight_version).toBe("1");
  });

  it("a router restarted during a tensor refit keeps every worker out of rotation until a trainer updates it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sgl-state-"));
    const stateFile = join(dir, "state.json");
    const a = await sim();
    const first = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--state-file", stateFile, "--worker-urls", a.url]);
    expect((await jsonRequest(`${first.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    first.proc.kill("SIGKILL");
    await new Promise((res) => first.proc.once("exit", res));

    const second = await router(["--state-file", stateFile, "--worker-urls", a.url, "--queue-timeout", "0.5"]);
    await waitFor(async () => (await workers(second))[0]?.state === "stale", 15_000, "worker marked stale");
    const held = await generate(second.url);
    expect(held.status).toBe(503);
    expect((await simStats(a)).requests_by_route["POST /v1/images/generations"] ?? 0).toBe(0);
    // A new two-phase refit brings it back.
    expect((await jsonRequest(`${second.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    await jsonRequest(`${second.url}/workers/${encodeURIComponent(a.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["h"], weight_version: "t9" } });
    expect((await jsonRequest(`${second.url}/refit/commit`, { method: "POST", json: { weight_version: "t9" } })).status).toBe(200);
    const ok = await generate(second.url);
    expect([ok.status, ok.version, ok.weights]).toEqual([200, "t9", "tensor:t9"]);
  });
});
