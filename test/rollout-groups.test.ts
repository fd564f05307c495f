/**
 * Prompt groups in rollout jobs, over real sockets (the built router, four
 * simulated workers as processes): a group's items land on one worker, a
 * job stops at K whole groups, REST, RPC and the SDK alike.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutService } from "../src/gen/sgl/diffusion/router/v1/rollout_pb.js";
import { createRouterClient, type RolloutJobRequest } from "../sdk/src/index.js";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { postRollout } from "./helpers/rollout-stream.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE = "/v1/images/generations" as const;
const auth = { authorization: "Bearer DATA" };
/**
 * Items whose time is the simulated GPU's (about 90 ms at --speed 5: 256², many steps), not
 * the host's noise: earliest-finish rightly puts two groups on a worker it
 * measured twice as fast, and 2 shared cores make sub-millisecond items
 * measure that way. 22 ms items (128²) still did under two busy loops
 * (trial 8 of 20 put two groups on one worker). 900 steps: the router's
 * --max-inference-steps is 1000.
 */
const PLACED = { side: 256, steps: 900 };

/** `groups` prompts x `size` seeds, each item naming its group. */
function grouped(groups: number, size: number, { side = 64, steps = 2 } = {}): RolloutJobRequest[] {
  return Array.from({ length: groups * size }, (_, i) => ({
    path: IMAGE,
    group: `prompt-${Math.floor(i / size)}`,
    body: { prompt: `prompt ${Math.floor(i / size)}`, seed: i % size, size: `${side}x${side}`, num_inference_steps: steps, response_format: "b64_json" },
  }));
}

/** group -> the workers its results came from. */
function workersByGroup(results: { group: string | null; worker_id: string | null }[]): Map<string, Set<string | null>> {
  const by = new Map<string, Set<string | null>>();
  for (const r of results) {
    const set = by.get(r.group!) ?? new Set();
    set.add(r.worker_id);
    by.set(r.group!, set);
  }
  return by;
}

async function setSpeed(sim: SimProcess, speed: number): Promise<void> {
  await jsonRequest(`${sim.url}/sim/config`, { method: "POST", json: { speed } });
}

