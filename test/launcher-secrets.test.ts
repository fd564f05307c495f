/**
 * The router's keys stay in the router: launched workers (backends local
 * and sim) never see SGLANG_D_ROUTER_* variables in their environment, and
 * --admin-api-key-file / --api-key-file give the keys without putting them
 * on the command line. Real router and worker processes; /proc is read as
 * `ps` and an attacker on the machine would read it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { jsonRequest, runRouterCli, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-secrets-"));
const fakeBin = fileURLToPath(new URL("./fixtures/launcher/bin", import.meta.url));
const simCli = fileURLToPath(new URL("../dist/src/sim/cli.js", import.meta.url));
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ADMIN_KEY = `admin-${Math.random().toString(36).slice(2)}`;
const DATA_KEY = `data-${Math.random().toString(36).slice(2)}`;
const OTHER = `other-${Math.random().toString(36).slice(2)}`;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** NAME=value pairs of a live process's environment, as the kernel holds it. */
function environOf(pid: number): Map<string, string> {
  const raw = readFileSync(`/proc/${pid}/environ`, "utf8");
  return new Map(raw.split("\0").filter((kv) => kv !== "").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
}

async function managedWorkers(r: RouterProcess): Promise<any[]> {
  const res = await jsonRequest(`${r.url}/sgl.diffusion.router.v1.AdminService/ListManagedWorkers`, { method: "POST", json: {}, headers: bearer(ADMIN_KEY) });
  expect(res.status).toBe(200);
  return res.body.workers ?? [];
}

describe("keys never reach a launched worker", () => {
  it("local and sim workers' /proc/<pid>/environ hold no SGLANG_D_ROUTER_* variable nor any key, though the router's env has them", async () => {
    const base = 27000 + 2 * Math.floor(Math.random() * 1000);
    const file = join(tmp, `launcher-${base}.yaml`);
    const group = (backend: string, port: number) => [`  - backend: ${backend}`, "    model: Qwen/Qwen-Image", "    num_workers: 1", `    worker_base_port: ${port}`, "    wait_timeout: 30"];
    writeFileSync(file, ["launcher:", ...group("sim", base), ...group("local", base + 100), ""].join("\n"));
    const r = await startRouterProcess(["--launcher-config", file], {
      env: {
        SGLANG_D_ROUTER_ADMIN_API_KEY: ADMIN_KEY,
        SGLANG_D_ROUTER_API_KEY: DATA_KEY,
        SGLANG_D_ROUTER_SOME_TOKEN: OTHER,
        // The fake `sglang` (test/fixtures/launcher/bin) records its argv and execs the simulated worker.
        PATH: `${fakeBin}${delimiter}${process.env["PATH"] ?? ""}`,
        SGLANG_FAKE_RECORD_DIR: tmp,
        SGLANG_FAKE_NODE: process.execPath,
        SGLANG_FAKE_WORKER: simCli,
        CUDA_VISIBLE_DEVICES: "",
      },
    });
    cleanup.push(() => r.stop(5000));
    const workers = await waitFor(async () => {
      const ws = await managedWorkers(r);
      return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws : undefined;
    }, 30_000, "a sim and a local worker ready");
    expect(workers.map((w) => w.backend).sort()).toEqual(["local", "sim"]);
    // The router itself has the keys (its data plane wants DATA_KEY), so there was something to leak.
    expect(environOf(r.pid).get("SGLANG_D_ROUTER_API_KEY")).toBe(DATA_KEY);
    expect((await jsonRequest(`${r.url}/v1/models`)).status).toBe(401);
    for (const w of workers) {
      const env = environOf(w.pid);
      expect(env.get("PATH"), `${w.backend} worker got the rest of the environment`).toContain(fakeBin);
      expect([...env.keys()].filter((k) => k.startsWith("SGLANG_D_ROUTER_")), `${w.backend} worker`).toEqual([]);
      const all = readFileSync(`/proc/${w.pid}/environ`, "utf8");
      for (const secret of [ADMIN_KEY, DATA_KEY, OTHER]) expect(all.includes(secret), `${w.backend} worker holds a key`).toBe(false);
    }
  }, 60_000);
});

describe("--admin-api-key-file / --api-key-file", () => {
  it("read the keys from files (trimmed), which then guard the router; the keys are not in its command line", async () => {
    const adminFile = join(tmp, "admin.key");
    const dataFile = join(tmp, "data.key");
    writeFileSync(adminFile, `  ${ADMIN_KEY}\n`, { mode: 0o600 });
    writeFileSync(dataFile, `${DATA_KEY}\n\n`, { mode: 0o600 });
    const r = await startRouterProcess(["--admin-api-key-file", adminFile, "--api-key-file", dataFile]);
    cleanup.push(() => r.stop(5000));
    expect((await jsonRequest(`${r.url}/workers`)).status).toBe(401);
    expect((await jsonRequest(`${r.url}/workers`, { headers: bearer(ADMIN_KEY) })).status).toBe(200);
    expect((await jsonRequest(`${r.url}/v1/models`, { headers: bearer(ADMIN_KEY) })).status).toBe(401);
    // Past authentication (no worker is registered, so the data plane answers 503 no_workers itself).
    const withDataKey = await jsonRequest(`${r.url}/v1/models`, { headers: bearer(DATA_KEY) });
    expect([withDataKey.status, withDataKey.body.code]).not.toEqual([401, "unauthenticated"]);
    expect(withDataKey.status).not.toBe(401);
    const cmdline = readFileSync(`/proc/${r.pid}/cmdline`, "utf8");
    expect(cmdline).toContain(adminFile);
    expect(cmdline.includes(ADMIN_KEY) || cmdline.includes(DATA_KEY)).toBe(false);
  });

  it.each([
    ["a missing file", () => ["--admin-api-key-file", join(tmp, "nope.key")], /option admin-api-key-file: .*nope\.key does not exist/],
    ["an empty file", () => (writeFileSync(join(tmp, "empty.key"), " \n"), ["--api-key-file", join(tmp, "empty.key")]), /option api-key-file: .*empty\.key is empty/],
    [
      "a key given twice",
      () => (writeFileSync(join(tmp, "twice.key"), "k\n"), ["--admin-api-key", "k2", "--admin-api-key-file", join(tmp, "twice.key")]),
      /option admin-api-key-file: the key is given twice, by --admin-api-key-file and by --admin-api-key/,
    ],
  ])("%s stops the start with exit code 2 (as any flag error) and says why", async (_what, args, message) => {
    const run = await runRouterCli(["--port", "0", ...args()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    // Same exit code as a malformed flag value.
    expect((await runRouterCli(["--port", "x"])).code).toBe(2);
  });
});
