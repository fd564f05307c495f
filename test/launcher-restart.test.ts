/**
 * The launcher's restart policy, as an operator sees it: a managed worker
 * that crashes leaves rotation at once, comes back on the same URL,
 * re-registered and re-synced to the weights the pool moved to before the
 * crash, and ListManagedWorkers says how it ended and how often it restarted.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AdminService, WorkerState } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { LauncherConfigError, parseLauncherSection } from "../src/launcher/index.js";
import { isAlive, jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { holdsFor } from "./helpers/idle.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-restart-"));
let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function start(extra: string[]): Promise<{ r: RouterProcess; admin: Client<typeof AdminService> }> {
  const base = 26000 + 2 * Math.floor(Math.random() * 2000);
  const file = join(tmp, `launcher-${base}.yaml`);
  writeFileSync(file, ["launcher:", "  backend: sim", "  model: Qwen/Qwen-Image", ...(extra.some((l) => l.startsWith("num_workers")) ? [] : ["  num_workers: 1"]), "  worker_host: 127.0.0.1", `  worker_base_port: ${base}`, "  wait_timeout: 30", ...extra.map((l) => `  ${l}`), ""].join("\n"));
  const r = await startRouterProcess(["--health-check-interval", "3600", "--launcher-config", file]);
  cleanup.push(() => r.stop(5000));
  const sessionManager = new Http2SessionManager(r.url);
  cleanup.push(() => sessionManager.abort());
  const admin = createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager }));
  await waitFor(async () => (await admin.listManagedWorkers({})).workers[0]?.state === "ready", 20_000, "worker ready");
  return { r, admin };
}

async function managed(admin: Client<typeof AdminService>) {
  return (await admin.listManagedWorkers({})).workers[0]!;
}

async function routerWorkers(r: RouterProcess): Promise<any[]> {
  return (await jsonRequest(`${r.url}/workers`)).body.workers;
}

describe("restart policy", () => {
  it("on-failure (default): a SIGKILLed worker leaves rotation at once and comes back on the current weights", async () => {
    const { r, admin } = await start(["restart_backoff: 1"]);
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-2", weight_version: "v2" } });
    expect(refit.status).toBe(200);
    const before = await managed(admin);
    expect(before).toMatchObject({ state: "ready", restarts: 0 });

    process.kill(before.pid, "SIGKILL");
    // Out of rotation before the restart (the backoff is 1 s): not left for health probes to find.
    // The router's own log orders the two (polling /workers within 900 ms raced a loaded machine).
    const removed = await r.waitForLog((l) => l.msg === "worker removed" && l.worker === before.url);
    const restarting = await r.waitForLog((l) => l.msg === "restarting managed worker after its backoff");
    expect(restarting.delayMs).toBe(1000);
    const restarted = await r.waitForLog((l) => l.msg === "restarted managed worker", 20_000);
    expect(Number(removed.time)).toBeLessThan(Number(restarted.time));

    const back = await waitFor(async () => {
      const ws = await routerWorkers(r);
      return ws.length === 1 && ws[0].state === "healthy" ? ws[0] : undefined;
    }, 20_000, "worker back and in sync");
    expect(back).toMatchObject({ url: before.url, weight_version: "v2", managed: true });
    const after = await managed(admin);
    expect(after).toMatchObject({ url: before.url, state: "ready", restarts: 1, exitSignal: "SIGKILL" });
    expect(after.pid).not.toBe(before.pid);
    expect(isAlive(before.pid)).toBe(false);

    // Its answers come from the weights the pool moved to before the crash.
    const res = await fetch(`${r.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "back", size: "64x64", num_inference_steps: 1, response_format: "b64_json" }) });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    expect(res.headers.get("x-weight-version")).toBe("v2");
    expect(res.headers.get("x-sim-weights")).toBe("ckpt/step-2");

    const events = (await jsonRequest(`${r.url}/audit`)).body.events as any[];
    expect(events.find((e) => e.action === "launcher.restart")).toMatchObject({ outcome: "ok", caller: { transport: "router" }, args: { url: before.url, exit_signal: "SIGKILL" } });
    expect(await (await fetch(`${r.url}/metrics`)).text()).toMatch(/sgl_router_managed_worker_restarts_total\{worker="[^"]+"\} 1/);
  }, 60_000);

  it("never: a crashed worker stays exited, with its exit code", async () => {
    const { r, admin } = await start(["restart: never"]);
    const w = await managed(admin);
    process.kill(w.pid, "SIGTERM");
    const ended = await waitFor(async () => {
      const m = await managed(admin);
      return m.state === "exited" ? m : undefined;
    }, 10_000, "worker exited");
    expect(ended.restarts).toBe(0);
    expect(ended.exitCode !== undefined || ended.exitSignal !== undefined).toBe(true);
    await waitFor(async () => (await routerWorkers(r)).length === 0, 10_000, "worker removed");
    await holdsFor(1500, "restart: never: the crashed worker is not started again, well past the 1 s default restart_backoff", async () => (await managed(admin)).state === "exited");
    expect((await managed(admin)).state).toBe("exited");
  }, 30_000);

  it("max_restarts: after the last allowed restart a crash leaves it failed, saying why, and it stays visible", async () => {
    const { r, admin } = await start(["max_restarts: 1", "restart_backoff: 0.2"]);
    process.kill((await managed(admin)).pid, "SIGKILL");
    const again = await waitFor(async () => {
      const m = await managed(admin);
      return m.state === "ready" && m.restarts === 1 ? m : undefined;
    }, 20_000, "first restart");
    process.kill(again.pid, "SIGKILL");
    const failed = await waitFor(async () => {
      const m = await managed(admin);
      return m.state === "failed" ? m : undefined;
    }, 10_000, "gave up");
    expect(failed.error).toMatch(/max_restarts 1/);
    expect(failed.exitSignal).toBe("SIGKILL");

    // Not gone from the places an operator looks: /workers, /health, /metrics, /managed_workers.
    const listed = await routerWorkers(r);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ url: failed.url, state: "failed", is_dead: true, managed: true, name: "Qwen/Qwen-Image/0", restarts: 1 });
    expect(listed[0].last_error).toMatch(/max_restarts 1/);
    // ListWorkers lists it too, as WORKER_STATE_FAILED, with the same facts.
    const rpcListed = (await admin.listWorkers({})).workers;
    expect(rpcListed.map((w) => [w.url, w.workerId, w.state, w.isDead, w.deadReason, w.managed, w.capabilities?.models])).toEqual([
      [failed.url, listed[0].worker_id, WorkerState.FAILED, true, "launcher_failed", true, ["Qwen/Qwen-Image"]],
    ]);
    expect(rpcListed[0]!.lastError).toBe(listed[0].last_error);
    const health = await jsonRequest(`${r.url}/health`);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: "unhealthy", healthy_workers: 0, total_workers: 1, failed_workers: 1 });
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/sgl_router_worker_state\{worker="[^"]+",state="failed"\} 1/);
    // One restart series per worker, by its stable name (not its URL).
    expect(metrics).toMatch(/sgl_router_managed_worker_restarts_total\{worker="Qwen\/Qwen-Image\/0"\} 1/);
    const rest = await jsonRequest(`${r.url}/managed_workers`);
    expect(rest.body.workers).toMatchObject([{ name: "Qwen/Qwen-Image/0", state: "failed", restarts: 1, exit_signal: "SIGKILL", url: failed.url }]);
  }, 60_000);

  it("a failed managed worker beside a healthy one: /health says degraded (200) and counts it", async () => {
    const { r, admin } = await start(["num_workers: 2", "max_restarts: 0"]);
    await waitFor(async () => (await admin.listManagedWorkers({})).workers.every((w) => w.state === "ready") || undefined, 20_000, "both ready");
    const victim = (await admin.listManagedWorkers({})).workers[1]!;
    process.kill(victim.pid, "SIGKILL");
    const health = await waitFor(async () => {
      const h = await jsonRequest(`${r.url}/health`);
      return h.body.failed_workers === 1 ? h : undefined;
    }, 10_000, "failure counted");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "degraded", healthy_workers: 1, total_workers: 2, failed_workers: 1 });
    const states = (await routerWorkers(r)).map((w) => [w.url, w.state]);
    expect(states).toContainEqual([victim.url, "failed"]);
  }, 60_000);
});

describe("restart keys in the launcher YAML", () => {
  it("defaults, and clear errors naming the key", () => {
    expect(parseLauncherSection({ model: "m" })).toMatchObject({ restart: "on-failure", max_restarts: 5, restart_backoff: 1 });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ restart: "always" }, /launcher\.restart .* must be one of "on-failure", "never", got "always"/],
      [{ max_restarts: -1 }, /launcher\.max_restarts .* must be an integer from 0 to 1000/],
      [{ restart_backoff: 0 }, /launcher\.restart_backoff .* must be a number of seconds > 0/],
    ];
    for (const [section, message] of bad) {
      expect(() => parseLauncherSection({ model: "m", ...section })).toThrow(LauncherConfigError);
      expect(() => parseLauncherSection({ model: "m", ...section })).toThrow(message);
    }
  });
});
