// Graceful shutdown as a client and an operator see it: SIGTERM lets what is
// in flight finish, refuses new work, answers what waits in the queue, stops
// launched workers and exits 0 within --shutdown-timeout.
import { once } from "node:events";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { isAlive, jsonRequest, routerCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
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
    // 2.5 s per request: all six are still running when SIGTERM and the late
    // requests come, however slowly a loaded machine gets them there.
    await setSpeed(pool, 2500);
    // least-request sends all six to the workers at once (earliest-finish would queue four in the router: see below).
    const r = await router(["--routing-algorithm", "least-request", "--shutdown-timeout", "5", "--worker-urls", ...pool.map((s) => s.url)]);
    await waitHealthy(r, 2);

    const inFlight = Array.from({ length: 6 }, (_, i) => freshRequest(r.url, IMAGE, { ...small, seed: i }));
    await waitFor(async () => (await Promise.all(pool.map(stats))).reduce((n, s) => n + s.in_flight, 0) === 6, 10_000, "6 requests on the workers");

    const stopping = sigterm(r);
    await r.waitForLog((l) => l.msg === "shutting down");
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
    await waitFor(async () => (await Promise.all(pool.map(stats))).some((s) => s.in_flight === 1), 10_000, "slow request on a worker");
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
    // 4 s: the three others are queued behind it before it ends, however slowly a loaded machine polls.
    await setSpeed([sim!], 4000);
    const r = await router([...flags, "--shutdown-timeout", "10", "--worker-urls", sim!.url]);
    await waitHealthy(r, 1);
    const running = freshRequest(r.url, IMAGE, { ...small, seed: 1 });
    await waitFor(async () => (await stats(sim!)).in_flight === 1, 10_000, "first request on the worker");
    const queued = [2, 3, 4].map((seed) => freshRequest(r.url, IMAGE, { ...small, seed }));
    await waitFor(async () => (await gauge(r, "sgl_router_queued_requests")) === 3, 10_000, "3 requests queued");

    const stopping = sigterm(r);
    const answers = await Promise.all(queued);
    const ran = await running;
    for (const a of answers) {
      expect(a.status, a.error).toBe(503);
      expect(a.body.code).toBe("shutting_down");
      // At once: before the running request (4 s) ended, read against that
      // answer rather than a 1 s bound a loaded machine can miss.
      expect(a.endedMs).toBeLessThan(ran.endedMs);
    }
    expect(ran.status).toBe(200);
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
    await waitFor(() => pids.every((p) => !isAlive(p)), 15_000, "launched workers gone");
    // Their ports are free again.
    for (const w of ws) {
      const res = await fetch(`${w.url}/health`).catch((err: Error) => err);
      expect(res).toBeInstanceOf(Error);
    }
  });
});

/**
 * Zero-drop shutdown: keep-alive clients in tight loops (some pausing between
 * requests, so their connections sit idle at random moments) while the
 * router gets SIGTERM, SIGINT, or SIGINT to its whole process group as a
 * terminal's Ctrl-C sends it. Every request must complete (200) or get 503
 * shutting_down with Connection: close; a new connection after that may be
 * refused (nothing was sent). A reset or a cut answer is a dropped request.
 */
