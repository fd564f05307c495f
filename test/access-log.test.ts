/**
 * The access log as an operator reads it: refusals (a missing or wrong key,
 * a body over the limit, a full queue) at warn so they show at
 * --log-level warning, everything else at info, and every REST line with the
 * client's address.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as http from "node:http";
import * as net from "node:net";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessLogLevel } from "../src/access-log-level.js";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, routerCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const WARN = 40;
const INFO = 30;
const ADMIN_KEY = "admin-secret-77e1";
const IMAGE = "/v1/images/generations";

describe("accessLogLevel", () => {
  const cases: [code: string | undefined, status: number | undefined, level: "info" | "warn"][] = [
    [undefined, 200, "info"],
    ["unauthenticated", 401, "warn"],
    ["body_too_large", 413, "warn"],
    ["queue_full", 503, "warn"],
    ["queue_timeout", 503, "info"],
    ["no_healthy_workers", 503, "info"],
    ["not_found", 404, "info"],
    ["internal", 500, "info"],
    [undefined, 413, "warn"], // a worker's own 413, passed through
    [undefined, 401, "warn"],
    [undefined, 500, "info"],
    // RPC lines: Connect code names, no HTTP status
    ["ok", undefined, "info"],
    ["unauthenticated", undefined, "warn"],
    ["resource_exhausted", undefined, "warn"],
    ["invalid_argument", undefined, "info"],
    ["canceled", undefined, "info"],
  ];
  for (const [code, status, level] of cases) {
    it(`${code ?? "no code"} / ${status ?? "no status"} -> ${level}`, () => {
      expect(accessLogLevel(code, status)).toBe(level);
    });
  }
});

let sim: SimProcess;
let router: RouterProcess;

beforeAll(async () => {
  sim = await startSimProcess([]);
  router = await startRouterProcess(["--health-check-interval", "3600", "--admin-api-key", ADMIN_KEY, "--max-body-bytes", "2000", "--max-concurrency-per-worker", "1", "--queue-size", "0", "--worker-urls", sim.url]);
  await waitFor(async () => (await jsonRequest(`${router.url}/workers`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).body.workers?.[0]?.state === "healthy", 10_000, "worker healthy");
}, 30_000);

afterAll(async () => {
  await Promise.all([router?.stop(), sim?.stop()]);
});

/** One request on its own connection; resolves with the status and the client's local port (the router's `remote`). */
function request(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${router.url}${path}`, { method: opts.method ?? "GET", headers: opts.headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, localPort }));
    });
    let localPort = 0;
    req.on("socket", (s) => s.once("connect", () => (localPort = s.localPort!)));
    req.on("error", reject);
    req.end(opts.body);
  });
}

const requestLine = (path: string, status: number) => router.waitForLog((l) => l.msg === "request" && l.path === path && l.status === status);

describe("REST access log", () => {
  it("a 200 is at info and names the client's address and port", async () => {
    const { status, localPort } = await request("/health");
    expect(status).toBe(200);
    const line = await requestLine("/health", 200);
    expect(line.level).toBe(INFO);
    expect(line.remote).toBe(`127.0.0.1:${localPort}`);
  });

  it("a 401 (admin route without the key) is at warn, with the address", async () => {
    const { status, localPort } = await request("/workers");
    expect(status).toBe(401);
    const line = await requestLine("/workers", 401);
    expect(line).toMatchObject({ level: WARN, code: "unauthenticated", remote: `127.0.0.1:${localPort}` });
  });

  it("a 413 (body over --max-body-bytes, connection closed) is at warn, with the address", async () => {
    const body = JSON.stringify({ prompt: "x".repeat(5000), size: "64x64" });
    const { status, localPort } = await request(IMAGE, { method: "POST", headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }, body });
    expect(status).toBe(413);
    const line = await requestLine(IMAGE, 413);
    expect(line).toMatchObject({ level: WARN, code: "body_too_large", remote: `127.0.0.1:${localPort}` });
  });

  it("a 503 queue_full is at warn; the request that ran is at info", async () => {
    // Slow the worker so the first request holds its one slot; --queue-size 0 refuses the second.
    await jsonRequest(`${sim.url}/sim/config`, { method: "POST", json: { speed: 2.06 / 1500 } });
    const gen = (seed: number) => request(IMAGE, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "q", size: "64x64", num_inference_steps: 2, seed }) });
    const first = gen(1);
    await waitFor(async () => (await jsonRequest(`${sim.url}/sim/stats`)).body.in_flight === 1, 15_000, "first request on the worker");
    const second = await gen(2);
    expect(second.status).toBe(503);
    const refused = await requestLine(IMAGE, 503);
    expect(refused).toMatchObject({ level: WARN, code: "queue_full", remote: `127.0.0.1:${second.localPort}` });
    expect((await first).status).toBe(200);
    expect(await requestLine(IMAGE, 200)).toMatchObject({ level: INFO, remote: `127.0.0.1:${(await first).localPort}` });
  });
});

describe("REST access log, a client gone", () => {
  it("a client that hangs up before the answer (499) is still named by its address", async () => {
    await jsonRequest(`${sim.url}/sim/config`, { method: "POST", json: { speed: 2.06 / 1500 } });
    await waitFor(async () => (await jsonRequest(`${sim.url}/sim/stats`)).body.in_flight === 0, 15_000, "worker idle");
    const body = JSON.stringify({ prompt: "gone", size: "64x64", num_inference_steps: 2 });
    const localPort = await new Promise<number>((resolve) => {
      const req = http.request(`${router.url}${IMAGE}`, { method: "POST", headers: { "content-type": "application/json" }, agent: false });
      req.on("error", () => undefined);
      req.on("socket", (s) =>
        s.once("connect", () => {
          const port = s.localPort!;
          // Hang up once the worker has the request.
          void waitFor(async () => (await jsonRequest(`${sim.url}/sim/stats`)).body.in_flight === 1, 15_000, "request on the worker").then(() => {
            req.destroy();
            resolve(port);
          });
        }),
      );
      req.end(body);
    });
    expect(await requestLine(IMAGE, 499)).toMatchObject({ remote: `127.0.0.1:${localPort}` });
  });
});

describe("--log-level warning", () => {
  it("the access log shows refusals only", async () => {
    // The router writes no "router listening" line at warning: a port picked here, polled until it answers.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const proc = spawn(process.execPath, [routerCli, "--host", "127.0.0.1", "--port", String(port), "--log-level", "warning", "--admin-api-key", ADMIN_KEY], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    const lines = () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await fetch(`${url}/workers`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }).catch(() => null))?.status === 200, 10_000, "router answering");
      expect((await jsonRequest(`${url}/workers`)).status).toBe(401);
      // One pipe, in order: once the 401's line is here, the 200s' would have been too.
      await waitFor(() => lines().some((l) => l.msg === "request" && l.status === 401), 15_000, "the 401's access line");
      expect(lines().filter((l) => l.msg === "request").map((l) => [l.path, l.status, l.level])).toEqual([["/workers", 401, WARN]]);
    } finally {
      proc.kill("SIGTERM");
      await once(proc, "exit");
    }
  });
});

describe("RPC access log", () => {
  it("an RPC refused for its key is at warn; one with the key at info", async () => {
    const client = (key?: string) =>
      createClient(AdminService, createConnectTransport({ baseUrl: router.url, httpVersion: "1.1", interceptors: key ? [(next) => (req) => (req.header.set("authorization", `Bearer ${key}`), next(req))] : [] }));
    const err = await client().listWorkers({}).then(() => null, (e: unknown) => ConnectError.from(e));
    expect(err?.rawMessage).toMatch(/admin API key required/);
    await client(ADMIN_KEY).listWorkers({});
    const rpcPath = "/sgl.diffusion.router.v1.AdminService/ListWorkers";
    expect(await router.waitForLog((l) => l.msg === "rpc" && l.rpc === rpcPath && l.code === "unauthenticated")).toMatchObject({ level: WARN, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(await router.waitForLog((l) => l.msg === "rpc" && l.rpc === rpcPath && l.code === "ok")).toMatchObject({ level: INFO });
  });
});
