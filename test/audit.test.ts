/**
 * The audit trail: every control action, through REST, Connect and gRPC,
 * leaves a start and an end line with who called (remote address, which
 * key, never the key), the arguments that matter, the duration and what each
 * worker made of it; GET /audit shows the latest; RPCs get access-log lines
 * and control-plane metrics count what happened.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, startRouterProcess } from "./helpers/router.js";
import { startSimProcess } from "./helpers/sim.js";

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

const ADMIN_KEY = "admin-secret-4f7c";
const DATA_KEY = "data-secret-91ab";

interface AuditEventJson {
  id: number;
  requestId: string;
  action: string;
  caller: { remote: string; key: string; transport: string };
  args: Record<string, unknown>;
  durationMs: number | null;
  outcome: string;
  code?: string;
  workers?: { worker: string; ok: boolean; status?: number; error?: string }[];
  repeats?: number;
}

describe("audit trail", () => {
  it("records REST, Connect and gRPC control actions with caller, arguments, duration and per-worker outcome", async () => {
    const good = await startSimProcess([]);
    const bad = await startSimProcess(["--fail-updates"]);
    cleanup.push(() => good.stop(), () => bad.stop());
    const r = await startRouterProcess(["--admin-api-key", ADMIN_KEY, "--api-key", DATA_KEY, "--worker-urls", good.url]);
    cleanup.push(() => r.stop());
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };

    // REST: register the second worker, with a request id the caller chose.
    const added = await jsonRequest(`${r.url}/workers`, { method: "POST", headers: { ...auth, "x-request-id": "rest-add-1" }, json: { url: bad.url } });
    expect(added.status).toBe(200);

    // Connect (HTTP/1.1): a refit that fails on one worker.
    const connect = createClient(AdminService, createConnectTransport({ baseUrl: r.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", auth.authorization), next(req))] }));
    const refitErr = await connect.updateWeightsFromDisk({ modelPath: "ckpt/step-7", weightVersion: "v7" }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(refitErr?.code).toBe(Code.Unavailable);

    // gRPC (h2c): sleep and wake.
    const sessionManager = new Http2SessionManager(r.url);
    cleanup.push(() => sessionManager.abort());
    const grpc = createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager, interceptors: [(next) => (req) => (req.header.set("authorization", auth.authorization), next(req))] }));
    await grpc.releaseMemoryOccupation({});
    await grpc.resumeMemoryOccupation({});
    // A call without the key is refused: an access-log line, and a refusal on the trail (not an action that ran).
    const denied = await createClient(AdminService, createConnectTransport({ baseUrl: r.url, httpVersion: "1.1" })).removeWorker({ url: good.url }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(denied?.code).toBe(Code.Unauthenticated);

    const trail = await jsonRequest(`${r.url}/audit?limit=50`, { headers: auth });
    expect(trail.status).toBe(200);
    const events = (trail.body.events as AuditEventJson[]).slice().reverse(); // oldest first
    const actions = events.map((e) => e.action);
    // The router's own registration of --worker-urls comes first, then the callers' actions in order.
    expect(actions).toEqual(["worker.register", "worker.register", "refit.from_disk", "memory.release", "memory.resume", "auth.refused"]);
    expect(events[0]!.caller.transport).toBe("router");

    const add = events[1]!;
    expect(add).toMatchObject({ requestId: "rest-add-1", outcome: "ok", args: { url: bad.url }, caller: { key: "admin", transport: "rest" } });
    expect(add.caller.remote).toMatch(/^127\.0\.0\.1:\d+$/);

    const refit = events[2]!;
    expect(refit).toMatchObject({ outcome: "partial", code: "upstream_failed", args: { model_path: "ckpt/step-7", weight_version: "v7" }, caller: { key: "admin", transport: "connect" } });
    expect(refit.durationMs).toBeGreaterThanOrEqual(0);
    const perWorker = Object.fromEntries(refit.workers!.map((w) => [w.worker, w]));
    expect(perWorker[good.url]).toMatchObject({ ok: true, status: 200 });
    expect(perWorker[bad.url]).toMatchObject({ ok: false, status: 400 });
    expect(perWorker[bad.url]!.error).toBeTruthy();

    expect(events[3]).toMatchObject({ outcome: "ok", caller: { transport: "grpc", key: "admin" } });
    expect(events[3]!.workers!.map((w) => w.worker).sort()).toEqual([good.url, bad.url].sort());

    // Log lines: a start and an end line per action, sharing the request id; the key is never written.
    const refitLines = r.logs.filter((l) => l.action === "refit.from_disk");
    expect(refitLines.map((l) => l.audit)).toEqual(["start", "end"]);
    expect(refitLines[1]).toMatchObject({ outcome: "partial", level: 40 });
    expect(refitLines[0]!.requestId).toBe(refitLines[1]!.requestId);
    expect(refitLines[0]!.requestId).toBe(refit.requestId);
    // RPCs are in the access log like REST requests, refused ones included.
    // (The log comes over a pipe, the answers over sockets: wait for the last line.)
    await r.waitForLog((l) => l.msg === "rpc" && l.code === "unauthenticated");
    const rpcLines = r.logs.filter((l) => l.msg === "rpc");
    expect(rpcLines.map((l) => [l.rpc, l.code])).toEqual(
      expect.arrayContaining([
        ["/sgl.diffusion.router.v1.AdminService/UpdateWeightsFromDisk", "unavailable"],
        ["/sgl.diffusion.router.v1.AdminService/ReleaseMemoryOccupation", "ok"],
        ["/sgl.diffusion.router.v1.AdminService/RemoveWorker", "unauthenticated"],
      ]),
    );
    expect(rpcLines.find((l) => l.rpc === "/sgl.diffusion.router.v1.AdminService/RemoveWorker")).toMatchObject({ key: "none", transport: "connect" });
    const everything = JSON.stringify(r.logs);
    expect(everything).not.toContain(ADMIN_KEY);
    expect(everything).not.toContain(DATA_KEY);

    // Control-plane metrics.
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/sgl_router_refits_total\{kind="disk",outcome="partial"\} 1/);
    expect(metrics).toMatch(/sgl_router_refit_duration_seconds_count\{kind="disk"\} 1/);
    expect(metrics).toMatch(/sgl_router_memory_operations_total\{operation="release",outcome="ok"\} 1/);
    expect(metrics).toMatch(/sgl_router_memory_operations_total\{operation="resume",outcome="ok"\} 1/);
    expect(metrics).toMatch(/sgl_router_control_actions_total\{action="worker.register",outcome="ok"\} 2/);
    expect(metrics).toMatch(/sgl_router_rpc_calls_total\{service="AdminService",method="RemoveWorker",code="unauthenticated"\} 1/);
    expect(metrics).toMatch(/sgl_router_rpc_calls_total\{service="AdminService",method="UpdateWeightsFromDisk",code="unavailable"\} 1/);
  });

  it("a refused admin call (no key, a wrong key, the data key) is on the trail and in the log with its route, address and code; a refused data-plane call is not", async () => {
    const sim = await startSimProcess([]);
    cleanup.push(() => sim.stop());
    const r = await startRouterProcess(["--admin-api-key", ADMIN_KEY, "--api-key", DATA_KEY, "--worker-urls", sim.url]);
    cleanup.push(() => r.stop());
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };

    // REST: no key, a wrong key, the data key on an admin route.
    expect((await jsonRequest(`${r.url}/workers`, { method: "POST", headers: { "x-request-id": "knock-1" }, json: { url: "http://127.0.0.1:1" } })).status).toBe(401);
    expect((await jsonRequest(`${r.url}/refit`, { headers: { authorization: "Bearer guessed" } })).status).toBe(401);
    expect((await jsonRequest(`${r.url}/audit`, { headers: { authorization: `Bearer ${DATA_KEY}` } })).status).toBe(401);
    // gRPC without a key.
    const sessionManager = new Http2SessionManager(r.url);
    cleanup.push(() => sessionManager.abort());
    const denied = await createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager })).listWorkers({}).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(denied?.code).toBe(Code.Unauthenticated);
    // The same refusal again (a dashboard polling without the key): counted on the first event, a log line each.
    for (let i = 0; i < 2; i++) expect((await jsonRequest(`${r.url}/workers`, { method: "POST", json: { url: "http://127.0.0.1:1" } })).status).toBe(401);
    // The data plane without its key: refused, but not an admin call.
    expect((await jsonRequest(`${r.url}/v1/models`)).status).toBe(401);

    const events = ((await jsonRequest(`${r.url}/audit`, { headers: auth })).body.events as AuditEventJson[]).slice().reverse();
    const refusals = events.filter((e) => e.action === "auth.refused");
    expect(refusals.map((e) => [e.args.route, e.caller.transport, e.caller.key])).toEqual([
      ["POST /workers", "rest", "none"],
      ["GET /refit", "rest", "none"],
      ["GET /audit", "rest", "data"],
      ["/sgl.diffusion.router.v1.AdminService/ListWorkers", "grpc", "none"],
    ]);
    for (const e of refusals) {
      expect(e).toMatchObject({ outcome: "failed", code: "unauthenticated", durationMs: 0 });
      expect(e.caller.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    }
    expect(refusals[0]!.requestId).toBe("knock-1");
    expect(refusals.map((e) => e.repeats)).toEqual([3, undefined, undefined, undefined]);
    await r.waitForLog((l) => l.msg === "request" && l.path === "/v1/models" && l.status === 401);
    expect(r.logs.filter((l) => l.msg === "request" && l.path === "/workers" && l.status === 401 && l.level === 40)).toHaveLength(3);

    await r.waitForLog((l) => l.audit === "refused" && (l.caller as { transport?: string } | undefined)?.transport === "grpc");
    const lines = r.logs.filter((l) => l.audit === "refused");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatchObject({ level: 40, action: "auth.refused", requestId: "knock-1", args: { route: "POST /workers" }, code: "unauthenticated", caller: { transport: "rest", remote: refusals[0]!.caller.remote } });
    expect(JSON.stringify(r.logs)).not.toContain(DATA_KEY);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/sgl_router_control_actions_total\{action="auth.refused",outcome="failed"\} 6/);
  });

  it("a two-phase refit: begin, per-worker tensor updates and commit, with the refit's duration from begin to commit", async () => {
    const a = await startSimProcess([]);
    const b = await startSimProcess([]);
    cleanup.push(() => a.stop(), () => b.stop());
    const r = await startRouterProcess(["--worker-urls", a.url, b.url]);
    cleanup.push(() => r.stop());
    expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: { timeout_s: 30 } })).status).toBe(200);
    const tensor = { serialized_named_tensors: ["ipc"], load_format: "flattened_bucket", weight_version: "t1" };
    expect((await jsonRequest(`${r.url}/workers/${encodeURIComponent(a.url)}/update_weights_from_tensor`, { method: "POST", json: tensor })).status).toBe(200);
    const commit = await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "t1" } });
    expect(commit.status).toBe(200);

    const events = ((await jsonRequest(`${r.url}/audit`)).body.events as AuditEventJson[]).slice().reverse();
    expect(events.map((e) => e.action).slice(2)).toEqual(["refit.begin", "refit.tensor_update", "refit.commit"]);
    expect(events[3]).toMatchObject({ args: { worker: a.url }, outcome: "ok", workers: [{ worker: a.url, ok: true, status: 200 }] });
    // b was not updated: the commit leaves it stale, and says so per worker.
    expect(events[4]).toMatchObject({ outcome: "partial", args: { weight_version: "t1" } });
    expect(Object.fromEntries(events[4]!.workers!.map((w) => [w.worker, w.ok]))).toEqual({ [a.url]: true, [b.url]: false });
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/sgl_router_refits_total\{kind="tensor",outcome="partial"\} 1/);
    expect(metrics).toMatch(/sgl_router_refit_duration_seconds_count\{kind="tensor"\} 1/);

    // Bad input: a clear 400 naming the parameter.
    const bad = await jsonRequest(`${r.url}/audit?limit=0`);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain("limit");
  });
});
