/**
 * A user of the original (Python) router points the same start scripts and
 * clients at this one: its CLI spellings, its `{"error": "<message>"}` bodies
 * and its statuses must hold, over real sockets against the built CLI.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, routerCli, runRouterCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the CLI with `args` on a free port and waits for /health to answer: no log line is needed (a quiet level prints none). */
async function startQuiet(args: string[]): Promise<{ url: string; proc: ChildProcess; output: () => string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [routerCli, "--host", "127.0.0.1", "--port", String(port), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  proc.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`router exited with ${proc.exitCode}: ${out}`);
      return (await fetch(`${url}/health`).catch(() => null)) !== null;
    },
    10_000,
    `router on ${port}`,
  );
  return { url, proc, output: () => out };
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  await once(proc, "exit");
}

describe("the original's command line", () => {
  let sim: SimProcess;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    sim = await startSimProcess();
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map(stopProc));
  });
  afterAll(async () => {
    await sim.stop();
  });

  for (const level of ["warning", "CRITICAL", "Error", "trace"]) {
    it(`--log-level ${level} (uvicorn's spelling) serves, at that level`, async () => {
      const r = await startQuiet(["--log-level", level, "--worker-urls", sim.url]);
      procs.push(r.proc);
      const answer = await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage });
      expect(answer.status).toBe(200);
      expect(answer.body.data[0].b64_json.length).toBeGreaterThan(100);
      await stopProc(r.proc);
      // warning and critical print no info line ("router listening"); trace does.
      const infoLines = r.output().split("\n").filter((l) => l.includes('"level":30'));
      if (level === "trace") expect(infoLines.length).toBeGreaterThan(0);
      else expect(infoLines, r.output()).toEqual([]);
    });
  }

  it("argparse spellings: unique prefixes, Python numbers, --worker-urls with no URL, --timeout inf", async () => {
    const r = await startRouterProcess(["--rout", "round-robin", "--max-conn", "1_0", "--timeout", "inf", "--health-check-interval", " 5 ", "--worker-urls"]);
    try {
      const listening = r.logs.find((l) => l.msg === "router listening")!;
      expect(listening.policy).toBe("round-robin");
      expect((await jsonRequest(`${r.url}/workers`)).body.workers).toEqual([]);
    } finally {
      await r.stop();
    }
  });

  it("refuses what the original refuses, naming the flag: an ambiguous prefix, a non-integer port, an unknown level", async () => {
    const ambiguous = await runRouterCli(["--health-check", "3"]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/ambiguous option: --health-check could match --health-check-interval/);
    const port = await runRouterCli(["--port", "80.5"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/--port must be an integer/);
    const level = await runRouterCli(["--log-level", "loud"]);
    expect(level.code).toBe(2);
    expect(level.stderr).toMatch(/--log-level must be one of critical, .*warning/);
  });
});

