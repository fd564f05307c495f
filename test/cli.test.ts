// The router's command line, run as a user runs it: flags, --help, the
// launcher (sim backend) and Ctrl-C.
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isAlive, jsonRequest, runRouterCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { repoRoot, startSimProcess, type SimProcess } from "./helpers/sim.js";

const run = promisify(execFile);


/** Pids of processes whose command line mentions the sim CLI and `--port <port>`. */
async function simPidsOnPort(port: number): Promise<number[]> {
  try {
    const { stdout } = await run("pgrep", ["-f", `sim/cli\\.js.*--port ${port}( |$)`]);
    return stdout.split("\n").filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

let tmp: string;
const routers: RouterProcess[] = [];
const sims: SimProcess[] = [];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "router-cli-test-"));
});

afterEach(async () => {
  // A failed assertion must not leave processes running (SIGTERM also stops managed workers).
  await Promise.all(routers.splice(0).map((r) => r.stop()));
});

afterAll(async () => {
  await Promise.all(sims.map((s) => s.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

function launcherYaml(name: string, numWorkers: number): { path: string; basePort: number } {
  // Even base in a range away from the defaults; each worker uses base+2i (and +1).
  const basePort = 20000 + 2 * Math.floor(Math.random() * 4000);
  const path = join(tmp, name);
  writeFileSync(
    path,
    [
      "launcher:",
      "  backend: sim",
      "  model: Qwen/Qwen-Image",
      `  num_workers: ${numWorkers}`,
      "  worker_host: 127.0.0.1",
      `  worker_base_port: ${basePort}`,
      "  wait_timeout: 30",
      "",
    ].join("\n"),
  );
  return { path, basePort };
}

/** The launched workers' pids, from the router's "launched worker" log lines. */
function launchedPids(router: RouterProcess): { url: string; pid: number }[] {
  return router.logs.filter((l) => l.msg === "launched worker").map((l) => ({ url: String(l.worker), pid: Number(l.pid) }));
}

async function sigint(router: RouterProcess): Promise<number | null> {
  const exited = once(router.proc, "exit") as Promise<[number | null, string | null]>;
  router.proc.kill("SIGINT");
  const [code] = await exited;
  return code;
}

describe("flags", () => {
  it("--help lists every flag of the original and exits 0", async () => {
    const r = await runRouterCli(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of [
      "--host",
      "--port",
      "--worker-urls",
      "--max-connections",
      "--timeout",
      "--health-check-interval",
      "--health-check-failure-threshold",
      "--routing-algorithm",
      "--verbose",
      "--log-level",
      "--launcher-config",
      "--access-log-exclude-prefixes",
    ]) {
      expect(r.stdout, flag).toMatch(new RegExp(`(^|\\s)${flag}[ ,<]`, "m"));
    }
  });

  it("a bad --routing-algorithm exits non-zero naming the choices", async () => {
    const r = await runRouterCli(["--port", "0", "--routing-algorithm", "fastest"]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    for (const choice of ["least-request", "round-robin", "random"]) expect(r.stderr).toContain(choice);
    expect(r.stdout).not.toContain("router listening");
  });

  it.each([["--uvicorn-access-log-exclude-prefixes"], ["--access-log-exclude-prefixes"]])("%s /health keeps /health out of the access log", async (flag) => {
    const router = await startRouterProcess([flag, "/health"]);
    routers.push(router);
    for (let i = 0; i < 3; i++) expect((await jsonRequest(`${router.url}/health`)).status).toBe(503);
    expect((await jsonRequest(`${router.url}/workers`)).status).toBe(200);
    await router.waitForLog((l) => l.msg === "request" && l.path === "/workers");
    const logged = router.logs.filter((l) => l.msg === "request").map((l) => l.path);
    expect(logged).not.toContain("/health");
  });
});

describe("--launcher-config with the sim backend", () => {
  it("starts the workers, registers them (managed), serves, and leaves nothing behind on Ctrl-C", async () => {
    const { path } = launcherYaml("two.yaml", 2);
    const router = await startRouterProcess(["--launcher-config", path]);
    routers.push(router);
    const workers = await waitFor(async () => {
      const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
      return ws.length === 2 && ws.every((w) => !w.is_dead && w.video_support === false) ? ws : undefined;
    }, 20_000, "2 launched workers registered");
    for (const w of workers) expect(w.managed).toBe(true);

    const gen = await jsonRequest(`${router.url}/v1/images/generations`, {
      method: "POST",
      json: { prompt: "launched", size: "64x64", num_inference_steps: 2, response_format: "b64_json" },
    });
    expect(gen.status).toBe(200);
    expect(workers.map((w) => w.url)).toContain(gen.headers.get("x-sim-worker"));

    const launched = launchedPids(router);
    expect(launched.map((l) => l.url).sort()).toEqual(workers.map((w) => w.url).sort());
    const ports = launched.map((l) => Number(new URL(l.url).port));
    const byPgrep = (await Promise.all(ports.map(simPidsOnPort))).flat();
    for (const { pid } of launched) {
      expect(isAlive(pid)).toBe(true);
      expect(byPgrep).toContain(pid);
    }

    expect(await sigint(router)).toBe(0);
    await waitFor(() => launched.every(({ pid }) => !isAlive(pid)), 10_000, "launched workers gone");
    expect((await Promise.all(ports.map(simPidsOnPort))).flat()).toEqual([]);
  }, 30_000);

  it("examples/sim_launcher.yaml (npm start): four image workers and a video worker; the README's video example works; Ctrl-C leaves nothing", async () => {
    const router = await startRouterProcess(["--launcher-config", join(repoRoot, "examples", "sim_launcher.yaml")]);
    routers.push(router);
    const workers = await waitFor(async () => {
      const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
      return ws.length === 5 && ws.every((w) => !w.is_dead && w.video_support !== null) ? ws : undefined;
    }, 30_000, "5 launched workers registered and probed");
    expect(workers.map((w) => [w.task_type, w.video_support, w.models]).sort()).toEqual([
      ...Array.from({ length: 4 }, () => ["T2I", false, ["Qwen/Qwen-Image"]]),
      ["T2V", true, ["Wan-AI/Wan2.2-T2V-A14B-Diffusers"]],
    ]);

    // The README's video example, as written: create, poll until completed, download.
    const created = await jsonRequest(`${router.url}/v1/videos`, {
      method: "POST",
      json: { model: "Wan-AI/Wan2.2-T2V-A14B-Diffusers", prompt: "a flowing river" },
    });
    expect(created.status).toBe(200);
    const id = created.body.id as string;
    await waitFor(async () => (await jsonRequest(`${router.url}/v1/videos/${id}`)).body.status === "completed" || undefined, 30_000, "video completed");
    const content = await fetch(`${router.url}/v1/videos/${id}/content`);
    expect(content.status).toBe(200);
    expect(content.headers.get("content-type")).toBe("video/mp4");
    expect(Buffer.from(await content.arrayBuffer()).toString("latin1", 4, 8)).toBe("ftyp");

    const launched = launchedPids(router);
    expect(launched).toHaveLength(5);
    const ports = launched.map((l) => Number(new URL(l.url).port));
    expect(await sigint(router)).toBe(0);
    await waitFor(() => launched.every(({ pid }) => !isAlive(pid)), 10_000, "launched workers gone");
    expect((await Promise.all(ports.map(simPidsOnPort))).flat()).toEqual([]);
  }, 60_000);

  it("a launcher file whose groups' worker ports overlap stops the start, naming the file and key", async () => {
    const path = join(tmp, "overlap.yaml");
    writeFileSync(
      path,
      ["launcher:", "  - {backend: sim, model: Qwen/Qwen-Image, num_workers: 4, worker_base_port: 20000}", "  - {backend: sim, model: Wan-AI/Wan2.2-T2V-A14B-Diffusers, worker_base_port: 20006}", ""].join("\n"),
    );
    const r = await runRouterCli(["--port", "0", "--launcher-config", path]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain(`launcher[1].worker_base_port in ${path}: the ports of its workers, 20006-20007`);
    expect(r.stdout).not.toContain("router listening");
    expect(r.stdout).not.toContain("launched worker");
  });

  it("mixes --worker-urls with a launcher config (3 workers); Ctrl-C stops only the managed ones", async () => {
    const external = await startSimProcess([]);
    sims.push(external);
    const { path } = launcherYaml("mixed.yaml", 2);
    const router = await startRouterProcess(["--worker-urls", external.url, "--launcher-config", path]);
    routers.push(router);
    const workers = await waitFor(async () => {
      const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
      return ws.length === 3 && ws.every((w) => !w.is_dead) ? ws : undefined;
    }, 20_000, "3 workers registered");
    expect(workers.filter((w) => w.managed).length).toBe(2);
    expect(workers.find((w) => w.url === external.url)?.managed).toBe(false);

    // Until all 3 served (at most 60 requests): how many sequential requests
    // that takes depends on speeds measured on a shared machine; a router
    // that never uses the launched (or the external) workers still fails.
    const makers = new Set<string>();
    for (let i = 0; makers.size < 3; i++) {
      expect(i, `answers only from ${[...makers].join(", ")}`).toBeLessThan(60);
      const r = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: `mix ${i}`, size: "64x64", num_inference_steps: 2 } });
      expect(r.status).toBe(200);
      makers.add(r.headers.get("x-sim-worker")!);
    }
    expect(makers).toEqual(new Set(workers.map((w) => w.url)));

    const launched = launchedPids(router);
    expect(launched).toHaveLength(2);
    expect(await sigint(router)).toBe(0);
    await waitFor(() => launched.every(({ pid }) => !isAlive(pid)), 10_000, "launched workers gone");
    // The external worker is not the router's to stop.
    expect(isAlive(external.pid)).toBe(true);
    expect((await jsonRequest(`${external.url}/health`)).status).toBe(200);
  }, 30_000);
});

describe("the flag table (src/config/flags.ts)", () => {
  it("the README's flag table is exactly the one the table gives (defaults from the router's defaults)", async () => {
    const { readmeFlagTable } = await import("../src/config/flags.js");
    const { readFileSync } = await import("node:fs");
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const start = readme.indexOf("| flag | default | meaning |");
    const end = readme.indexOf("\n\n", start);
    expect(readme.slice(start, end)).toBe(readmeFlagTable());
  });

  it("every default shown in the README is the value the router takes without the flag", async () => {
    const { routerFlags } = await import("../src/config/flags.js");
    const { defaultRouterOptions } = await import("../src/config/options.js");
    const { optionsFromArgv } = await import("../src/config/cli-options.js");
    const parsed = optionsFromArgv([]);
    for (const f of routerFlags) {
      if (f.key === "verbose" || f.key === "logFormat" || f.hidden) continue;
      expect(parsed[f.key], f.flag).toEqual(defaultRouterOptions[f.key]);
      const shown = /^`([^`]+)`/.exec(f.readmeDefault ?? "")?.[1];
      const v = defaultRouterOptions[f.key];
      if (shown !== undefined) expect(shown, f.flag).toBe(String(f.kind === "seconds" ? (v as number) / 1000 : v));
      else expect(v === null || (Array.isArray(v) && v.length === 0), f.flag).toBe(true);
    }
  });

  it("every flag in --help comes from the table, and every table flag is accepted", async () => {
    const { routerFlags } = await import("../src/config/flags.js");
    const { buildCommand } = await import("../src/config/cli-options.js");
    const longs = buildCommand().options.map((o) => o.long).filter((l) => l !== "--version");
    expect(longs.sort()).toEqual(routerFlags.map((f) => f.flag).sort());
  });
});