describe("zero-drop shutdown under keep-alive load", () => {
  interface Tally {
    sent: number;
    ok: number;
    shuttingDown: number;
    refused: number;
    dropped: string[];
    closeHeaderMissing: number;
  }

  async function loop(url: string, agent: InstanceType<typeof Agent>, pauseMs: number, tally: Tally): Promise<void> {
    const body = JSON.stringify({ prompt: "drain", size: "64x64", num_inference_steps: 2, response_format: "b64_json" });
    for (;;) {
      tally.sent++;
      try {
        const res = await request(`${url}${IMAGE}`, { method: "POST", dispatcher: agent, headers: { "content-type": "application/json" }, body });
        const text = await res.body.text();
        if (res.statusCode === 200 && JSON.parse(text).data?.length === 1) tally.ok++;
        else if (res.statusCode === 503 && JSON.parse(text).code === "shutting_down") {
          tally.shuttingDown++;
          if (res.headers["connection"] !== "close") {
            tally.closeHeaderMissing++;
            if (tally.closeHeaderMissing === 1) console.log("503 headers", JSON.stringify(res.headers));
          }
          return; // a client that honours the answer stops sending here
        } else tally.dropped.push(`status ${res.statusCode}: ${text.slice(0, 200)}`);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        const cause = ((err as { cause?: NodeJS.ErrnoException }).cause?.code) ?? "";
        if (code === "ECONNREFUSED" || cause === "ECONNREFUSED") tally.refused++;
        else tally.dropped.push(`${code} ${cause} ${(err as Error).message}`);
        return;
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, Math.random() * pauseMs));
    }
  }

  /** The router as a process-group leader (as a shell starts a foreground job), with two launched sim workers. */
  async function groupLeaderRouter(): Promise<{ url: string; proc: ChildProcess }> {
    const base = 24000 + 2 * Math.floor(Math.random() * 2000);
    const file = join(tmp, `zero-drop-${base}.yaml`);
    writeFileSync(
      file,
      ["launcher:", "  backend: sim", "  model: Qwen/Qwen-Image", "  num_workers: 2", "  worker_host: 127.0.0.1", `  worker_base_port: ${base}`, '  worker_extra_args: "--speed 0.1"', "  wait_timeout: 30", ""].join("\n"),
    );
    const proc = spawn(process.execPath, [routerCli, "--host", "127.0.0.1", "--port", "0", "--access-log-exclude-prefixes", "/", "--health-check-interval", "3600", "--launcher-config", file], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    cleanups.push(async () => {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(-proc.pid!, "SIGKILL");
    });
    // Read (and keep draining) its log: a full pipe would block the router.
    let out = "";
    let port: number | undefined;
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => {
      if (port !== undefined) return;
      out += c;
      const m = /"port":(\d+)[^\n]*"msg":"router listening"/.exec(out);
      if (m) port = Number(m[1]);
    });
    proc.stderr!.resume();
    await waitFor(() => port, 15_000, "router listening");
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => {
      const ws = (await jsonRequest(`${url}/workers`).catch(() => ({ body: { workers: [] } }))).body.workers as any[];
      return ws.length === 2 && ws.every((w) => w.state === "healthy");
    }, 30_000, "two launched workers healthy");
    return { url, proc };
  }

  for (const signal of ["SIGTERM", "SIGINT", "group SIGINT"] as const) {
    it(`${signal}: 8 keep-alive loops, repeated 3 times: 0 dropped requests`, async () => {
      const totals: Tally = { sent: 0, ok: 0, shuttingDown: 0, refused: 0, dropped: [], closeHeaderMissing: 0 };
      for (let round = 0; round < 3; round++) {
        const { url, proc } = await groupLeaderRouter();
        const agent = new Agent({ connections: 8, pipelining: 1, keepAliveTimeout: 60_000 });
        const tally: Tally = { sent: 0, ok: 0, shuttingDown: 0, refused: 0, dropped: [], closeHeaderMissing: 0 };
        const loops = Array.from({ length: 8 }, (_, i) => loop(url, agent, i % 2 === 0 ? 0 : 30, tally));
        await waitFor(() => tally.ok >= 40, 20_000, "load running");
        const exited = once(proc, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
        if (signal === "group SIGINT") process.kill(-proc.pid!, "SIGINT");
        else proc.kill(signal);
        await Promise.all(loops);
        const [code] = await exited;
        await agent.close();
        expect(code, `exit code after ${signal}`).toBe(0);
        for (const k of ["sent", "ok", "shuttingDown", "refused", "closeHeaderMissing"] as const) totals[k] += tally[k];
        totals.dropped.push(...tally.dropped);
      }
      // Every request sent has an outcome the client can act on.
      expect(totals.dropped).toEqual([]);
      expect(totals.closeHeaderMissing).toBe(0);
      expect(totals.ok + totals.shuttingDown + totals.refused).toBe(totals.sent);
      expect(totals.ok).toBeGreaterThanOrEqual(120);
      console.log(`zero-drop ${signal}: ${JSON.stringify({ ...totals, dropped: totals.dropped.length })}`);
    }, 120_000);
  }
});
