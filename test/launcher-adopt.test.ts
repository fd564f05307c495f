/**
 * Restart recovery of launcher-managed workers (issue 21): a router
 * SIGKILLed and restarted with the same flags, --launcher-config and
 * --state-file takes over the simulated workers its previous process left
 * running (same processes, no second copy on their ports), serves them at
 * the refit's version within 2 s without replaying the refit to them, loses
 * no request of clients that retry like RL frameworks, and starts again a
 * worker that died while it was down. Backend `local` (the same process
 * backend, src/launcher/local/process-backend.ts) is run once through a
 * stand-in `sglang` that execs the sim; Slurm jobs: test/slurm.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { freePort } from "./helpers/ports.js";
import { isAlive, jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { imageRetrying } from "./helpers/clients.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-adopt-"));
const simCli = fileURLToPath(new URL("../dist/src/sim/cli.js", import.meta.url));
let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };

interface Setup {
  yaml: string;
  args: string[];
  stateFile: string;
  basePort: number;
}

async function setup(extra: string[] = [], backend = "sim"): Promise<Setup> {
  const basePort = 27000 + 2 * Math.floor(Math.random() * 1500);
  const dir = mkdtempSync(join(tmp, "run-"));
  const yaml = join(dir, "launcher.yaml");
  writeFileSync(
    yaml,
    ["launcher:", `  backend: ${backend}`, "  model: Qwen/Qwen-Image", "  num_workers: 2", "  worker_host: 127.0.0.1", `  worker_base_port: ${basePort}`, "  wait_timeout: 30", "  restart_backoff: 1", ...extra, ""].join("\n"),
  );
  const stateFile = join(dir, "state.json");
  return { yaml, args: ["--port", String(await freePort()), "--state-file", stateFile, "--launcher-config", yaml, "--access-log-exclude-prefixes", "/"], stateFile, basePort };
}

/** Backend local runs `sglang`: here test/fixtures/launcher/bin/sglang, which execs the built sim with the same arguments. */
const fakeSglangEnv = (dir: string) => ({
  PATH: `${fileURLToPath(new URL("./fixtures/launcher/bin", import.meta.url))}${delimiter}${process.env.PATH}`,
  SGLANG_FAKE_RECORD_DIR: dir,
  SGLANG_FAKE_NODE: process.execPath,
  SGLANG_FAKE_WORKER: simCli,
});

async function router(s: Setup): Promise<RouterProcess> {
  const r = await startRouterProcess(s.args, { env: fakeSglangEnv(tmp) });
  cleanup.push(() => r.stop(15_000));
  return r;
}

interface Managed {
  name: string;
  url: string;
  pid: number;
  state: string;
  restarts: number;
}

async function managed(r: RouterProcess): Promise<Managed[]> {
  return ((await jsonRequest(`${r.url}/managed_workers`)).body.workers as Managed[]).sort((a, b) => a.name.localeCompare(b.name));
}

async function pool(r: RouterProcess): Promise<{ url: string; state: string; weight_version: string | null }[]> {
  return (await jsonRequest(`${r.url}/workers`)).body.workers;
}

/** Pids of simulated workers (by their command line, from /proc) serving on this test's ports. */
function simPids(s: Setup): number[] {
  const ports = new Set([s.basePort, s.basePort + 2].map(String));
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (argv.includes(simCli) && argv.some((a, i) => a === "--port" && ports.has(argv[i + 1]!))) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

async function weightLoads(url: string): Promise<number> {
  const stats = (await jsonRequest(`${url}/sim/stats`)).body;
  return stats.requests_by_route?.["POST /update_weights_from_disk"] ?? 0;
}

/** One client request as RL frameworks send it (helpers/clients.ts). */
const generateRetrying = (base: string) => imageRetrying(base, smallImage);

/** Starts the router, waits for both workers ready, refits to `version`. */
async function firstLife(s: Setup, version: string): Promise<{ r: RouterProcess; before: Managed[] }> {
  const r = await router(s);
  const before = await waitFor(async () => {
    const ws = await managed(r);
    return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws : undefined;
  }, 30_000, "two managed workers ready");
  // Killing the router below must not leave these behind if the test fails.
  cleanup.push(() => before.forEach((w) => isAlive(w.pid) && process.kill(-w.pid, "SIGKILL")));
  await waitFor(async () => (await pool(r)).filter((w) => w.state === "healthy").length === 2, 10_000, "both workers in rotation");
  expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: `/ckpt/${version}`, weight_version: version } })).status).toBe(200);
  const refitState = JSON.parse(readFileSync(s.stateFile, "utf8")).workers as Record<string, { version: string; fingerprint: string | null }>;
  // Each worker's version is recorded with the launcher's name for its process (no model card can give one).
  for (const w of before) expect(refitState[w.url]).toEqual({ version, fingerprint: `launcher:${w.pid}` });
  return { r, before };
}

