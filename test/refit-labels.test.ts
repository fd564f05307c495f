/**
 * Refit labels and idempotent sleep/wake (issues 23, 24), over sockets: a
 * router process, simulated workers, REST and the gRPC client.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function setup(): Promise<{ r: RouterProcess; sims: SimProcess[]; admin: Client<typeof AdminService> }> {
  const sims = await Promise.all([startSimProcess([]), startSimProcess([])]);
  for (const s of sims) cleanup.push(() => s.stop());
  const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--worker-urls", ...sims.map((s) => s.url)]);
  cleanup.push(() => r.stop());
  const sessionManager = new Http2SessionManager(r.url);
  cleanup.push(() => sessionManager.abort());
  return { r, sims, admin: createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager })) };
}

async function diskLoads(s: SimProcess): Promise<number> {
  return (await jsonRequest(`${s.url}/sim/stats`)).body.requests_by_route["POST /update_weights_from_disk"] ?? 0;
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

const refit = (r: RouterProcess, json: object) => jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json });

describe("refit labels (issue 23)", () => {
  it("the pool's current weight_version again is 409 weight_version_unchanged (REST and RPC) unless replay is said; an empty one is 400; refusals are counted as refused", async () => {
    const { r, sims, admin } = await setup();
    expect((await refit(r, { model_path: "ckpt/9", weight_version: "9" })).status).toBe(200);
    const loadsBefore = await Promise.all(sims.map(diskLoads));

    const again = await refit(r, { model_path: "ckpt/9", weight_version: "9" });
    expect(again.status).toBe(409);
    expect(again.headers.get("x-router-error-code")).toBe("weight_version_unchanged");
    expect(again.body.error).toMatch(/"9" is the pool's current version.*"replay": true/);
    const empty = await refit(r, { model_path: "ckpt/10", weight_version: "" });
    expect(empty.status).toBe(400);
    expect(empty.body).toMatchObject({ code: "invalid_request" });
    expect(empty.body.error).toMatch(/weight_version/);
    const rpc = await failure(admin.updateWeightsFromDisk({ modelPath: "ckpt/9", weightVersion: "9" }));
    expect(rpc.code).toBe(Code.FailedPrecondition);
    expect(rpc.metadata.get("x-router-error-code")).toBe("weight_version_unchanged");
    // Refused before anything was sent: no worker loaded anything.
    expect(await Promise.all(sims.map(diskLoads))).toEqual(loadsBefore);

    // Said on purpose: the same checkpoint is loaded again, the label stays.
    const replayed = await refit(r, { model_path: "ckpt/9", weight_version: "9", replay: true });
    expect(replayed.status).toBe(200);
    expect(replayed.body).toMatchObject({ weight_version: "9", previous_weight_version: "9", summary: { succeeded: 2 } });
    expect((await admin.updateWeightsFromDisk({ modelPath: "ckpt/9", weightVersion: "9", replay: true })).weightVersion).toBe("9");
    expect(await Promise.all(sims.map(diskLoads))).toEqual(loadsBefore.map((n) => n + 2));
    expect((await refit(r, { model_path: "ckpt/9", replay: "yes" })).body).toMatchObject({ code: "invalid_request", error: expect.stringMatching(/replay must be a boolean/) });

    // Two-phase: commit under the current label is refused and the refit stays open.
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: {} })).status).toBe(200);
    const tensor = await jsonRequest(`${r.url}/workers/${encodeURIComponent(sims[0]!.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["x"] } });
    expect(tensor.status).toBe(200);
    const commit9 = await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "9" } });
    expect(commit9.status).toBe(409);
    expect(commit9.body.error).toMatchObject({ code: "weight_version_unchanged", param: "weight_version" });
    expect((await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "" } })).status).toBe(400);
    expect((await jsonRequest(`${r.url}/refit`)).body.phase).toBe("open");
    expect((await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "10" } })).body).toMatchObject({ weight_version: "10", previous_weight_version: "9" });

    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/sgl_router_refits_total\{kind="disk",outcome="refused"\} 2/);
    expect(metrics).toMatch(/sgl_router_control_actions_total\{action="refit.commit",outcome="refused"\} 1/);
    expect(metrics).not.toMatch(/sgl_router_refits_total\{kind="disk",outcome="failed"\}/);
  });
});

describe("sleep and wake twice (issues 23, 24)", () => {
  it("a second release or resume is 200 changed:false without calling workers; /health is 200 sleeping while the pool sleeps on purpose", async () => {
    const { r, sims, admin } = await setup();
    const first = await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: {} });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ changed: true });
    expect(first.body.results).toHaveLength(2);
    const second = await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: {} });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ results: [], changed: false });
    expect((await admin.releaseMemoryOccupation({})).changed).toBe(false);
    const health = await jsonRequest(`${r.url}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "sleeping", healthy_workers: 0, sleeping_workers: 2 });
    const releases = async () => Promise.all(sims.map(async (s) => (await jsonRequest(`${s.url}/sim/stats`)).body.requests_by_route["POST /release_memory_occupation"]));
    expect(await releases()).toEqual([1, 1]);

    const woke = await admin.resumeMemoryOccupation({});
    expect(woke).toMatchObject({ changed: true });
    expect(woke.results).toHaveLength(2);
    const again = await jsonRequest(`${r.url}/resume_memory_occupation`, { method: "POST", json: {} });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ results: [], changed: false });
    expect((await jsonRequest(`${r.url}/health`)).body.status).toBe("healthy");

    // Down without being put to sleep: still 503 for a probe.
    await Promise.all(sims.map((s) => s.stop()));
    for (const s of sims) await jsonRequest(`${r.url}/workers/${encodeURIComponent(s.url)}`, { method: "PUT", json: { is_dead: true } });
    const down = await jsonRequest(`${r.url}/health`);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe("unhealthy");
  });
});
