/**
 * The REST route table against a running router with both keys set: every
 * admin route, and every unknown path under an admin prefix, refuses the
 * data-plane key; every data route refuses no key; open routes need none.
 * The table itself is the list (a new row is checked without touching this
 * file), and metrics label requests by the row's template.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { restRoutes, RouteTable } from "../src/http/routes.js";
import { startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const ADMIN = "admin-key-route-table";
const DATA = "data-key-route-table";
let sim: SimProcess;
let router: RouterProcess;

beforeAll(async () => {
  sim = await startSimProcess([]);
  router = await startRouterProcess(["--admin-api-key", ADMIN, "--api-key", DATA, "--health-check-interval", "3600", "--worker-urls", sim.url]);
});
afterAll(async () => {
  await router?.stop();
  await sim?.stop();
});

// The rows only: no handler runs here.
const table = restRoutes({ admin: {} as never, data: {} as never, affinity: {} as never, fanout: {} as never, rollouts: {} as never, lora: {} as never, metrics: () => undefined, dashboard: {} as never });

/** A concrete path for a template: parameters become an id that exists nowhere. */
const concrete = (template: string) => template.replace(/\{[a-z_]+\*?\}/g, "nothing-here");

async function status(method: string, path: string, key: string | null): Promise<number> {
  const res = await fetch(`${router.url}${path}`, { method, headers: key === null ? {} : { authorization: `Bearer ${key}` } });
  await res.arrayBuffer();
  return res.status;
}

describe("REST route table", () => {
  it("every row has a key class, a label without ids, an error shape and at least one method", () => {
    expect(table.length).toBeGreaterThanOrEqual(30);
    for (const r of table) {
      expect(["open", "admin", "data"], r.path).toContain(r.auth);
      expect(r.label, r.path).not.toContain("*");
      expect(["original", "openai"], r.path).toContain(r.shape);
      expect(Object.keys(r.methods).length, r.path).toBeGreaterThan(0);
    }
    expect(new Set(table.map((r) => r.path)).size).toBe(table.length);
  });

  it("admin rows refuse the data key and no key; the admin key gets past auth (405 on a method no row takes)", async () => {
    for (const r of table.filter((x) => x.auth === "admin")) {
      const path = concrete(r.path);
      expect(await status("PATCH", path, DATA), `${path} with the data key`).toBe(401);
      expect(await status("PATCH", path, null), `${path} without a key`).toBe(401);
      const withAdmin = await status("PATCH", path, ADMIN);
      expect(withAdmin, `${path} with the admin key`).not.toBe(401);
      // A row that takes any method ("*") answers for itself; the others refuse PATCH.
      if (!r.methods["*"]) expect(withAdmin, path).toBe(405);
    }
  });

  it("unknown paths under admin prefixes are 404 with the admin key and 401 with the data key (never forwarded)", async () => {
    for (const path of ["/refit/nothing", "/router/whatever", "/admin/x", "/audit/x", "/sgl.diffusion.router.v1.AdminService/NoSuchMethod"]) {
      expect(await status("GET", path, DATA), path).toBe(401);
      expect(await status("GET", path, ADMIN), path).toBe(404);
    }
  });

  it("data rows refuse no key and accept the data key", async () => {
    for (const r of table.filter((x) => x.auth === "data")) {
      const path = concrete(r.path);
      expect(await status("PATCH", path, null), `${path} without a key`).toBe(401);
      expect(await status("PATCH", path, DATA), `${path} with the data key`).not.toBe(401);
    }
  });

  it("open rows need no key", async () => {
    for (const r of table.filter((x) => x.auth === "open")) {
      const method = Object.keys(r.methods)[0]!;
      expect(await status(method, r.path, null), r.path).toBe(200);
    }
  });

  it("metrics label each request by its row's template, and paths no row matches as other", async () => {
    await status("GET", "/v1/rollouts/some-id", DATA);
    await status("GET", `/workers/${encodeURIComponent(sim.url)}`, ADMIN);
    await status("GET", "/v1/whatever-else", DATA);
    const text = await (await fetch(`${router.url}/metrics`)).text();
    expect(text).toMatch(/sgl_router_requests_total\{route="\/v1\/rollouts\/\{id\}",method="GET",status="404"/);
    expect(text).toMatch(/sgl_router_requests_total\{route="\/workers\/\{id\}",method="GET",status="200"/);
    expect(text).toMatch(/sgl_router_requests_total\{route="other",method="GET"/);
    expect(text).not.toContain("some-id");
  });

  it("matching: exact rows first, then templates by longest suffix; a bad percent-encoding in a parameter is a 400, not a crash", async () => {
    const t = new RouteTable(table);
    expect(t.match("/workers").route?.path).toBe("/workers");
    expect(t.match("/workers/http://h:1/update_weights_from_tensor").route?.path).toBe("/workers/{id*}/update_weights_from_tensor");
    expect(t.match("/workers/http://h:1").params).toEqual(["http://h:1"]);
    expect(t.match("/v1/models/Wan-AI/Wan2.2").params).toEqual(["Wan-AI/Wan2.2"]);
    expect(t.match("/v1/videos/a/b").kind).toBe("reserved");
    expect(t.match("/v1/model_info").kind).toBe("worker");
    expect(t.match("/v1/list_loras").route?.path).toBe("/v1/list_loras");
    expect(t.match("/v1/rollouts/a/b").kind).toBe("reserved");
    expect(() => t.match("/v1/videos/%E0%A4%A")).toThrow(/percent-encoding/);
    expect(await status("GET", "/v1/videos/%E0%A4%A", DATA)).toBe(400);
    expect(await status("GET", "/health", null)).toBe(200);
  });
});
