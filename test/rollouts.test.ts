/**
 * Rollout jobs over real sockets: the built router and simulated workers as
 * processes, REST (NDJSON) and RPC (Connect and gRPC, server streaming).
 */
import { postRollout } from "./helpers/rollout-stream.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutService } from "../src/gen/sgl/diffusion/router/v1/rollout_pb.js";
import { Code, RouterClientError, createRouterClient, type RolloutJobRequest } from "../sdk/src/index.js";
import { holdsFor } from "./helpers/idle.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE = "/v1/images/generations";
const small = { size: "64x64", num_inference_steps: 2, response_format: "b64_json" };

function items(n: number, extra: Record<string, unknown> = {}) {
  return Array.from({ length: n }, (_, i) => ({ path: IMAGE, body: { prompt: `sample ${i}`, seed: i, ...small, ...extra } }));
}

/** POST /v1/rollouts; resolves with every NDJSON line. `onLine` may return "close" to hang up. */
const rollout = (url: string, body: unknown, onLine?: (line: any, all: any[]) => "close" | void) => postRollout(url, body, onLine);

/** items() typed for the SDK. */
function sdkItems(n: number): RolloutJobRequest[] {
  return Array.from({ length: n }, (_, i) => ({ path: IMAGE, body: { prompt: `sample ${i}`, seed: i, size: "64x64", num_inference_steps: 2, response_format: "b64_json" } }));
}

async function generations(sims: SimProcess[]): Promise<number> {
  const stats = await Promise.all(sims.map(async (s) => (await jsonRequest(`${s.url}/sim/stats`)).body));
  return stats.reduce((n: number, s: any) => n + (s.requests_by_route[`POST ${IMAGE}`] ?? 0), 0);
}

async function setSpeed(sims: SimProcess[], speed: number): Promise<void> {
  await Promise.all(sims.map((s) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { speed } })));
}

