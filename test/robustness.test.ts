// What hostile or broken clients do to the router's front door: connections
// that never finish their request, bodies over the admin limit, bytes that
// are not HTTP, oversized headers, absolute-form targets and bodies that are
// not JSON objects. After each, the router must still serve everyone else.
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsFor } from "./helpers/idle.js";
import { jsonRequest, routerErrorCode, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const ADMIN_LIMIT = 1024;
/** --client-header-timeout of the router under test, in seconds. */
const HEADER_TIMEOUT_S = 2;
let router: RouterProcess;
let sim: SimProcess;
let host: string;
let port: number;

beforeAll(async () => {
  sim = await startSimProcess([]);
  router = await startRouterProcess([
    "--health-check-interval",
    "3600",
    "--max-admin-body-bytes",
    String(ADMIN_LIMIT),
    "--client-header-timeout",
    String(HEADER_TIMEOUT_S),
    "--worker-urls",
    sim.url,
  ]);
  ({ hostname: host } = new URL(router.url));
  port = router.port;
  await waitFor(async () => (await jsonRequest(`${router.url}/health`)).status === 200, 10_000, "router healthy");
}, 30_000);

afterAll(async () => {
  await Promise.all([router?.stop(), sim?.stop()]);
});

/** A normal client's request: a small image through the router. */
async function generate(): Promise<number> {
  const r = await jsonRequest(`${router.url}/v1/images/generations`, {
    method: "POST",
    json: { prompt: "robust", size: "64x64", num_inference_steps: 2, response_format: "b64_json" },
  });
  return r.status;
}

async function stillServes(): Promise<void> {
  expect(await generate()).toBe(200);
  expect((await jsonRequest(`${router.url}/health`)).status).toBe(200);
}

interface RawAnswer {
  text: string;
  closed: boolean;
}

/** Writes raw bytes on a new connection; resolves when the router closes it or `waitMs` passed. */
function raw(data: string | Buffer, waitMs = 2000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let text = "";
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("close", () => finish(true));
    socket.on("error", () => finish(true));
    socket.write(data);
  });
}

/** Status line and JSON body of the first answer in a raw exchange. */
function parseAnswer(text: string): { status: number; headers: string; body: any } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  const split = text.indexOf("\r\n\r\n");
  const headers = split < 0 ? text : text.slice(0, split);
  const len = Number(/\r\ncontent-length: (\d+)/i.exec(headers)?.[1] ?? -1);
  const rest = split < 0 ? "" : text.slice(split + 4);
  const bodyText = len >= 0 ? rest.slice(0, len) : rest;
  let body: any = bodyText;
  try {
    body = JSON.parse(bodyText);
  } catch {
    // not JSON
  }
  return { status, headers, body };
}

