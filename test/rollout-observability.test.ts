/**
 * What operators see of rollout jobs, over real sockets (the built router,
 * simulated workers as processes): the rollout metrics, the running-jobs
 * list, and a client closing its stream logged as such at info (REST,
 * Connect and gRPC), never as an RPC write error.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutService } from "../src/gen/sgl/diffusion/router/v1/rollout_pb.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { postRollout } from "./helpers/rollout-stream.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE = "/v1/images/generations";

function grouped(groups: number, size: number) {
  return Array.from({ length: groups * size }, (_, i) => ({ path: IMAGE, group: `g${Math.floor(i / size)}`, body: { prompt: `p${Math.floor(i / size)}`, seed: i % size, size: "64x64", num_inference_steps: 2 } }));
}

async function metric(router: RouterProcess, series: string): Promise<number> {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function setSpeed(sims: SimProcess[], speed: number): Promise<void> {
  await Promise.all(sims.map((s) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { speed } })));
}

describe("rollout jobs, as operators see them", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1].map(() => startSimProcess(["--speed", "20"])));
    router = await startRouterProcess(["--admin-api-key", "ADMIN", "--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });
  const admin = { authorization: "Bearer ADMIN" };

  it("metrics: jobs started and ended by reason, items by status, groups completed, time to K", async () => {
    await postRollout(router.url, { requests: grouped(2, 3) });
    const r = await postRollout(router.url, { requests: grouped(2, 3), min_complete_groups: 1 });
    const summary = r.lines.at(-1).summary;
    expect(await metric(router, "sgl_router_rollout_jobs_started_total")).toBe(2);
    expect(await metric(router, "sgl_router_rollout_jobs_running")).toBe(0);
    expect(await metric(router, 'sgl_router_rollout_jobs_ended_total{reason="completed"}')).toBe(1);
    expect(await metric(router, 'sgl_router_rollout_jobs_ended_total{reason="min_complete_groups"}')).toBe(1);
    expect(await metric(router, 'sgl_router_rollout_items_total{status="succeeded"}')).toBe(6 + summary.completed);
    expect(await metric(router, 'sgl_router_rollout_items_total{status="cancelled"}')).toBe(summary.cancelled);
    expect(await metric(router, "sgl_router_rollout_groups_completed_total")).toBe(2 + summary.completed_groups.length);
    expect(await metric(router, "sgl_router_rollout_time_to_k_seconds_count")).toBe(1);
  });

  it("GET /rollouts lists the running jobs (admin key), without them once they end", async () => {
    expect((await jsonRequest(`${router.url}/rollouts`)).status).toBe(401);
    await setSpeed(sims, 0.02);
    try {
      let id = "";
      const done = postRollout(router.url, { requests: grouped(2, 4) }, (line) => {
        if ("size" in line) id = line.id;
      });
      const listed = await waitFor(async () => {
        const l = (await jsonRequest(`${router.url}/rollouts`, { headers: admin })).body.rollouts;
        return l.length === 1 ? l[0] : undefined;
      }, 15_000, "the job listed");
      expect(listed).toMatchObject({ status: "running", size: 8, groups: 2 });
      expect(listed.items).toBeUndefined();
      await jsonRequest(`${router.url}/v1/rollouts/${listed.id}/cancel`, { method: "POST" });
      await done;
      expect(listed.id).toBe(id);
      expect((await jsonRequest(`${router.url}/rollouts`, { headers: admin })).body.rollouts).toEqual([]);
    } finally {
      await setSpeed(sims, 20);
    }
  });

  it("a client closing its stream is logged as 'client closed the stream' at info (REST, Connect, gRPC), not as a write error", async () => {
    await setSpeed(sims, 0.05);
    try {
      const from = router.logs.length;
      await postRollout(router.url, { requests: grouped(2, 4) }, (line) => ("index" in line ? "close" : undefined));
      for (const transport of [createConnectTransport({ baseUrl: router.url, httpVersion: "1.1" }), createGrpcTransport({ baseUrl: router.url })]) {
        const ac = new AbortController();
        await expect(async () => {
          for await (const e of createClient(RolloutService, transport).run({ requests: grouped(2, 4) }, { signal: ac.signal })) if (e.event.case === "result") ac.abort();
        }).rejects.toThrow(/abort|cancel/i);
      }
      const closed = () => router.logs.slice(from).filter((l) => l.msg === "client closed the stream");
      await waitFor(() => closed().length === 3 || undefined, 15_000, "three 'client closed the stream' lines");
      expect(closed().map((l) => [l.level, l.transport])).toEqual([[30, "rest"], [30, "rpc"], [30, "rpc"]]);
      const rpcLines = await waitFor(() => {
        const lines = router.logs.slice(from).filter((l) => l.msg === "rpc" && l.rpc === "/sgl.diffusion.router.v1.RolloutService/Run");
        return lines.length === 2 ? lines : undefined;
      }, 15_000, "two Run access lines");
      for (const l of rpcLines) expect([l.level, l.code, l.message]).toEqual([30, "canceled", "client closed the stream"]);
      expect(router.logs.slice(from).filter((l) => /destroyed/.test(JSON.stringify(l)))).toEqual([]);
    } finally {
      await setSpeed(sims, 20);
    }
  });
});
