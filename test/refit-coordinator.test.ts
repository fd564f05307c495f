/**
 * The refit coordinator's state machine in process, without sockets: the
 * real registry, admission and Control, with workers whose answers are
 * scripted per URL (the process tests in refit.test.ts and
 * rpc-refit.test.ts cover the same paths against simulated workers).
 */
import { describe, expect, it } from "vitest";
import { createControl } from "../src/admin/control.js";
import { createAdmission } from "../src/admission/admission.js";
import { createPolicy } from "../src/balancer/index.js";
import { createLogger } from "../src/log.js";
import type { Upstream } from "../src/proxy/upstream.js";
import { createRefitCoordinator } from "../src/refit/coordinator.js";
import { diskRefitCommand } from "../src/refit/disk-command.js";
import { Registry } from "../src/registry/registry.js";

const A = "http://10.0.0.1:30000";
const B = "http://10.0.0.2:30000";
type Script = (url: string, path: string, body: string) => { status: number; body: unknown };
const ok: Script = () => ({ status: 200, body: { success: true, message: "ok" } });

function setup(script: Script = ok, models: Record<string, string> = {}) {
  const logger = createLogger({ level: "silent" });
  const registry = new Registry();
  for (const url of [A, B]) registry.add(url, { capabilities: { instanceFingerprint: null, models: models[url] ? [models[url]!] : [] } });
  const calls: { url: string; path: string }[] = [];
  const upstream = {
    async requestJson(origin: string, _method: string, path: string, opts: { body?: string | Buffer } = {}) {
      calls.push({ url: origin, path });
      const a = script(origin, path, String(opts.body ?? ""));
      return { status: a.status, body: a.body, headers: {} };
    },
  } as unknown as Upstream;
  const health = { checkOne: async () => undefined } as never;
  const control = createControl({ registry, upstream, health, logger, probeTimeoutMs: 1000, broadcastTimeoutMs: 1000, affinities: [] });
  const admission = createAdmission({ registry, policy: createPolicy("least-request"), maxConcurrencyPerWorker: 0, queueSize: 100, queueTimeoutMs: 10_000 });
  const refit = createRefitCoordinator({ registry, admission, control, logger, drainTimeoutMs: 1000, refitTimeoutMs: 60_000, store: null });
  const worker = (url: string) => registry.get(url)!;
  return { registry, refit, calls, worker };
}

/** A disk refit command as REST parses it (the body kept as sent). */
const disk = (json: Record<string, unknown>) => diskRefitCommand(Buffer.from(JSON.stringify(json)), json, undefined);
const empty = { body: Buffer.from("{}") };
const answer = (json: unknown) => Buffer.from(JSON.stringify(json));

async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string }> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return err as { code?: string };
  }
  throw new Error("expected a failure");
}