describe("the original's error bodies and statuses", () => {
  let empty: RouterProcess;
  beforeAll(async () => {
    empty = await startRouterProcess();
  });
  afterAll(async () => {
    await empty.stop();
  });

  it("an empty pool: images 503 'No workers registered', videos 400 'video-capable', both {error: string, code} with X-Router-Error-Code", async () => {
    const image = await jsonRequest(`${empty.url}/v1/images/generations`, { method: "POST", json: smallImage });
    expect(image.status).toBe(503);
    expect(image.body).toEqual({ error: "No workers registered in the pool", code: "no_healthy_workers" });
    expect(image.headers.get("x-router-error-code")).toBe("no_healthy_workers");
    expect(image.headers.get("retry-after")).toBe("1");
    const video = await jsonRequest(`${empty.url}/v1/videos`, { method: "POST", json: { prompt: "a river" } });
    expect(video.status).toBe(400);
    expect(typeof video.body.error).toBe("string");
    expect(video.body.error).toContain("video-capable");
    expect(video.body.code).toBe("no_video_workers");
    expect(video.headers.get("x-router-error-code")).toBe("no_video_workers");
  });

  it("a memory release or refit in an empty pool is 503 with Retry-After, like every 503", async () => {
    for (const path of ["/release_memory_occupation", "/update_weights_from_disk"]) {
      const r = await jsonRequest(`${empty.url}${path}`, { method: "POST", json: { model_path: "/ckpt/step-1" } });
      expect(r.status, path).toBe(503);
      expect(r.headers.get("x-router-error-code"), path).toBe("no_healthy_workers");
      expect(r.headers.get("retry-after"), path).toBe("1");
    }
  });

  it("a blocked worker host is a 400 whose error string contains 'blocked' (the original's clients test for it)", async () => {
    for (const url of ["http://169.254.169.254:80", "http://[fe80::1]:8000"]) {
      const r = await jsonRequest(`${empty.url}/workers`, { method: "POST", json: { url } });
      expect(r.status).toBe(400);
      expect(typeof r.body.error).toBe("string");
      expect(r.body.error).toContain("blocked");
      expect(r.body.code).toBe("invalid_worker_url");
    }
    const missing = await jsonRequest(`${empty.url}/workers`, { method: "POST", json: {} });
    expect(missing.body.error).toMatch(/^worker_url is required/);
    const unknown = await jsonRequest(`${empty.url}/workers/${encodeURIComponent("http://127.0.0.1:1")}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/^Worker not found/);
  });

  it("routes that are the router's own keep OpenAI's error object", async () => {
    const r = await jsonRequest(`${empty.url}/refit/commit`, { method: "POST", json: {} });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: "no_refit_in_progress", type: "conflict_error" });
    expect(r.headers.get("x-router-error-code")).toBe("no_refit_in_progress");
  });

  it("a request whose every attempted worker refused is 502 'Worker request failed', not 503", async () => {
    const a = await startSimProcess();
    const b = await startSimProcess();
    const r = await startRouterProcess(["--worker-urls", a.url, b.url, "--queue-timeout", "1"]);
    try {
      // Both registered and probed (their model cards read) before they die.
      await waitFor(async () => (await jsonRequest(`${r.url}/workers`)).body.workers.every((w: any) => w.state === "healthy" && w.task_type === "T2I"), 10_000, "workers probed");
      a.kill("SIGKILL");
      b.kill("SIGKILL");
      await Promise.all([a.exited, b.exited]);
      const failed = await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage, headers: { "x-request-id": "req-502" } });
      expect(failed.status, JSON.stringify(failed.body)).toBe(502);
      expect(typeof failed.body.error).toBe("string");
      expect(failed.body.error).toMatch(/^Worker request failed: /);
      expect(failed.body.code).toBe("upstream_unreachable");
      expect(failed.headers.get("x-request-id")).toBe("req-502");
      // The access log line says which request it was and what the router answered.
      const line = await r.waitForLog((l) => l.msg === "request" && l.requestId === "req-502");
      expect(line).toMatchObject({ status: 502, code: "upstream_unreachable", path: "/v1/images/generations" });
      // Now both are out of rotation before anything is tried: that is the 503 case.
      const after = await jsonRequest(`${r.url}/v1/images/generations`, { method: "POST", json: smallImage });
      expect(after.status).toBe(503);
      expect(typeof after.body.error).toBe("string");
    } finally {
      await r.stop();
    }
  });
});

describe("logs a person can read", () => {
  it("--log-format pretty writes readable lines (no colour into a pipe); the default into a pipe is JSON", async () => {
    const pretty = await startQuiet(["--log-format", "pretty"]);
    await jsonRequest(`${pretty.url}/nothing/here`, { headers: { "x-request-id": "pretty-1" } });
    await stopProc(pretty.proc);
    const lines = pretty.output().split("\n").filter((l) => l.trim() !== "");
    expect(lines.some((l) => /INFO.*router listening/.test(l)), pretty.output()).toBe(true);
    expect(lines.some((l) => l.startsWith("{"))).toBe(false);
    expect(pretty.output()).not.toMatch(/\x1b\[/);

    const json = await startQuiet([]);
    await stopProc(json.proc);
    const first = json.output().split("\n").find((l) => l.includes("router listening"))!;
    expect(JSON.parse(first)).toMatchObject({ msg: "router listening", level: 30 });
  });

  it.skipIf(spawnSync("script", ["--version"]).error !== undefined)("on a terminal the default is pretty and coloured (run under script(1) for a pty)", async () => {
    const port = await freePort();
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(routerCli)} --host 127.0.0.1 --port ${port}`;
    const proc = spawn("script", ["-qfec", cmd, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    try {
      await waitFor(() => out.includes("router listening"), 10_000, "pretty listening line");
      expect(out).toMatch(/\x1b\[\d+m/);
      expect(out).not.toMatch(/^\{"level"/m);
    } finally {
      proc.kill("SIGTERM");
      await once(proc, "exit");
      // script(1) forwards nothing on SIGTERM to its child everywhere: make sure the router is gone too.
      spawnSync("pkill", ["-f", `--port ${port}`]);
    }
  });
});
