/**
 * Workers stay behind the router: a path the router does not know is
 * forwarded to a worker, and a worker's own routes can change it (the sim's
 * POST /sim/config sets its failure rate). With an admin key set, only the
 * admin key reaches them; with only --api-key, the data key still does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let sim: SimProcess;
const routers: RouterProcess[] = [];
beforeAll(async () => {
  sim = await startSimProcess();
});
afterAll(async () => {
  await Promise.allSettled(routers.map((r) => r.stop(3000)));
  await sim?.stop();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(["--worker-urls", sim.url, "--health-check-interval", "3600", ...args]);
  routers.push(r);
  return r;
}

describe("paths forwarded to workers", () => {
  it("need the admin key when both keys are set: the data key is 401 and changes nothing", async () => {
    const r = await router(["--admin-api-key", "adm-key", "--api-key", "data-key"]);
    const before = (await jsonRequest(`${sim.url}/sim/config`)).body.speed;
    const refused = await jsonRequest(`${r.url}/sim/config`, { method: "POST", headers: bearer("data-key"), json: { speed: 3 } });
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe("unauthenticated");
    expect((await jsonRequest(`${sim.url}/sim/config`)).body.speed).toBe(before);
    expect((await jsonRequest(`${r.url}/sim/config`, { headers: bearer("data-key") })).status).toBe(401);

    const ok = await jsonRequest(`${r.url}/sim/config`, { method: "POST", headers: bearer("adm-key"), json: { speed: 3 } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-worker-id")).toBeTruthy();
    expect((await jsonRequest(`${sim.url}/sim/config`)).body.speed).toBe(3);
    // The data plane itself still takes the data key.
    expect((await jsonRequest(`${r.url}/v1/models`, { headers: bearer("data-key") })).status).toBe(200);
    // The refusal is on the audit trail, like any refused admin call.
    const events = (await jsonRequest(`${r.url}/audit`, { headers: bearer("adm-key") })).body.events as any[];
    expect(events.some((e) => e.action === "auth.refused" && e.args.route === "POST /sim/config")).toBe(true);
    await jsonRequest(`${sim.url}/sim/config`, { method: "POST", json: { speed: before } });
  }, 30_000);

  it("take the data key when only --api-key is set, and no key without keys (drop-in)", async () => {
    const dataOnly = await router(["--api-key", "data-key"]);
    expect((await jsonRequest(`${dataOnly.url}/sim/config`)).status).toBe(401);
    expect((await jsonRequest(`${dataOnly.url}/sim/config`, { headers: bearer("data-key") })).status).toBe(200);
    const open = await router([]);
    expect((await jsonRequest(`${open.url}/sim/config`)).status).toBe(200);
  }, 30_000);
});