describe("rollout prompt groups", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1, 2, 3].map(() => startSimProcess(["--speed", "5"])));
    router = await startRouterProcess(["--api-key", "DATA", "--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it("4 groups x 8 items: each group on one worker, one group per worker, in 20 of 20 trials", async () => {
    for (let trial = 0; trial < 20; trial++) {
      const r = await postRollout(router.url, { requests: grouped(4, 8, PLACED) }, undefined, auth);
      expect(r.status).toBe(200);
      const results = r.lines.slice(1, -1);
      expect(results).toHaveLength(32);
      expect(results.every((x) => x.status === 200)).toBe(true);
      const by = workersByGroup(results);
      expect([...by.values()].map((s) => s.size), `trial ${trial}`).toEqual([1, 1, 1, 1]);
      expect(new Set([...by.values()].map((s) => [...s][0])).size, `trial ${trial}: one group per worker`).toBe(4);
      expect(r.lines.at(-1).summary).toMatchObject({ completed: 32, cancelled: 0, reason: null, completed_groups: ["prompt-0", "prompt-1", "prompt-2", "prompt-3"] });
    }
  });

  it("min_complete_groups 3: three whole groups come back, the fourth is cancelled and none of it is returned", async () => {
    await setSpeed(sims[3]!, 0.05); // one worker far slower: its group finishes last
    try {
      const r = await postRollout(router.url, { requests: grouped(4, 8), min_complete_groups: 3 }, undefined, auth);
      expect(r.status).toBe(200);
      const results = r.lines.slice(1, -1);
      const summary = r.lines.at(-1).summary;
      expect(summary.reason).toBe("min_complete_groups");
      expect(summary.completed_groups).toHaveLength(3);
      // Whole groups only: 8 results of each completed group, nothing of the other.
      const counts = new Map<string, number>();
      for (const x of results) counts.set(x.group, (counts.get(x.group) ?? 0) + 1);
      expect([...counts.keys()].sort()).toEqual(summary.completed_groups);
      expect([...counts.values()]).toEqual([8, 8, 8]);
      expect(results.every((x) => x.status === 200)).toBe(true);
      expect(summary).toMatchObject({ completed: 24, failed: 0, cancelled: 8 });
      const state = await jsonRequest(`${router.url}/v1/rollouts/${r.lines[0].id}`, { headers: auth });
      expect(state.body.items.filter((i: any) => i.state === "cancelled").map((i: any) => i.group)).toEqual(Array(8).fill(summary.completed_groups.length === 3 ? ["prompt-0", "prompt-1", "prompt-2", "prompt-3"].find((g) => !summary.completed_groups.includes(g)) : null));
    } finally {
      await setSpeed(sims[3]!, 5);
    }
  });

  it("a group and min_complete_groups are checked: 400 naming the field", async () => {
    const bad = await jsonRequest(`${router.url}/v1/rollouts`, { method: "POST", headers: auth, json: { requests: grouped(2, 2), min_complete_groups: 3 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("min_complete_groups");
    const badGroup = await jsonRequest(`${router.url}/v1/rollouts`, { method: "POST", headers: auth, json: { requests: [{ path: IMAGE, body: {}, group: 7 }] } });
    expect(badGroup.status).toBe(400);
    expect(badGroup.body.error.param).toBe("requests[0].group");
  });

  it("RPC: items carry group, results say it, the summary names the completed groups", async () => {
    const client = createClient(RolloutService, createGrpcTransport({ baseUrl: router.url }));
    const results: { group: string; workerId: string }[] = [];
    let completedGroups: string[] = [];
    for await (const e of client.run({ requests: grouped(4, 4), minCompleteGroups: 4 }, { headers: auth })) {
      if (e.event.case === "result") results.push({ group: e.event.value.group, workerId: e.event.value.workerId });
      if (e.event.case === "summary") completedGroups = e.event.value.completedGroups;
    }
    expect(results).toHaveLength(16);
    expect([...workersByGroup(results.map((r) => ({ group: r.group, worker_id: r.workerId }))).values()].map((s) => s.size)).toEqual([1, 1, 1, 1]);
    expect([...completedGroups].sort()).toEqual(["prompt-0", "prompt-1", "prompt-2", "prompt-3"]);
  });

  it("SDK: rollouts.run(requests with group, {minCompleteGroups: 3}) returns three whole groups", async () => {
    await setSpeed(sims[3]!, 0.05);
    const client = createRouterClient({ baseUrl: router.url, apiKey: "DATA", transport: "grpc" });
    try {
      const job = client.rollouts.run(grouped(4, 8), { minCompleteGroups: 3 });
      const got = new Map<string, Set<string>>();
      let n = 0;
      for await (const r of job) {
        expect(r.ok).toBe(true);
        got.set(r.group, (got.get(r.group) ?? new Set()).add(r.workerId));
        n++;
      }
      const s = await job.summary;
      expect(s.reason).toBe("min_complete_groups");
      expect([...got.keys()].sort()).toEqual([...s.completedGroups].sort());
      expect(s.completedGroups).toHaveLength(3);
      expect(n).toBe(24);
      expect([...got.values()].every((w) => w.size === 1)).toBe(true);
    } finally {
      await setSpeed(sims[3]!, 5);
      await client.close();
    }
  });
});

describe("a group's worker fails", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([0, 1].map(() => startSimProcess(["--speed", "0.02"])));
    router = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
  });
  afterAll(async () => {
    await router.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it("the rest of the group moves to a live worker; the other group stays where it was", async () => {
    const ids = sims.map((s) => encodeURIComponent(s.url));
    let killed: string | null = null;
    const r = await postRollout(router.url, { requests: grouped(2, 6) }, (line) => {
      // At the first result, the worker that made it dies: its group has items queued and one running.
      if (killed === null && "index" in line) {
        killed = line.group;
        sims[ids.indexOf(line.worker_id)]!.kill("SIGKILL");
      }
    });
    const results = r.lines.slice(1, -1);
    expect(results).toHaveLength(12);
    const other = killed === "prompt-0" ? "prompt-1" : "prompt-0";
    const otherResults = results.filter((x) => x.group === other);
    expect(otherResults.every((x) => x.status === 200)).toBe(true);
    const survivor = otherResults[0].worker_id;
    expect(otherResults.every((x) => x.worker_id === survivor)).toBe(true);
    // The item running when its worker died failed (a generation cut mid-way is not retried: the
    // client's own retry decides); every other item of the group was made by the survivor.
    const moved = results.filter((x) => x.group === killed).slice(1);
    const cut = moved.filter((x) => x.status !== 200);
    expect(cut.length).toBeLessThanOrEqual(1);
    expect(moved.filter((x) => x.status === 200).every((x) => x.worker_id === survivor)).toBe(true);
    expect(moved.filter((x) => x.status === 200).length).toBeGreaterThanOrEqual(4);
    expect(r.lines.at(-1).summary.completed_groups).toContain(other);
  });
});