describe("half-open connections", () => {
  it("300 connections that stop mid-request do not keep the router from answering others", async () => {
    const sockets: Socket[] = [];
    const closed = new Set<number>();
    const partial = [
      "", // connects and says nothing
      "POST /v1/images/gen", // part of a request line
      "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1", // part of the headers
    ];
    try {
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          new Promise<void>((resolve, reject) => {
            const s = connect(port, host, () => {
              if (partial[i % 3]) s.write(partial[i % 3]!);
              resolve();
            });
            s.on("error", () => undefined);
            s.once("error", reject);
            s.on("close", () => closed.add(i));
            sockets.push(s);
          }),
        ),
      );
      expect(closed.size).toBe(0);

      // Everyone else is served at once, while they hang.
      const started = Date.now();
      const statuses = await Promise.all(Array.from({ length: 5 }, generate));
      expect(statuses).toEqual([200, 200, 200, 200, 200]);
      expect((await jsonRequest(`${router.url}/health`)).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
      // (Those that sent part of a request may meet the header timeout by now; the silent ones are all still open.)
      expect([...closed].filter((i) => i % 3 === 0)).toEqual([]);

      // Connections that never sent a byte are dropped after the first-bytes timeout (10 s).
      const silent = Array.from({ length: 100 }, (_, k) => 3 * k);
      await waitFor(() => silent.every((i) => closed.has(i)), 13_000, "silent connections closed by the router");
      await stillServes();
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 30_000);

  it("connections that stop in the middle of their request line or headers are closed after --client-header-timeout", async () => {
    const sockets: Socket[] = [];
    const closedAfter = new Map<number, number>();
    const started = Date.now();
    try {
      for (let i = 0; i < 20; i++) {
        const s = connect(port, host, () => s.write(i % 2 ? "POST /v1/images/gen" : "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1"));
        s.on("error", () => undefined);
        // Read what the router says (its 408), or 'close' never fires on this side.
        s.resume();
        s.on("close", () => closedAfter.set(i, Date.now() - started));
        sockets.push(s);
      }
      await holdsFor(1000, `no stalled connection closed before the ${HEADER_TIMEOUT_S} s --client-header-timeout`, () => closedAfter.size === 0);
      expect(closedAfter.size).toBe(0); // not before the timeout
      await waitFor(() => closedAfter.size === 20, HEADER_TIMEOUT_S * 1000 + 3000, `stalled connections closed ~${HEADER_TIMEOUT_S} s after they opened`);
      await stillServes();
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 20_000);
});

describe("bodies over the admin limit", () => {
  const big = JSON.stringify({ url: sim?.url ?? "http://127.0.0.1:1", pad: "x".repeat(2 * ADMIN_LIMIT) });

  it("get 413 body_too_large on every admin route, with or without a Content-Length", async () => {
    const targets: [string, string][] = [
      ["POST", "/workers"],
      ["POST", "/add_worker"],
      ["PUT", `/workers/${encodeURIComponent(sim.url)}`],
      ["POST", "/update_weights_from_disk"],
      ["POST", "/refit/begin"],
      ["POST", "/get_weights_checksum"],
    ];
    for (const [method, path] of targets) {
      const declared = await jsonRequest(`${router.url}${path}`, { method, body: big, headers: { "content-type": "application/json" } });
      expect(declared.status, `${method} ${path}`).toBe(413);
      expect(routerErrorCode(path, declared.body)).toBe("body_too_large");

      // Chunked: the size is only known while reading.
      const chunked = parseAnswer(
        (await raw(`${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`)).text,
      );
      expect(chunked.status, `${method} ${path} chunked`).toBe(413);
      expect(routerErrorCode(path, chunked.body)).toBe("body_too_large");
    }
    // Nothing was registered or changed.
    expect((await jsonRequest(`${router.url}/workers`)).body.workers).toHaveLength(1);
    await stillServes();
  });
});

describe("malformed HTTP", () => {
  it.each([
    ["binary garbage", Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a])],
    ["a word and blank lines", "HELLO\r\n\r\n"],
    ["a header line without a colon", "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
    ["an unknown HTTP version", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n"],
    ["Content-Length and Transfer-Encoding together (smuggling)", "POST /workers HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ])("%s: 400 and the connection is closed; others are still served", async (_name, bytes) => {
    const answer = await raw(bytes);
    expect(answer.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer.closed).toBe(true);
    await stillServes();
  });

  it("an HTTP/2 preface followed by garbage is dropped without hanging", async () => {
    const answer = await raw(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from("not an http2 frame at all")]), 3000);
    expect(answer.closed).toBe(true);
    await stillServes();
  });

  it("a header section over 16 KiB gets 431 and the connection is closed", async () => {
    const answer = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(answer.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(answer.closed).toBe(true);
    await stillServes();
  });

  it("absolute-form and asterisk request targets get a 400 JSON error, and the connection stays usable", async () => {
    for (const target of ["http://x/", "http://x/health", "http://x/v1/images/generations", "*"]) {
      const answer = await raw(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const first = parseAnswer(answer.text);
      expect(first.status, target).toBe(400);
      expect(first.headers).toMatch(/\r\ncontent-type: application\/json/i);
      expect(first.body).toMatchObject({ code: "invalid_request", error: expect.stringContaining("request target") });
      // The pipelined request behind it is answered on the same connection.
      const second = answer.text.slice(answer.text.indexOf("HTTP/1.1", 10));
      expect(parseAnswer(second).status, `${target} then GET /health`).toBe(200);
    }
    // Never forwarded to a worker.
    const s = (await jsonRequest(`${sim.url}/sim/stats`)).body;
    expect(s.requests_by_route["GET /"] ?? 0).toBe(0);
    expect(s.requests_by_route["not_found"] ?? 0).toBe(0);
  });
});

describe("admin bodies that are not JSON objects", () => {
  it.each([
    ["not JSON", "this is not json"],
    ["truncated JSON", '{"url": "http://127.0.0.1:1'],
    ["a JSON array", '["http://127.0.0.1:1"]'],
    ["JSON null", "null"],
    ["a JSON number", "42"],
    ["a JSON string", '"http://127.0.0.1:1"'],
  ])("%s: 400 invalid_json on every admin route that takes JSON", async (_name, body) => {
    const targets: [string, string][] = [
      ["POST", "/workers"],
      ["POST", "/add_worker"],
      ["POST", "/remove_worker"],
      ["PUT", `/workers/${encodeURIComponent(sim.url)}`],
      ["POST", "/update_weights_from_disk"],
      ["POST", "/refit/begin"],
      ["POST", "/refit/commit"],
      ["POST", "/get_weights_checksum"],
    ];
    for (const [method, path] of targets) {
      const r = await jsonRequest(`${router.url}${path}`, { method, body, headers: { "content-type": "application/json" } });
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(routerErrorCode(path, r.body), `${method} ${path}: ${JSON.stringify(r.body)}`).toBe("invalid_json");
    }
    expect((await jsonRequest(`${router.url}/workers`)).body.workers).toHaveLength(1);
  });
});
