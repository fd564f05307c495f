/**
 * Bearer keys: --admin-api-key (or SGLANG_D_ROUTER_ADMIN_API_KEY) guards the
 * REST admin routes and every AdminService RPC, --api-key the data plane;
 * /health and the reflection schema stay open; keys never reach the logs;
 * an open admin API on a non-loopback address is warned about.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as reflection from "../src/gen/grpc/reflection/v1/reflection_pb.js";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, routerCli, waitFor } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

/** A router child process whose whole stdout and stderr are kept (raw), to scan for keys. */
interface CapturedRouter {
  url: string;
  port: number;
  output(): string;
  /** Parsed JSON log lines so far. */
  lines(): Record<string, unknown>[];
  stop(): Promise<void>;
}

const running = new Set<CapturedRouter>();
const sessions: Http2SessionManager[] = [];

/**
 * Spawns the built router with `args` (the environment without any router
 * key variables, plus `env`) and waits for "router listening".
 */
async function spawnRouter(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CapturedRouter> {
  const base = { ...process.env };
  delete base.SGLANG_D_ROUTER_ADMIN_API_KEY;
  delete base.SGLANG_D_ROUTER_API_KEY;
  const proc: ChildProcess = spawn(process.execPath, [routerCli, "--port", "0", ...args], { env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  proc.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
  const exited = once(proc, "exit");
  const lines = () =>
    out.split("\n").flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  const deadline = Date.now() + 15_000;
  let listening: Record<string, unknown> | undefined;
  while (!(listening = lines().find((l) => l.msg === "router listening"))) {
    if (proc.exitCode !== null) throw new Error(`router exited with ${proc.exitCode}: ${out}`);
    if (Date.now() > deadline) throw new Error(`router did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const port = Number(listening.port);
  const r: CapturedRouter = {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => out,
    lines,
    async stop() {
      running.delete(r);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  running.add(r);
  return r;
}

function transports(baseUrl: string): [string, Transport][] {
  const sessionManager = new Http2SessionManager(baseUrl);
  sessions.push(sessionManager);
  return [
    ["Connect", createConnectTransport({ baseUrl, httpVersion: "1.1" })],
    ["gRPC", createGrpcTransport({ baseUrl, sessionManager })],
  ];
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const key = (tag: string) => `${tag}-${randomBytes(12).toString("hex")}`;
const imageBody = { prompt: "auth", size: "32x32", num_inference_steps: 1, response_format: "b64_json" };

let sim: SimProcess;
beforeAll(async () => {
  sim = await startSimProcess();
});
afterAll(async () => {
  for (const s of sessions) s.abort();
  await Promise.all([...running].map((r) => r.stop()));
  await sim?.stop();
});

describe("--admin-api-key K1 --api-key K2", () => {
  const K1 = key("admin");
  const K2 = key("data");
  let router: CapturedRouter;
  beforeAll(async () => {
    // --log-level debug: the most the router ever logs must still hold no key.
    router = await spawnRouter(["--host", "127.0.0.1", "--admin-api-key", K1, "--api-key", K2, "--log-level", "debug"]);
  }, 20_000);

  it("REST admin routes: 401 unauthenticated without or with a wrong key, 200 with the admin key", async () => {
    const calls: [string, string, unknown][] = [
      ["POST", "/workers", { url: sim.url }],
      ["GET", "/workers", undefined],
      ["POST", "/update_weights_from_disk", { model_path: "/ckpt/auth" }],
    ];
    for (const [method, path, json] of calls) {
      for (const headers of [{}, bearer("wrong"), bearer(K2), { authorization: K1 }]) {
        const r = await jsonRequest(`${router.url}${path}`, { method, json, headers });
        expect(r.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(r.body.code).toBe("unauthenticated");
        expect(r.headers.get("content-type")).toContain("application/json");
      }
      const ok = await jsonRequest(`${router.url}${path}`, { method, json, headers: bearer(K1) });
      expect(ok.status, `${method} ${path} with the admin key: ${JSON.stringify(ok.body)}`).toBe(200);
    }
    const { body } = await jsonRequest(`${router.url}/workers`, { headers: bearer(K1) });
    expect(body.workers.map((w: { url: string }) => w.url)).toEqual([sim.url]);
  });

  it("data plane: 401 without the API key, 200 with it; /health is open", async () => {
    for (const headers of [{}, bearer("wrong")]) {
      const r = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: imageBody, headers });
      expect(r.status).toBe(401);
      expect(r.body.code).toBe("unauthenticated");
    }
    const ok = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: imageBody, headers: bearer(K2) });
    expect(ok.status).toBe(200);
    expect(typeof ok.body.data[0].b64_json).toBe("string");

    const health = await jsonRequest(`${router.url}/health`);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe("healthy");
  });

  it("RPC over Connect and gRPC: Unauthenticated without the admin key, OK with it", async () => {
    for (const [name, transport] of transports(router.url)) {
      const client = createClient(AdminService, transport);
      for (const headers of [{}, bearer("wrong"), bearer(K2)]) {
        expect(await codeOf(client.listWorkers({}, { headers })), `${name} ListWorkers ${JSON.stringify(headers)}`).toBe(Code.Unauthenticated);
        expect(await codeOf(client.addWorker({ url: sim.url }, { headers })), `${name} AddWorker`).toBe(Code.Unauthenticated);
      }
      // A server stream is refused as well.
      const watch = (async () => {
        for await (const _ of client.watchWorkers({}, { timeoutMs: 3000 })) break;
      })();
      expect(await codeOf(watch), `${name} WatchWorkers`).toBe(Code.Unauthenticated);

      const listed = await client.listWorkers({}, { headers: bearer(K1) });
      expect(listed.workers.map((w) => w.url)).toEqual([sim.url]);
      expect((await client.getRouterStatus({}, { headers: bearer(K1) })).totalWorkers).toBe(1);
    }
  });

  it("server reflection (schema only) needs no key", async () => {
    const [, grpcT] = transports(router.url)[1]!;
    const client = createClient(reflection.ServerReflection, grpcT);
    async function* input() {
      yield create(reflection.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
    }
    const answers = [];
    for await (const res of client.serverReflectionInfo(input())) answers.push(res);
    expect(answers[0]?.messageResponse.case).toBe("listServicesResponse");
  });

  it("neither key appears in the router's output; no open-API warning", async () => {
    expect(router.output().length).toBeGreaterThan(0);
    expect(router.lines().some((l) => l.msg === "router listening")).toBe(true);
    expect(router.output()).not.toContain(K1);
    expect(router.output()).not.toContain(K2);
    await router.stop();
    // Including whatever shutdown printed.
    expect(router.output()).not.toContain(K1);
    expect(router.output()).not.toContain(K2);
  });
});

describe("SGLANG_D_ROUTER_ADMIN_API_KEY", () => {
  const K = key("env-admin");
  let router: CapturedRouter;
  beforeAll(async () => {
    router = await spawnRouter(["--host", "127.0.0.1"], { SGLANG_D_ROUTER_ADMIN_API_KEY: K });
  }, 20_000);

  it("guards REST admin routes and RPCs like --admin-api-key; the data plane stays open", async () => {
    const denied = await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: sim.url } });
    expect(denied.status).toBe(401);
    expect(denied.body.code).toBe("unauthenticated");
    expect((await jsonRequest(`${router.url}/workers`, { headers: bearer("wrong") })).status).toBe(401);
    expect((await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: sim.url }, headers: bearer(K) })).status).toBe(200);
    expect((await jsonRequest(`${router.url}/workers`, { headers: bearer(K) })).status).toBe(200);

    for (const [name, transport] of transports(router.url)) {
      const client = createClient(AdminService, transport);
      expect(await codeOf(client.listWorkers({})), name).toBe(Code.Unauthenticated);
      expect((await client.listWorkers({}, { headers: bearer(K) })).workers.map((w) => w.url)).toEqual([sim.url]);
    }
    // No --api-key: generation needs no key.
    expect((await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: imageBody })).status).toBe(200);
    expect(router.output()).not.toContain(K);
  });
});

describe("open admin API warning", () => {
  const warned = (r: CapturedRouter) => r.lines().filter((l) => l.level === 40 && /admin-api-key/.test(String(l.msg)));

  /**
   * Every start-up line has been read: the access-log line of a GET /health
   * sent now comes after them on the same stdout.
   */
  async function settled(r: CapturedRouter): Promise<void> {
    await jsonRequest(`${r.url}/health`);
    await waitFor(() => r.lines().some((l) => l.msg === "request" && l.path === "/health"), 15_000, "the access-log line of GET /health");
  }

  it("without keys on 0.0.0.0 the router warns", async () => {
    const r = await spawnRouter(["--host", "0.0.0.0"]);
    try {
      await settled(r);
      const w = warned(r);
      expect(w, r.output()).toHaveLength(1);
      expect(w[0]).toMatchObject({ host: "0.0.0.0", adminGuarded: false });
    } finally {
      await r.stop();
    }
  });

  it("on 127.0.0.1 without keys, and on 0.0.0.0 with both keys, no warning", async () => {
    const loopback = await spawnRouter(["--host", "127.0.0.1"]);
    const a = key("a");
    const d = key("d");
    const guarded = await spawnRouter(["--host", "0.0.0.0", "--admin-api-key", a, "--api-key", d]);
    try {
      await Promise.all([settled(loopback), settled(guarded)]);
      expect(warned(loopback), loopback.output()).toEqual([]);
      expect(loopback.lines().filter((l) => l.level === 40)).toEqual([]);
      expect(warned(guarded), guarded.output()).toEqual([]);
      expect(guarded.output()).not.toContain(a);
      expect(guarded.output()).not.toContain(d);
    } finally {
      await Promise.all([loopback.stop(), guarded.stop()]);
    }
  });
});