async function sigkill(r: RouterProcess): Promise<void> {
  r.proc.kill("SIGKILL");
  await new Promise((res) => (r.proc.exitCode !== null || r.proc.signalCode !== null ? res(null) : r.proc.once("exit", res)));
}

describe("restart recovery of launcher-managed workers (--launcher-config + --state-file)", () => {
  it("a SIGKILLed router restarted with the same flags adopts its two sim workers (same pids, no second copy), serves them at the refit's version within 2 s without a replay; 16 retrying clients lose no request", async () => {
    const s = await setup();
    const { r: first, before } = await firstLife(s, "7");
    const recorded = JSON.parse(readFileSync(s.stateFile, "utf8")).launcher.workers as { handle: string; url: string; name: string }[];
    expect(recorded.map((w) => [w.name, w.url, w.handle])).toEqual(before.map((w) => [w.name, w.url, String(w.pid)]));
    expect(simPids(s)).toEqual(before.map((w) => w.pid).sort((a, b) => a - b));

    let stop = false;
    const answers: { status: number; version: string | null }[] = [];
    const clients = Array.from({ length: 16 }, async () => {
      while (!stop) answers.push(await generateRetrying(first.url));
    });
    await waitFor(() => answers.length >= 16, 10_000, "answers before the crash");
    await sigkill(first);
    const second = await router(s);
    const restartedAt = second.logs.find((l) => l.msg === "router listening")!.time as number;
    const served = await waitFor(async () => {
      const ws = await pool(second);
      return ws.length === 2 && ws.every((w) => w.state === "healthy" && w.weight_version === "7") ? ws : undefined;
    }, 15_000, "both workers back at version 7");
    expect(Date.now() - restartedAt).toBeLessThan(2_000);
    expect(served.map((w) => w.url).sort()).toEqual(before.map((w) => w.url).sort());

    // The same processes, adopted: nothing launched, no other sim process on their ports.
    const after = await managed(second);
    expect(after.map((w) => [w.name, w.url, w.pid, w.state, w.restarts])).toEqual(before.map((w) => [w.name, w.url, w.pid, "ready", 0]));
    expect(simPids(s)).toEqual(before.map((w) => w.pid).sort((a, b) => a - b));
    expect(second.logs.filter((l) => l.msg === "launched worker")).toEqual([]);
    expect(second.logs.filter((l) => l.msg === "adopted running worker")).toHaveLength(2);
    // Same process, same version: in rotation without the refit replayed (one load each: the refit's).
    for (const w of before) expect(await weightLoads(w.url)).toBe(1);

    const count = answers.length;
    await waitFor(() => answers.length >= count + 32, 20_000, "answers after the restart");
    stop = true;
    await Promise.all(clients);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.every((a) => a.version === "7")).toBe(true);
  }, 90_000);

  it("a managed worker that died while the router was down is started again (same name and URL, one restart more, re-synced); the live one is adopted and restarted by the policy when it dies; a clean stop leaves none recorded", async () => {
    const s = await setup();
    const { r: first, before } = await firstLife(s, "v3");
    await sigkill(first);
    const [kept, died] = before as [Managed, Managed];
    process.kill(-died.pid, "SIGKILL");
    await waitFor(() => !isAlive(died.pid), 15_000, "the worker's process gone");

    const second = await router(s);
    const after = await waitFor(async () => {
      const ws = await managed(second);
      return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws : undefined;
    }, 30_000, "both managed workers ready again");
    expect(after[0]).toMatchObject({ name: kept.name, url: kept.url, pid: kept.pid, restarts: 0 });
    expect(after[1]).toMatchObject({ name: died.name, url: died.url, restarts: 1 });
    expect(after[1]!.pid).not.toBe(died.pid);
    cleanup.push(() => void (isAlive(after[1]!.pid) && process.kill(-after[1]!.pid, "SIGKILL")));
    expect(simPids(s)).toEqual([kept.pid, after[1]!.pid].sort((a, b) => a - b));
    expect(second.logs.filter((l) => l.msg === "launched worker")).toHaveLength(1);

    // Both serve v3: the adopted one as it was, the new process after the refit was replayed to it.
    await waitFor(async () => {
      const ws = await pool(second);
      return ws.length === 2 && ws.every((w) => w.state === "healthy" && w.weight_version === "v3");
    }, 10_000, "both workers healthy at v3");
    expect(await weightLoads(kept.url)).toBe(1);
    expect(await weightLoads(died.url)).toBe(1);
    const res = await fetch(`${second.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smallImage) });
    await res.arrayBuffer();
    expect([res.status, res.headers.get("x-weight-version")]).toEqual([200, "v3"]);
    const recorded = JSON.parse(readFileSync(s.stateFile, "utf8")).launcher.workers as { handle: string }[];
    expect(recorded.map((w) => w.handle)).toEqual([String(kept.pid), String(after[1]!.pid)]);

    // The restart policy holds for the adopted worker (not the router's child: its end is polled).
    process.kill(-kept.pid, "SIGKILL");
    const restarted = await waitFor(async () => {
      const w = (await managed(second))[0]!;
      return w.state === "ready" && w.restarts === 1 ? w : undefined;
    }, 20_000, "the adopted worker restarted after it was killed");
    expect(restarted).toMatchObject({ name: kept.name, url: kept.url });
    expect(restarted.pid).not.toBe(kept.pid);
    cleanup.push(() => void (isAlive(restarted.pid) && process.kill(-restarted.pid, "SIGKILL")));
    expect(simPids(s)).toEqual([restarted.pid, after[1]!.pid].sort((a, b) => a - b));

    // A clean stop ends the workers and records none: the next start launches afresh.
    expect(await second.stop(15_000)).toBe(0);
    expect(JSON.parse(readFileSync(s.stateFile, "utf8")).launcher.workers).toEqual([]);
    expect(simPids(s)).toEqual([]);
  }, 90_000);

  it("backend local (the same process backend as sim, running `sglang serve`): a SIGKILLed router adopts its workers, same pids, back at the refit's version without a replay", async () => {
    const s = await setup([], "local");
    const { r: first, before } = await firstLife(s, "L1");
    await sigkill(first);
    const second = await router(s);
    await waitFor(async () => {
      const ws = await pool(second);
      return ws.length === 2 && ws.every((w) => w.state === "healthy" && w.weight_version === "L1");
    }, 15_000, "both workers back at L1");
    expect((await managed(second)).map((w) => [w.name, w.pid, w.state, w.restarts])).toEqual(before.map((w) => [w.name, w.pid, "ready", 0]));
    expect(simPids(s)).toEqual(before.map((w) => w.pid).sort((a, b) => a - b));
    expect(second.logs.filter((l) => l.msg === "launched worker")).toEqual([]);
    for (const w of before) expect(await weightLoads(w.url)).toBe(1);
  }, 90_000);

  it("recorded workers of a group whose settings changed are not adopted and not stopped (logged); the new group starts its own", async () => {
    const s = await setup();
    const { r: first, before } = await firstLife(s, "v1");
    await sigkill(first);
    writeFileSync(s.yaml, readFileSync(s.yaml, "utf8").replace("restart_backoff: 1", "restart_backoff: 2"));
    const second = await router(s);
    const now = await waitFor(async () => {
      const ws = await managed(second);
      return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws : undefined;
    }, 30_000, "the new group's two workers ready");
    for (const w of now) cleanup.push(() => void (isAlive(w.pid) && process.kill(-w.pid, "SIGKILL")));
    expect(now.map((w) => w.pid).some((pid) => before.some((b) => b.pid === pid))).toBe(false);
    // The old workers still run (left to the operator, named in the log); the new ones took other ports.
    expect(before.every((w) => isAlive(w.pid))).toBe(true);
    const warned = second.logs.filter((l) => String(l.msg).startsWith("state file: a recorded managed worker belongs to no group"));
    expect(warned.map((l) => l.worker).sort()).toEqual(before.map((w) => w.url).sort());
    expect(now.map((w) => w.url).some((u) => before.some((b) => b.url === u))).toBe(false);
  }, 90_000);
});
