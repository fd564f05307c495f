// Graceful shutdown as a client and an operator see it: SIGTERM lets what is
// in flight finish, refuses new work, answers what waits in the queue, stops
// launched workers and exits 0 within --shutdown-timeout.
import { once } from "node:events";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isAlive, jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE = "/v1/images/generations";
const small = { prompt: "shutdown", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
/** A 64x64, 2-step image takes ~2.06 ms at speed 1. */
const speedFor = (ms: number) => 2.06 / ms;

let pool: SimProcess[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
const tmp = mkdtempSync(join(tmpdir(), "sgl-shutdown-"));

beforeAll(async () => {
  pool = await Promise.all([startSimProcess(["--scheduler-concurrency", "8"]), startSimProcess(["--scheduler-concurrency", "8"])]);
}, 20_000);
afterAll(async () => {
  await Promise.all(pool.map((s) => s.stop()));
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => undefined)));
  await waitFor(async () => (await Promise.all(pool.map(stats))).every((s) => s.in_flight === 0), 10_000, "workers idle");
  await Promise.all(pool.map((s) => jsonRequest(`${s.url}/sim/reset_stats`, { method: "POST" })));
});

async function stats(sim: SimProcess): Promise<any> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}

async function setSpeed(sims: SimProcess[], ms: number): Promise<void> {
  await Promise.all(sims.map((s) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { speed: speedFor(ms) } })));
}

async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(["--health-check-interval", "3600", ...args]);
  cleanups.push(() => r.stop(2000));
  return r;
}

async function waitHealthy(r: RouterProcess, n: number): Promise<any[]> {
  return waitFor(async () => {
    const ws = (await jsonRequest(`${r.url}/workers`)).body.workers as any[];
    return ws.length === n && ws.every((w) => w.state === "healthy") ? ws : undefined;
  }, 20_000, `${n} healthy workers`);
}

interface Answer {
  status: number;
  body: any;
  bytes: number;
  endedMs: number;
  error?: string;
}

/** A request on its own new connection (no keep-alive pool), so "refused" is observable. */
function freshRequest(url: string, path: string, body: unknown): Promise<Answer> {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = httpRequest(`${url}${path}`, { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": data.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: any = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, bytes: Buffer.concat(chunks).length, endedMs: Date.now() });
      });
      res.on("error", (err) => resolve({ status: 0, body: null, bytes: 0, endedMs: Date.now(), error: (err as NodeJS.ErrnoException).code ?? err.message }));
    });
    req.on("error", (err) => resolve({ status: 0, body: null, bytes: 0, endedMs: Date.now(), error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(data);
  });
}