describe("POST /v1/rollouts", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1, 2].map(() => startSimProcess()));
    router = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it("a 64-item job streams the id, 64 results with provenance in completion order, and a summary", async () => {
    await setSpeed(sims, 1);
    const workerIds = new Set(sims.map((s) => encodeURIComponent(s.url)));
    const r = await rollout(router.url, { requests: items(64) });
    expect(r.status).toBe(200);
    expect(r.contentType).toBe("application/x-ndjson");
    const [first, ...rest] = r.lines;
    expect(first.id).toMatch(/^rollout_[0-9a-f]{24}$/);
    expect(first.size).toBe(64);
    const results = rest.slice(0, -1);
    expect(results).toHaveLength(64);
    expect(new Set(results.map((x) => x.index))).toEqual(new Set(Array.from({ length: 64 }, (_, i) => i)));
    for (const x of results) {
      expect(x).toMatchObject({ status: 200, weight_version: "0", content_type: "application/json", body_encoding: "json", attempts: 1 });
      expect(workerIds.has(x.worker_id)).toBe(true);
      expect(x.queue_ms).toBeGreaterThanOrEqual(0);
      expect(x.service_ms).toBeGreaterThan(0);
      expect(Buffer.from(x.body.data[0].b64_json, "base64").subarray(1, 4).toString()).toBe("PNG");
    }
    // Spread over the fleet.
    expect(new Set(results.map((x) => x.worker_id)).size).toBe(3);
    expect(rest.at(-1)).toEqual({ summary: { id: first.id, completed: 64, failed: 0, cancelled: 0, reason: null, completed_groups: [] } });
    // The job is still there to ask about.
    const state = await jsonRequest(`${router.url}/v1/rollouts/${first.id}`);
    expect(state.body).toMatchObject({ id: first.id, status: "ended", size: 64, summary: { completed: 64 } });
    expect(state.body.items.every((i: any) => i.state === "succeeded" && i.status === 200 && i.weight_version === "0")).toBe(true);
  });

  it("min_complete 8 of 64 on slow workers: the job ends after 8 successes and the workers got far fewer than 64 requests", async () => {
    await setSpeed(sims, 0.01); // ~200 ms per image
    try {
      const before = await generations(sims);
      const r = await rollout(router.url, { requests: items(64), min_complete: 8 });
      const results = r.lines.slice(1, -1);
      const summary = r.lines.at(-1).summary;
      expect(results.filter((x) => x.status === 200).length).toBeGreaterThanOrEqual(8);
      expect(summary.reason).toBe("min_complete");
      expect(summary.completed + summary.failed + summary.cancelled).toBe(64);
      expect(summary.cancelled).toBeGreaterThanOrEqual(50);
      // 8 successes, plus at most one running per worker when the eighth came back.
      await holdsFor(400, "no more items sent after the job ended", async () => (await generations(sims)) - before <= 8 + sims.length);
      const sent = (await generations(sims)) - before;
      expect(sent).toBeLessThanOrEqual(8 + sims.length);
    } finally {
      await setSpeed(sims, 1);
    }
  });

  it("closing the stream after the first result: no queued item reaches a worker afterwards", async () => {
    await setSpeed(sims, 0.01);
    try {
      const before = await generations(sims);
      const r = await rollout(router.url, { requests: items(40) }, (line) => ("index" in line ? "close" : undefined));
      expect(r.lines.filter((l) => "index" in l)).toHaveLength(1);
      // Once the router has seen the close, nothing more is sent: the count stops moving.
      const id = r.lines[0].id;
      await waitFor(async () => (await jsonRequest(`${router.url}/v1/rollouts/${id}`)).body.status === "ended", 15_000, "the router ending the job on the close");
      const atClose = (await generations(sims)) - before;
      await holdsFor(800, "no item sent after the job ended", async () => (await generations(sims)) - before === atClose);
      const sent = (await generations(sims)) - before;
      expect(sent).toBe(atClose);
      // What was sent: the first wave and the next request of workers that finished as the client left.
      expect(sent).toBeLessThanOrEqual(1 + 2 * sims.length);
      const state = (await jsonRequest(`${router.url}/v1/rollouts/${id}`)).body;
      expect(state.status).toBe("ended");
      expect(state.summary.reason).toBe("client_closed");
      expect(state.items.filter((i: any) => i.state === "cancelled").length).toBeGreaterThanOrEqual(40 - sent);
    } finally {
      await setSpeed(sims, 1);
    }
  });

  it("deadline_s cancels what is not done by then", async () => {
    await setSpeed(sims, 0.01);
    try {
      const t0 = Date.now();
      const r = await rollout(router.url, { requests: items(30), deadline_s: 0.5 });
      const summary = r.lines.at(-1).summary;
      expect(summary.reason).toBe("deadline");
      expect(summary.cancelled).toBeGreaterThan(10);
      expect(summary.completed).toBeLessThan(20);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await setSpeed(sims, 1);
    }
  });

  it("POST /v1/rollouts/{id}/cancel stops a running job", async () => {
    await setSpeed(sims, 0.01);
    try {
      let cancelled: Promise<any> | null = null;
      const r = await rollout(router.url, { requests: items(30) }, (line) => {
        if ("id" in line && !("summary" in line) && cancelled === null) cancelled = jsonRequest(`${router.url}/v1/rollouts/${line.id}/cancel`, { method: "POST" });
      });
      const answer = await cancelled!;
      expect(answer.status).toBe(200);
      expect(r.lines.at(-1).summary.reason).toBe("cancelled");
      expect(r.lines.at(-1).summary.cancelled).toBeGreaterThan(20);
    } finally {
      await setSpeed(sims, 1);
    }
  });

  it("a refit during a job: each result says the weights that made it, and none made on old weights comes after one on new", async () => {
    await setSpeed(sims, 0.02);
    try {
      let refit: Promise<any> | null = null;
      const r = await rollout(router.url, { requests: items(30) }, (line, all) => {
        if ("index" in line && all.filter((l) => "index" in l).length === 3 && refit === null) {
          refit = jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-2", weight_version: "step-2" } });
        }
      });
      expect((await refit!).status).toBe(200);
      const versions = r.lines.slice(1, -1).map((x) => x.weight_version);
      expect(versions).toHaveLength(30);
      expect(new Set(versions)).toEqual(new Set(["0", "step-2"]));
      const firstNew = versions.indexOf("step-2");
      expect(versions.slice(firstNew).every((v) => v === "step-2")).toBe(true);
      expect(r.lines.at(-1).summary).toMatchObject({ completed: 30, failed: 0 });
    } finally {
      await setSpeed(sims, 1);
    }
  });

  it("weight_version pins a job: another version is 409 weight_version_mismatch at once", async () => {
    const current = (await jsonRequest(`${router.url}/health`)).body.weight_version;
    const bad = await jsonRequest(`${router.url}/v1/rollouts`, { method: "POST", json: { requests: items(2), weight_version: "v-old" } });
    expect(bad.status).toBe(409);
    expect(bad.body.error).toMatchObject({ code: "weight_version_mismatch" });
    expect(bad.headers.get("x-router-error-code")).toBe("weight_version_mismatch");
    const ok = await rollout(router.url, { requests: items(4), weight_version: current });
    expect(ok.lines.slice(1, -1).every((x) => x.weight_version === current && x.status === 200)).toBe(true);
  });

  it.each([
    [{}, "requests"],
    [{ requests: [] }, "requests"],
    [{ requests: [{ path: "/v1/videos", body: {} }] }, "requests[0].path"],
    [{ requests: [{ path: IMAGE, body: "x" }] }, "requests[0].body"],
    [{ requests: items(2), min_complete: 3 }, "min_complete"],
    [{ requests: items(2), deadline_s: -1 }, "deadline_s"],
    [{ requests: items(2), priority: 1 }, "priority"],
  ])("bad submission %j: 400 naming %s", async (body, param) => {
    const r = await jsonRequest(`${router.url}/v1/rollouts`, { method: "POST", json: body });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe(param);
  });

  it("an unknown id is 404 rollout_not_found", async () => {
    const r = await jsonRequest(`${router.url}/v1/rollouts/rollout_nope`);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("rollout_not_found");
  });
});