describe("refit coordinator (in process)", () => {
  it("disk refit: every worker loads -> the version moves, nothing failed", async () => {
    const { refit, worker } = setup();
    const r = await refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/1", weight_version: "v1" }));
    expect(r).toMatchObject({ weightVersion: "v1", previousWeightVersion: "0", failure: null, summary: { targets: 2, succeeded: 2, failed: 0 } });
    expect([worker(A).weightVersion, worker(B).weightVersion]).toEqual(["v1", "v1"]);
    expect(refit.status().phase).toBe("idle");
  });

  it("disk refit: one worker fails -> typed failure, the failed worker is stale without a version, the pool moves", async () => {
    const { refit, worker } = setup((url) => (url === B ? { status: 400, body: { success: false, message: "bad checkpoint" } } : { status: 200, body: { success: true } }));
    const r = await refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/2" }));
    expect(r.weightVersion).toBe("1");
    expect(r.failure).toMatch(/1 of 2 worker\(s\) failed/);
    expect(r.summary.failedWorkers).toEqual([{ workerUrl: B, status: 400, message: "bad checkpoint" }]);
    expect(worker(B)).toMatchObject({ sync: "stale", weightVersion: null });
    expect(worker(A)).toMatchObject({ sync: "in_sync", weightVersion: "1" });
  });

  it("disk refit: no worker loads -> the version stays", async () => {
    const { refit } = setup(() => ({ status: 500, body: { detail: "oom" } }));
    const r = await refit.updateWeightsFromDisk(disk({ model_path: "/x" }));
    expect(r.weightVersion).toBe("0");
    expect(r.failure).toMatch(/no worker loaded the weights; the pool stays on 0/);
  });

  it("tensor refit: begin, one worker updated, commit -> it takes the version, the other is stale; a second begin is refused", async () => {
    const { refit, worker } = setup();
    const begun = await refit.begin();
    expect(begun).toMatchObject({ workers: [A, B] });
    expect(refit.status().phase).toBe("open");
    expect((await failure(refit.begin())).code).toBe("refit_in_progress");
    const outcome = await refit.updateTensors(A, async (answered) => answered(200, answer({ success: true })));
    expect(outcome).toEqual({ workerUrl: A, ok: true, status: 200 });
    expect(refit.status().updatedWorkers).toEqual([A]);
    const c = refit.commit({ weightVersion: "t1" });
    expect(c).toMatchObject({ weightVersion: "t1", updatedWorkers: [A], staleWorkers: [B] });
    expect(worker(A)).toMatchObject({ weightVersion: "t1", sync: "in_sync" });
    expect(worker(B).sync).toBe("stale");
    expect(refit.status().phase).toBe("idle");
  });

  it("tensor update: a worker answering success:false, or never answering, is not updated; commit with none updated is refused", async () => {
    const { refit } = setup();
    await refit.begin();
    expect(await refit.updateTensors(A, async (answered) => answered(200, answer({ success: false, message: "shape mismatch" })))).toMatchObject({ ok: false, status: 200 });
    const thrown = await failure(refit.updateTensors(B, async () => {
      throw new Error("connection reset before the answer");
    }));
    expect(thrown).toBeInstanceOf(Error);
    expect(refit.status().updatedWorkers).toEqual([]);
    expect((await failure(() => refit.commit({ weightVersion: "t2" }))).code).toBe("invalid_request");
    // Neither took new weights (one refused, one never answered): aborting leaves no worker stale.
    expect(refit.abort()).toMatchObject({ reason: "aborted by request", staleWorkers: [] });
  });

  it("tensor update without an open refit is refused before anything is sent", async () => {
    const { refit } = setup();
    let sent = false;
    const e = await failure(refit.updateTensors(A, async () => void (sent = true)));
    expect(e.code).toBe("no_refit_in_progress");
    expect(sent).toBe(false);
    expect((await failure(() => refit.commit({ weightVersion: "x" }))).code).toBe("no_refit_in_progress");
    expect((await failure(() => refit.abort())).code).toBe("no_refit_in_progress");
  });

  it("an answer that arrives after its refit was aborted leaves the worker stale (uncommitted weights)", async () => {
    const { refit, worker } = setup();
    await refit.begin();
    let release!: () => void;
    const late = refit.updateTensors(A, async (answered) => {
      await new Promise<void>((r) => (release = r));
      answered(200, answer({ success: true }));
    });
    await Promise.resolve();
    expect(refit.abort().staleWorkers).toEqual([A]);
    release();
    await late;
    expect(worker(A).sync).toBe("stale");
    expect(refit.version).toBe("0");
  });

  it("labels: the pool's current version again is refused before anything is sent, unless it is a replay; an empty label is refused", async () => {
    const { refit, calls } = setup();
    await refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/9", weight_version: "9" }));
    const sent = calls.length;
    expect((await failure(refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/9", weight_version: "9" })))).code).toBe("weight_version_unchanged");
    expect(calls.length).toBe(sent);
    expect(refit.status().phase).toBe("idle");
    expect((await failure(() => disk({ model_path: "/ckpt/9", weight_version: "" }))).code).toBe("invalid_request");
    expect((await refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/9", weight_version: "9", replay: true }))).summary.succeeded).toBe(2);
  });

  it("two models: a refit must name one; only its workers load, and it gets its own version", async () => {
    const { refit, calls, worker } = setup(ok, { [A]: "m/a", [B]: "m/b" });
    expect((await failure(refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/1" })))).code).toBe("invalid_request");
    const r = await refit.updateWeightsFromDisk(disk({ model_path: "/ckpt/1", model: "m/a", weight_version: "a1" }));
    expect(r).toMatchObject({ weightVersion: "a1", previousWeightVersion: "0", summary: { targets: 1 } });
    expect(calls.map((c) => c.url)).toEqual([A]);
    expect([worker(A).weightVersion, worker(B).weightVersion]).toEqual(["a1", "0"]);
    expect([worker(A).sync, worker(B).sync]).toEqual(["in_sync", "in_sync"]);
    expect(refit.status()).toMatchObject({ weightVersion: "0", modelVersions: { "m/a": "a1" } });
    const slept = await refit.releaseMemory({ ...empty, model: "m/b" });
    expect(slept.results.map((x) => x.workerUrl)).toEqual([B]);
    expect([worker(A).sleeping, worker(B).sleeping]).toEqual([false, true]);
  });

  it("sleep and wake: every awake worker sleeps; waking is refused while another operation runs", async () => {
    const { refit, worker, calls } = setup();
    const slept = await refit.releaseMemory(empty);
    expect(slept.results.map((r) => r.status)).toEqual([200, 200]);
    expect([worker(A).sleeping, worker(B).sleeping]).toEqual([true, true]);
    const begun = refit.begin();
    expect((await failure(refit.resumeMemory(empty))).code).toBe("refit_in_progress");
    await begun;
    refit.abort();
    const woke = await refit.resumeMemory(empty);
    expect(woke.results).toHaveLength(2);
    expect([worker(A).sleeping, worker(B).sleeping]).toEqual([false, false]);
    expect(calls.map((c) => c.path)).toEqual(["/release_memory_occupation", "/release_memory_occupation", "/resume_memory_occupation", "/resume_memory_occupation"]);
  });
});
