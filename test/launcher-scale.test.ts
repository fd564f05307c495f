/**
 * ScaleManagedWorkers finds its group by name. A partial config (the model
 * and little else) scales the group launched from the YAML, on that group's
 * ports; one that names no group is refused with INVALID_ARGUMENT (400 over
 * Connect JSON) naming the groups there are, and starts nothing, unless the
 * request sets create. Real router and simulated workers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-scale-"));
let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function start(yaml: string[]): Promise<{ r: RouterProcess; admin: Client<typeof AdminService> }> {
  const file = join(tmp, `launcher-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, ["launcher:", ...yaml, ""].join("\n"));
  const r = await startRouterProcess(["--health-check-interval", "3600", "--launcher-config", file]);
  cleanup.push(() => r.stop(5000));
  const sessionManager = new Http2SessionManager(r.url);
  cleanup.push(() => sessionManager.abort());
  const admin = createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager }));
  await waitFor(async () => (await admin.listManagedWorkers({})).workers[0]?.state === "ready", 20_000, "the launched worker ready");
  return { r, admin };
}

describe("ScaleManagedWorkers addresses a group by name", () => {
  it("a partial config scales the YAML's group on its ports; an unknown name is refused naming the groups; create starts a new group", async () => {
    const base = 28000 + 2 * Math.floor(Math.random() * 1500);
    const { r, admin } = await start(["  backend: sim", "  model: Qwen/Qwen-Image", `  worker_base_port: ${base}`, "  wait_timeout: 20"]);

    // Only the model (the group's name, as it has none): the new worker joins the group's port range, not the default 10090.
    const up = await admin.scaleManagedWorkers({ source: { case: "config", value: { backend: "sim", model: "Qwen/Qwen-Image" } }, count: 2 });
    expect(up.started.map((w) => [w.state, w.group])).toEqual([["ready", "Qwen/Qwen-Image"]]);
    // base + 2 unless another program holds it meanwhile (the launcher then scans upward).
    expect(up.started[0]!.port).toBeGreaterThanOrEqual(base + 2);
    expect(up.started[0]!.port).toBeLessThan(base + 100);
    expect(up.workers).toHaveLength(2);

    // A name no group has: refused, naming the group there is; nothing starts.
    const wan = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
    const refused = await admin
      .scaleManagedWorkers({ source: { case: "config", value: { backend: "sim", model: wan } }, count: 5 })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(refused?.code).toBe(Code.InvalidArgument);
    expect(refused?.rawMessage).toMatch(new RegExp(`no launcher group is named "${wan}" \\(existing groups: "Qwen/Qwen-Image" \\(sim, 2 live\\)\\)`));
    // The same over Connect's JSON protocol, as curl would see it.
    const overHttp = await jsonRequest(`${r.url}/sgl.diffusion.router.v1.AdminService/ScaleManagedWorkers`, {
      method: "POST",
      json: { yaml: `launcher:\n  backend: sim\n  model: ${wan}\n`, count: 5 },
    });
    expect(overHttp.status).toBe(400);
    expect(overHttp.body.message).toMatch(/no launcher group is named .*Qwen\/Qwen-Image/);
    expect((await admin.listManagedWorkers({})).workers).toHaveLength(2);

    // Asked to create: a new group, named, on its own ports.
    const created = await admin.scaleManagedWorkers({
      source: { case: "config", value: { backend: "sim", name: "video", model: wan, workerBasePort: base + 200, waitTimeout: 20 } },
      count: 1,
      create: true,
    });
    expect(created.started.map((w) => [w.state, w.group, w.model])).toEqual([["ready", "video", wan]]);
    expect(created.started[0]!.port).toBeGreaterThanOrEqual(base + 200);
    expect((await admin.listManagedWorkers({})).workers.map((w) => w.group)).toEqual(["Qwen/Qwen-Image", "Qwen/Qwen-Image", "video"]);
  }, 60_000);
});