describe("RolloutService over Connect and gRPC", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1].map(() => startSimProcess()));
    router = await startRouterProcess(["--api-key", "DATA", "--admin-api-key", "ADMIN", "--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  const transports = {
    "Connect over HTTP/1.1": () => createConnectTransport({ baseUrl: router.url, httpVersion: "1.1" }),
    "gRPC over h2c": () => createGrpcTransport({ baseUrl: router.url }),
  };

  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: Run streams started, 16 results with bytes bodies, summary; the data-plane key is required`, async () => {
      const client = createClient(RolloutService, transport());
      const requests = Array.from({ length: 16 }, (_, i) => ({ path: IMAGE, body: { prompt: `rpc ${i}`, seed: i, ...small } }));
      await expect(async () => {
        for await (const _ of client.run({ requests })) break;
      }).rejects.toThrow(/API key required/);
      const headers = { authorization: "Bearer DATA" };
      const events = [];
      for await (const e of client.run({ requests, minComplete: undefined }, { headers })) events.push(e.event);
      expect(events[0]!.case).toBe("started");
      const results = events.filter((e) => e.case === "result").map((e) => e.value as any);
      expect(results).toHaveLength(16);
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.weightVersion).toBe("0");
        expect(JSON.parse(Buffer.from(r.body).toString()).data[0].b64_json.length).toBeGreaterThan(100);
      }
      const summary = events.at(-1)!;
      expect(summary.case).toBe("summary");
      expect(summary.value).toMatchObject({ completed: 16, failed: 0, cancelled: 0 });
      const id = (events[0]!.value as any).id;
      const state = await client.getRollout({ id }, { headers });
      expect(state.rollout?.status).toBe("ended");
      expect(state.rollout?.items).toHaveLength(16);
    });
  }

  it("closing the RPC stream cancels the job; Cancel on it after the end changes nothing", async () => {
    await setSpeed(sims, 0.01);
    try {
      const client = createClient(RolloutService, createGrpcTransport({ baseUrl: router.url }));
      const headers = { authorization: "Bearer DATA" };
      const before = await generations(sims);
      let id = "";
      // Connect cancels a call through its signal (leaving the loop alone does not close the stream).
      const ac = new AbortController();
      await expect(async () => {
        for await (const e of client.run({ requests: items(20) }, { headers, signal: ac.signal })) {
          if (e.event.case === "started") id = e.event.value.id;
          if (e.event.case === "result") ac.abort();
        }
      }).rejects.toThrow(/cancel|abort/i);
      const state = await waitFor(async () => {
        const s = await client.getRollout({ id }, { headers });
        return s.rollout?.status === "ended" ? s.rollout : undefined;
      }, 15_000, "job ended");
      expect(state.summary?.reason).toBe("client_closed");
      const atEnd = (await generations(sims)) - before;
      await holdsFor(500, "no item sent after the job ended", async () => (await generations(sims)) - before === atEnd);
      // Nothing sent after the job ended, and little before: the first wave and the next of workers that finished as the client left.
      expect((await generations(sims)) - before).toBe(atEnd);
      expect(atEnd).toBeLessThanOrEqual(1 + 2 * sims.length);
      const again = await client.cancel({ id }, { headers });
      expect(again.rollout?.summary?.reason).toBe("client_closed");
    } finally {
      await setSpeed(sims, 1);
    }
  });
});

describe("SDK: client.rollouts", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1].map(() => startSimProcess()));
    router = await startRouterProcess(["--api-key", "DATA", "--admin-api-key", "ADMIN", "--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  for (const transport of ["connect", "grpc"] as const) {
    it(`${transport}: run() yields every result with provenance, then the summary; minComplete stops early`, async () => {
      const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", adminApiKey: "ADMIN", transport });
      try {
        const job = client.rollouts.run(items(12) as never);
        const seen: number[] = [];
        for await (const r of job) {
          expect(r.ok).toBe(true);
          expect(r.weightVersion).toBe("0");
          expect(sims.map((s) => encodeURIComponent(s.url))).toContain(r.workerId);
          expect(r.json<{ data: { b64_json: string }[] }>().data[0]!.b64_json.length).toBeGreaterThan(100);
          seen.push(r.index);
        }
        expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
        expect(await job.summary).toMatchObject({ id: await job.id, completed: 12, failed: 0, cancelled: 0, reason: "" });

        await setSpeed(sims, 0.01);
        const early = client.rollouts.run(items(20) as never, { minComplete: 2 });
        let ok = 0;
        for await (const r of early) if (r.ok) ok++;
        expect(ok).toBeGreaterThanOrEqual(2);
        expect(await early.summary).toMatchObject({ reason: "min_complete" });
        expect((await early.summary).cancelled).toBeGreaterThan(10);
        expect((await client.rollouts.get(await early.id)).status).toBe("ended");
      } finally {
        await setSpeed(sims, 1);
        await client.close();
      }
    });
  }

  it("id, cancel() and summary work before iterating: the job is cancelled on the router, its results so far still iterable", async () => {
    const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", transport: "connect" });
    await setSpeed(sims, 0.01);
    try {
      const job = client.rollouts.run(sdkItems(20));
      const id = await job.id;
      expect((await client.rollouts.get(id)).status).toBe("running");
      await job.cancel();
      const summary = await job.summary;
      expect(summary).toMatchObject({ id, reason: "cancelled" });
      expect(summary.completed + summary.failed + summary.cancelled).toBe(20);
      expect(summary.cancelled).toBeGreaterThan(10);
      expect((await client.rollouts.get(id)).status).toBe("ended");
      // What finished before the cancel was read with the summary and is still there.
      const seen: number[] = [];
      for await (const r of job) seen.push(r.index);
      expect(seen).toHaveLength(summary.completed + summary.failed);
    } finally {
      await setSpeed(sims, 1);
      await client.close();
    }
  });

  it("summary before iterating resolves when the job ends; every result is then iterated", async () => {
    const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", transport: "grpc" });
    try {
      const job = client.rollouts.run(sdkItems(5));
      expect(await job.summary).toMatchObject({ id: await job.id, completed: 5, failed: 0, cancelled: 0, reason: "" });
      const seen: number[] = [];
      for await (const r of job) if (r.ok) seen.push(r.index);
      expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      await client.close();
    }
  });

  it("leaving the loop early closes the stream: the router cancels the job (client_closed)", async () => {
    const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", transport: "grpc" });
    await setSpeed(sims, 0.05);
    try {
      const job = client.rollouts.run(sdkItems(20));
      for await (const r of job) if (r.ok) break;
      const id = await job.id;
      const state = await waitFor(async () => {
        const s = await client.rollouts.get(id);
        return s.status === "ended" ? s : undefined;
      }, 15_000, "the job to end");
      expect(state.summary?.reason).toBe("client_closed");
    } finally {
      await setSpeed(sims, 1);
      await client.close();
    }
  });

  for (const transport of ["connect", "grpc"] as const) {
    it(`${transport}: a refused job rejects id, summary and iteration with a RouterClientError (code, request id, cause)`, async () => {
      const client = createRouterClient({ baseUrl: router.url, apiKey: "WRONG", transport });
      try {
        const job = client.rollouts.run(sdkItems(2));
        const err = await job.id.then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(RouterClientError);
        expect(err).toMatchObject({ status: 401, code: "unauthenticated", routerCode: "unauthenticated", rpcCode: Code.Unauthenticated, requestId: expect.stringMatching(/.+/) });
        expect((err as RouterClientError).cause).toBeDefined();
        await expect(job.summary).rejects.toBe(err);
        const iterated = await (async () => {
          for await (const _ of job) return null;
          return null;
        })().catch((e: unknown) => e);
        expect(iterated).toBe(err);
        // Cancel and GetRollout are RPCs too: the same error class.
        await expect(client.rollouts.get("nope")).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
      } finally {
        await client.close();
      }
    });
  }

  it("cancel() ends a job on the router; the summary says so", async () => {
    const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", transport: "grpc" });
    await setSpeed(sims, 0.01);
    try {
      const job = client.rollouts.run(items(20) as never);
      let n = 0;
      for await (const _ of job) if (++n === 1) await job.cancel();
      expect(await job.summary).toMatchObject({ reason: "cancelled" });
      expect(n).toBeLessThan(8);
    } finally {
      await setSpeed(sims, 1);
      await client.close();
    }
  });
});
