/**
 * Body limits at the edge: --max-body-bytes on the data plane (declared or
 * streamed bodies, HTTP/1.1 and HTTP/2), and --max-admin-body-bytes on admin
 * RPCs through Connect's read limit, refused from the declared length before
 * the body is read. None of it counts against a worker.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const BODY_LIMIT = 200_000;
const ADMIN_LIMIT = 4096;
let sim: SimProcess;
let router: RouterProcess;

beforeAll(async () => {
  sim = await startSimProcess([]);
  router = await startRouterProcess(["--max-body-bytes", String(BODY_LIMIT), "--max-admin-body-bytes", String(ADMIN_LIMIT), "--worker-urls", sim.url]);
});
afterAll(async () => {
  await router?.stop();
  await sim?.stop();
});

const generation = (pad: number) => JSON.stringify({ prompt: `a cat ${"x".repeat(pad)}`, size: "64x64", num_inference_steps: 1, response_format: "b64_json" });

/** Requests that could carry a body to the worker: every POST. The router's own health and capability probes (GET) may arrive at any time and are not what these tests count. */
async function simRequests(): Promise<number> {
  const byRoute: Record<string, number> = (await jsonRequest(`${sim.url}/sim/stats`)).body.requests_by_route;
  return Object.entries(byRoute)
    .filter(([route]) => route.startsWith("POST "))
    .reduce((sum, [, n]) => sum + n, 0);
}

/** POST with a chunked body (no content-length), read the whole answer. */
function chunkedPost(url: string, body: Buffer, chunk = 16 * 1024): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    // The router may answer 413 and close before the whole body is sent.
    req.on("error", (err) => reject(err));
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const part = body.subarray(off, off + chunk);
        off += part.length;
        if (!req.write(part)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

async function workerHealthy(): Promise<void> {
  const w = (await jsonRequest(`${router.url}/workers`)).body.workers[0];
  expect(w).toMatchObject({ is_dead: false, consecutive_failures: 0, state: "healthy" });
}

describe("--max-body-bytes", () => {
  it("a declared body over the limit is a 413 naming the limit, before any worker sees it; the connection closes", async () => {
    const before = await simRequests();
    const res = await fetch(`${router.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: generation(BODY_LIMIT) });
    expect(res.status).toBe(413);
    expect(res.headers.get("x-router-error-code")).toBe("body_too_large");
    expect(res.headers.get("connection")).toBe("close");
    const text = await res.text();
    expect(text).toContain(String(BODY_LIMIT));
    expect(text).toContain("--max-body-bytes");
    expect(await simRequests()).toBe(before);
    await workerHealthy();
  });

  it("a chunked body is counted as it streams: 413 past the limit, the worker is not blamed, the next request works", async () => {
    const big = Buffer.from(generation(BODY_LIMIT * 3));
    let answered = 0;
    for (let i = 0; i < 3; i++) {
      const res = await chunkedPost(`${router.url}/v1/images/generations`, big).catch((err: NodeJS.ErrnoException) => ({ status: -1, headers: {} as http.IncomingHttpHeaders, text: String(err.code) }));
      // The router answers as soon as the limit is passed; a client still
      // sending may see its connection closed after that answer.
      if (res.status !== -1) {
        expect(res.status).toBe(413);
        expect(res.headers["x-router-error-code"]).toBe("body_too_large");
        answered++;
      }
    }
    expect(answered).toBeGreaterThan(0);
    await workerHealthy();
    const ok = await chunkedPost(`${router.url}/v1/images/generations`, Buffer.from(generation(BODY_LIMIT / 2)));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text).data).toHaveLength(1);
  });

  it("a body just under the limit goes through (declared length, buffered or streamed)", async () => {
    const res = await fetch(`${router.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: generation(BODY_LIMIT - 500) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(1);
  });

  it("HTTP/2 without content-length: 413 past the limit", async () => {
    const session = http2.connect(router.url);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/v1/images/generations", "content-type": "application/json" });
      const status = new Promise<number>((resolve, reject) => {
        stream.on("response", (h) => resolve(Number(h[":status"])));
        stream.on("error", reject);
      });
      const big = Buffer.from(generation(BODY_LIMIT * 2));
      for (let off = 0; off < big.length; off += 16 * 1024) stream.write(big.subarray(off, off + 16 * 1024));
      stream.end();
      expect(await status).toBe(413);
    } finally {
      session.close();
    }
    await workerHealthy();
  });
});

describe("admin RPCs under --max-admin-body-bytes", () => {
  it("a Connect call declaring a body over the limit is refused before the body is read", async () => {
    // Declare 50 MB, send 1 KB, and wait: the answer must come without the rest.
    const { hostname, port } = new URL(router.url);
    const socket = net.connect(Number(port), hostname);
    const answer = new Promise<string>((resolve, reject) => {
      let text = "";
      socket.setEncoding("latin1");
      socket.on("data", (c: string) => {
        text += c;
        if (text.includes("\r\n\r\n")) resolve(text);
      });
      socket.on("error", reject);
      setTimeout(() => reject(new Error(`no answer within 5 s: ${text}`)), 5000);
    });
    socket.write(
      `POST /sgl.diffusion.router.v1.AdminService/AddWorker HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 50000000\r\n\r\n{"url":"${"x".repeat(1000)}`,
    );
    const head = await answer;
    socket.destroy();
    // Connect maps resource_exhausted to HTTP 429.
    expect(head).toMatch(/^HTTP\/1\.1 429 /);
    expect(head.toLowerCase()).toContain("application/json");
  });

  it("a gRPC message over the limit is RESOURCE_EXHAUSTED; one under it works", async () => {
    const sessionManager = new Http2SessionManager(router.url);
    try {
      const admin = createClient(AdminService, createGrpcTransport({ baseUrl: router.url, sessionManager }));
      const err = await admin.addWorker({ url: `http://127.0.0.1:1/${"x".repeat(ADMIN_LIMIT)}` }).then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.ResourceExhausted);
      expect((await admin.listWorkers({})).workers).toHaveLength(1);
    } finally {
      sessionManager.abort();
    }
  });
});

describe("request limits (--max-outputs-per-request and friends)", () => {
  it("num_outputs_per_prompt: 1000000 on /rollout/generate is a 400 naming the field and the flag, and reaches no worker; the same in a rollout job item", async () => {
    const before = await simRequests();
    const r = await jsonRequest(`${router.url}/rollout/generate`, { method: "POST", json: { prompt: "a cat", num_outputs_per_prompt: 1_000_000 } });
    expect(r.status).toBe(400);
    expect(r.headers.get("x-router-error-code")).toBe("invalid_request");
    expect(JSON.stringify(r.body)).toContain("num_outputs_per_prompt is 1000000, over the router's limit of 64 (--max-outputs-per-request)");
    const big = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "a cat", size: "20000x512" } });
    expect([big.status, big.body.param ?? big.body.error?.param]).toEqual([400, "size"]);
    const job = await fetch(`${router.url}/v1/rollouts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requests: [{ path: "/rollout/generate", body: { prompt: "a cat", num_outputs_per_prompt: 1_000_000 } }] }),
    });
    const lines = (await job.text()).trim().split("\n").map((l) => JSON.parse(l));
    const result = lines.find((l) => "index" in l);
    expect(result.status).toBe(400);
    expect(await simRequests()).toBe(before);
  });
});