async function gauge(r: RouterProcess, name: string): Promise<number> {
  const text = await (await fetch(`${r.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

/** SIGTERM; resolves with the exit code and how long the router took to exit. */
async function sigterm(r: RouterProcess): Promise<{ code: number | null; signal: string | null; ms: number; sentAtMs: number }> {
  const exited = once(r.proc, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const sentAtMs = Date.now();
  r.proc.kill("SIGTERM");
  const [code, signal] = await exited;
  return { code, signal, ms: Date.now() - sentAtMs, sentAtMs };
}

/** Pids of the processes whose parent is `ppid` and whose command line contains `needle`. */
function childrenOf(ppid: number, needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent !== ppid) continue;
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

describe("SIGTERM under load", () => {
  it("lets in-flight requests finish with 200, refuses new ones, and exits 0 within --shutdown-timeout", async () => {
    await setSpeed(pool, 1000);
    // least-request sends all six to the workers at once (earliest-finish would queue four in the router: see below).
    const r = await router(["--routing-algorithm", "least-request", "--shutdown-timeout", "5", "--worker-urls", ...pool.map((s) => s.url)]);
    await waitHealthy(r, 2);

    const inFlight = Array.from({ length: 6 }, (_, i) => freshRequest(r.url, IMAGE, { ...small, seed: i }));
    await waitFor(async () => (await Promise.all(pool.map(stats))).reduce((n, s) => n + s.in_flight, 0) === 6, 3000, "6 requests on the workers");

    const stopping = sigterm(r);
    await r.waitForLog((l) => l.msg === "shutting down", 2000);
    // New work after SIGTERM: refused at connect (or reset, when the connect
    // raced the listening socket's close and sat in its backlog), or a 503
    // shutting_down. Either way the request never reaches a worker.
    const late = await Promise.all(Array.from({ length: 3 }, () => freshRequest(r.url, IMAGE, small)));
    for (const a of late) {
      if (a.status === 0) expect(["ECONNREFUSED", "ECONNRESET"], JSON.stringify(late)).toContain(a.error);
      else {
        expect(a.status).toBe(503);
        expect(a.body.code).toBe("shutting_down");
      }
    }

    const answers = await Promise.all(inFlight);
    const exit = await stopping;
    for (const a of answers) {
      expect(a.status, a.error).toBe(200);
      expect(a.body.data[0].b64_json.length).toBeGreaterThan(100);
    }
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(5000);
    // It waited for them: nothing ended after the router was gone.
    const exitedAtMs = exit.sentAtMs + exit.ms;
    for (const a of answers) expect(a.endedMs).toBeLessThanOrEqual(exitedAtMs + 50);
    // Late requests never reached a worker: 6 generations in total.
    const total = (await Promise.all(pool.map(stats))).reduce((n, s) => n + (s.requests_by_route[`POST ${IMAGE}`] ?? 0), 0);
    expect(total).toBe(6);
  });

  it("does not wait past --shutdown-timeout for requests that take longer", async () => {
    await setSpeed(pool, 6000);
    const r = await router(["--shutdown-timeout", "1", "--worker-urls", ...pool.map((s) => s.url)]);
    await waitHealthy(r, 2);
    const slow = freshRequest(r.url, IMAGE, small);
    await waitFor(async () => (await Promise.all(pool.map(stats))).some((s) => s.in_flight === 1), 3000, "slow request on a worker");
    const exit = await sigterm(r);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeGreaterThanOrEqual(900);
    expect(exit.ms).toBeLessThan(3000);
    // The cut request ends (no hang) and is not a 200.
    const a = await slow;
    expect(a.status).not.toBe(200);
  });

  it.each([
    ["least-request with --max-concurrency-per-worker 1", ["--routing-algorithm", "least-request", "--max-concurrency-per-worker", "1"]],
    ["earliest-finish (the default: one request per worker, the rest in the router)", []],
  ])("%s: answers queued requests 503 shutting_down at once, finishes the running one, and exits 0", async (_name, flags) => {
    const [sim] = pool;
    await setSpeed([sim!], 1500);
    const r = await router([...flags, "--shutdown-timeout", "10", "--worker-urls", sim!.url]);
    await waitHealthy(r, 1);
    const running = freshRequest(r.url, IMAGE, { ...small, seed: 1 });
    await waitFor(async () => (await stats(sim!)).in_flight === 1, 3000, "first request on the worker");
    const queued = [2, 3, 4].map((seed) => freshRequest(r.url, IMAGE, { ...small, seed }));
    await waitFor(async () => (await gauge(r, "sgl_router_queued_requests")) === 3, 3000, "3 requests queued");

    const stopping = sigterm(r);
    const sentAt = Date.now();
    const answers = await Promise.all(queued);
    for (const a of answers) {
      expect(a.status, a.error).toBe(503);
      expect(a.body.code).toBe("shutting_down");
      expect(a.endedMs - sentAt).toBeLessThan(1000);
    }
    expect((await running).status).toBe(200);
    expect(await stopping).toMatchObject({ code: 0, signal: null });
    // The queued requests never reached the worker.
    expect((await stats(sim!)).requests_by_route[`POST ${IMAGE}`]).toBe(1);
  });
});

describe("SIGTERM with a launcher config", () => {
  it("stops the launched workers too", async () => {
    const base = 22000 + 2 * Math.floor(Math.random() * 2000);
    const file = join(tmp, "launcher.yaml");
    writeFileSync(
      file,
      ["launcher:", "  backend: sim", "  model: Qwen/Qwen-Image", "  num_workers: 2", "  worker_host: 127.0.0.1", `  worker_base_port: ${base}`, "  wait_timeout: 30", ""].join("\n"),
    );
    const r = await router(["--launcher-config", file]);
    const ws = await waitHealthy(r, 2);
    expect(ws.every((w) => w.managed === true)).toBe(true);
    const pids = childrenOf(r.pid, "sim/cli.js");
    expect(pids).toHaveLength(2);
    expect(pids.every(isAlive)).toBe(true);

    const exit = await sigterm(r);
    expect(exit).toMatchObject({ code: 0, signal: null });
    await waitFor(() => pids.every((p) => !isAlive(p)), 5000, "launched workers gone");
    // Their ports are free again.
    for (const w of ws) {
      const res = await fetch(`${w.url}/health`).catch((err: Error) => err);
      expect(res).toBeInstanceOf(Error);
    }
  });
});
