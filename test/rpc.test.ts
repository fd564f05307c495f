/**
 * The AdminService through the generated client, over Connect (HTTP/1.1) and
 * gRPC (h2c) against the built router, with simulated workers as processes;
 * WatchWorkers timing; gRPC-Web and Connect over HTTP/2; gRPC server
 * reflection (v1 and v1alpha) answered from the served schema.
 */
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as reflectionV1 from "../src/gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import {
  AdminService,
  WorkerEventType,
  WorkerState,
  type WatchWorkersResponse,
} from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { isAlive, jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let router: RouterProcess;
let sims: SimProcess[] = [];
const sessions: Http2SessionManager[] = [];

/** A gRPC transport whose HTTP/2 session is closed after the file. */
function grpcTransport(baseUrl: string): Transport {
  const sessionManager = new Http2SessionManager(baseUrl);
  sessions.push(sessionManager);
  return createGrpcTransport({ baseUrl, sessionManager });
}

function connectTransport(baseUrl: string): Transport {
  return createConnectTransport({ baseUrl, httpVersion: "1.1" });
}

/** The ConnectError code of a rejected promise (fails when it resolves). */
async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("expected the call to fail");
}

/** Waits until every one of `urls` is registered and HEALTHY (takes traffic). */
async function waitHealthy(client: Client<typeof AdminService>, urls: string[]): Promise<void> {
  await waitFor(async () => {
    const { workers } = await client.listWorkers({});
    return urls.every((u) => workers.find((w) => w.url === u)?.state === WorkerState.HEALTHY);
  }, 15_000, `${urls.join(", ")} healthy`);
}

/** Random 4-aligned base port in 21000..28996, so runs and transports don't collide. */
function randomBasePort(): number {
  return 21000 + 4 * Math.floor(Math.random() * 2000);
}

async function simStats(sim: SimProcess): Promise<{ requests_by_route: Record<string, number>; weights: string; sleeping: boolean }> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}

/**
 * Reads a server stream in the background (so a timed-out wait loses
 * nothing) and stamps each message with its arrival time.
 */
function streamReader<T>(stream: AsyncIterable<T>) {
  const got: { msg: T; at: number }[] = [];
  let read = 0;
  let ended: unknown = null;
  let wake = null as (() => void) | null;
  void (async () => {
    try {
      for await (const msg of stream) {
        got.push({ msg, at: performance.now() });
        wake?.();
      }
      ended = new Error("stream ended");
    } catch (err) {
      ended = err;
    }
    wake?.();
  })();
  return {
    /** Every message seen so far. */
    all: () => got.map((g) => g.msg),
    /** The next unread message matching `pred` (others are skipped), with its arrival time. */
    async next(pred: (m: T) => boolean = () => true, timeoutMs = 5000): Promise<{ msg: T; at: number }> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (read < got.length) {
          const g = got[read++]!;
          if (pred(g.msg)) return g;
        }
        if (ended) throw ended;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching stream message in ${timeoutMs} ms; seen: ${JSON.stringify(got.map((g) => g.msg), (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = null;
      }
    },
  };
}

beforeAll(async () => {
  [router, ...sims] = await Promise.all([
    startRouterProcess(),
    startSimProcess(["--weight-load-ms", "5", "--speed", "50"]),
    startSimProcess(["--weight-load-ms", "5", "--speed", "50"]),
    startSimProcess(["--weight-load-ms", "5", "--speed", "50"]),
  ]);
}, 20_000);

afterAll(async () => {
  for (const s of sessions) s.abort();
  await Promise.all([router?.stop(), ...sims.map((s) => s.stop())]);
});

const transports: [string, (baseUrl: string) => Transport][] = [
  ["Connect over HTTP/1.1", connectTransport],
  ["gRPC over h2c", grpcTransport],
];

describe.each(transports)("AdminService over %s", (_name, makeTransport) => {
  let client: Client<typeof AdminService>;
  let a: SimProcess;
  let b: SimProcess;
  beforeAll(() => {
    client = createClient(AdminService, makeTransport(router.url));
    [a, b] = sims as [SimProcess, SimProcess];
  });

  it("AddWorker refuses bad URLs with InvalidArgument and registers a good one that takes image traffic", async () => {
    expect(await codeOf(client.addWorker({ url: "http://169.254.169.254/" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.addWorker({ url: "ftp://127.0.0.1:21" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.addWorker({ url: "" }))).toBe(Code.InvalidArgument);
    expect((await client.listWorkers({})).workers).toEqual([]);

    const added = await client.addWorker({ url: a.url });
    expect(added.created).toBe(true);
    expect(added.worker?.url).toBe(a.url);
    expect(added.worker?.isDead).toBe(false);
    // Once the pool was refit (the other transport's run did), a joining
    // worker is SYNCING until the router replayed the last weights to it.
    expect([WorkerState.HEALTHY, WorkerState.SYNCING]).toContain(added.worker?.state);
    await waitHealthy(client, [a.url]);
    expect((await client.addWorker({ url: a.url })).created).toBe(false);

    const rest = await jsonRequest(`${router.url}/workers`);
    expect(rest.status).toBe(200);
    expect(rest.body.workers.map((w: { url: string }) => w.url)).toEqual([a.url]);

    const before = (await simStats(a)).requests_by_route["POST /v1/images/generations"] ?? 0;
    const img = await jsonRequest(`${router.url}/v1/images/generations`, {
      method: "POST",
      json: { prompt: "a red cube", size: "32x32", num_inference_steps: 1, response_format: "b64_json" },
    });
    expect(img.status).toBe(200);
    expect(typeof img.body.data[0].b64_json).toBe("string");
    expect((await simStats(a)).requests_by_route["POST /v1/images/generations"]).toBe(before + 1);
  });

  it("ListWorkers and GetWorker (by URL and by worker_id)", async () => {
    await client.addWorker({ url: b.url });
    await waitHealthy(client, [a.url, b.url]);
    const { workers } = await client.listWorkers({});
    expect(workers.map((w) => w.url)).toEqual([a.url, b.url]);
    const wb = workers[1]!;
    expect(wb.workerId).toBe(encodeURIComponent(b.url));
    expect(wb.displayId).toBe(new URL(b.url).host);
    expect(wb.capabilities?.models.length).toBeGreaterThan(0);
    expect(wb.registeredAtUnixMs).toBeGreaterThan(0n);

    const byUrl = await client.getWorker({ url: b.url });
    const byId = await client.getWorker({ url: wb.workerId });
    expect(byUrl.worker?.url).toBe(b.url);
    expect(byId.worker?.url).toBe(b.url);
    expect(await codeOf(client.getWorker({ url: "http://127.0.0.1:1" }))).toBe(Code.NotFound);
  });

  it("UpdateWorker: quarantine/recover, draining, refresh_capabilities; GetRouterStatus counts", async () => {
    const q = await client.updateWorker({ url: a.url, isDead: true });
    expect(q.worker?.isDead).toBe(true);
    expect(q.worker?.state).toBe(WorkerState.DEAD);
    expect(q.worker?.deadReason).toBe("manual");
    const rest = await jsonRequest(`${router.url}/workers/${encodeURIComponent(a.url)}`);
    expect(rest.body.worker.is_dead).toBe(true);

    const status = await client.getRouterStatus({});
    expect(status).toMatchObject({ totalWorkers: 2, healthyWorkers: 1, deadWorkers: 1, sleepingWorkers: 0, routableWorkers: 1, inFlightRequests: 0, managedWorkers: 0 });
    expect(status.version).not.toBe("");
    expect(status.uptimeMs).toBeGreaterThan(0n);
    expect(status.routingAlgorithm).not.toBe("");

    const r = await client.updateWorker({ url: encodeURIComponent(a.url), isDead: false });
    expect(r.worker?.isDead).toBe(false);
    expect(r.worker?.state).toBe(WorkerState.HEALTHY);

    const d = await client.updateWorker({ url: b.url, draining: true });
    expect(d.worker?.draining).toBe(true);
    expect(d.worker?.state).toBe(WorkerState.DRAINING);
    expect((await client.getRouterStatus({})).routableWorkers).toBe(1);
    const u = await client.updateWorker({ url: b.url, draining: false });
    expect(u.worker?.draining).toBe(false);
    expect(u.worker?.state).toBe(WorkerState.HEALTHY);

    const c = await client.updateWorker({ url: b.url, refreshCapabilities: true });
    expect(c.worker?.capabilities?.taskType).toBe("T2I");
    expect(c.worker?.capabilities?.models).toContain("Qwen/Qwen-Image");
    expect(c.worker?.capabilities?.videoSupport).toBe(false);

    expect(await codeOf(client.updateWorker({ url: "http://127.0.0.1:1", isDead: true }))).toBe(Code.NotFound);
    expect(await client.getRouterStatus({})).toMatchObject({ totalWorkers: 2, healthyWorkers: 2, deadWorkers: 0, routableWorkers: 2 });
  });

  it("UpdateWeightsFromDisk answers each worker's status and JSON body; model_path is required", async () => {
    const path = `/ckpt/step-${Math.floor(Math.random() * 1e6)}`;
    const { results } = await client.updateWeightsFromDisk({ modelPath: path, flushCache: true, targetModules: ["transformer"] });
    expect(results.map((r) => r.workerUrl).sort()).toEqual([a.url, b.url].sort());
    for (const r of results) {
      expect(r.statusCode).toBe(200);
      expect(r.body?.kind.case).toBe("structValue");
      const body = r.body?.kind.value as { fields: Record<string, { kind: { case: string; value: unknown } }> };
      expect(body.fields.success?.kind).toEqual({ case: "boolValue", value: true });
      expect(body.fields.message?.kind.value).toBe("Updated 1 module (transformer).");
    }
    expect((await simStats(a)).weights).toBe(path);
    expect((await simStats(b)).weights).toBe(path);
    expect(await codeOf(client.updateWeightsFromDisk({}))).toBe(Code.InvalidArgument);
  });

  it("Release/ResumeMemoryOccupation put workers to sleep and wake them (REST and RPC agree)", async () => {
    const rel = await client.releaseMemoryOccupation({});
    expect(rel.results.map((r) => r.statusCode)).toEqual([200, 200]);
    expect((await client.listWorkers({})).workers.map((w) => [w.isSleeping, w.state])).toEqual([
      [true, WorkerState.SLEEPING],
      [true, WorkerState.SLEEPING],
    ]);
    expect((await jsonRequest(`${router.url}/workers`)).body.workers.map((w: { is_sleeping: boolean }) => w.is_sleeping)).toEqual([true, true]);
    expect((await simStats(a)).sleeping).toBe(true);
    expect((await client.getRouterStatus({})).sleepingWorkers).toBe(2);

    const res = await client.resumeMemoryOccupation({});
    expect(res.results.map((r) => r.statusCode)).toEqual([200, 200]);
    expect((await client.listWorkers({})).workers.map((w) => w.isSleeping)).toEqual([false, false]);
    expect((await jsonRequest(`${router.url}/workers`)).body.workers.map((w: { is_sleeping: boolean }) => w.is_sleeping)).toEqual([false, false]);
    expect((await simStats(a)).sleeping).toBe(false);
  });

  it("RemoveWorker (then NotFound); a worker removed by REST DELETE is gone from ListWorkers", async () => {
    const removed = await client.removeWorker({ url: b.url });
    expect(removed.worker?.url).toBe(b.url);
    expect(await codeOf(client.getWorker({ url: b.url }))).toBe(Code.NotFound);
    expect(await codeOf(client.removeWorker({ url: b.url }))).toBe(Code.NotFound);
    expect((await client.listWorkers({})).workers.map((w) => w.url)).toEqual([a.url]);

    const del = await jsonRequest(`${router.url}/workers/${encodeURIComponent(a.url)}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect((await client.listWorkers({})).workers).toEqual([]);
  });

  it("LaunchWorkers (inline config and yaml), ListManagedWorkers, ScaleManagedWorkers up/down, StopManagedWorkers", async () => {
    const base = randomBasePort();
    const config = { backend: "sim", model: "Qwen/Qwen-Image", numWorkers: 1, workerBasePort: base, waitTimeout: 20 };
    const yaml = `launcher:\n  backend: sim\n  model: Qwen/Qwen-Image\n  num_workers: 1\n  worker_base_port: ${base + 100}\n  wait_timeout: 20\n`;
    const [inline, fromYaml] = await Promise.all([
      client.launchWorkers({ source: { case: "config", value: config } }),
      client.launchWorkers({ source: { case: "yaml", value: yaml } }),
    ]);
    expect(inline.workers).toHaveLength(1);
    expect(fromYaml.workers).toHaveLength(1);
    const w1 = inline.workers[0]!;
    const w2 = fromYaml.workers[0]!;
    for (const w of [w1, w2]) {
      expect(w.state).toBe("ready");
      expect(w.backend).toBe("sim");
      expect(isAlive(w.pid)).toBe(true);
    }
    expect(w1.port).toBeGreaterThanOrEqual(base);
    expect(w2.port).toBeGreaterThanOrEqual(base + 100);

    expect((await client.listManagedWorkers({})).workers.map((w) => w.url).sort()).toEqual([w1.url, w2.url].sort());
    const registered = (await client.listWorkers({})).workers;
    expect(registered.map((w) => w.url).sort()).toEqual([w1.url, w2.url].sort());
    expect(registered.every((w) => w.managed)).toBe(true);
    expect((await client.getRouterStatus({})).managedWorkers).toBe(2);

    const up = await client.scaleManagedWorkers({ source: { case: "config", value: config }, count: 2 });
    expect(up.started).toHaveLength(1);
    expect(up.stopped).toEqual([]);
    expect(up.workers).toHaveLength(3);
    const w3 = up.started[0]!;
    expect(w3.state).toBe("ready");
    expect(isAlive(w3.pid)).toBe(true);
    expect((await client.listWorkers({})).workers.map((w) => w.url)).toContain(w3.url);

    const down = await client.scaleManagedWorkers({ source: { case: "config", value: config }, count: 1 });
    expect(down.started).toEqual([]);
    expect(down.stopped.map((w) => w.url)).toEqual([w3.url]);
    expect(down.workers.map((w) => w.url).sort()).toEqual([w1.url, w2.url].sort());
    expect(() => process.kill(w3.pid, 0)).toThrow();
    expect((await client.listWorkers({})).workers.map((w) => w.url)).not.toContain(w3.url);

    const stopped = await client.stopManagedWorkers({});
    expect(stopped.workers.map((w) => w.url).sort()).toEqual([w1.url, w2.url].sort());
    expect(stopped.workers.every((w) => w.state === "exited")).toBe(true);
    expect(() => process.kill(w1.pid, 0)).toThrow();
    expect(() => process.kill(w2.pid, 0)).toThrow();
    expect((await client.listManagedWorkers({})).workers).toEqual([]);
    expect((await client.listWorkers({})).workers).toEqual([]);

    expect(await codeOf(client.launchWorkers({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.launchWorkers({ source: { case: "yaml", value: "launcher: [" } }))).toBe(Code.InvalidArgument);
    // Typed Slurm options go through the YAML's checks: refused with another backend, naming the key.
    const slurmOnSim = await client.launchWorkers({ source: { case: "config", value: { backend: "sim", model: "Qwen/Qwen-Image", slurm: { partition: "gpu" } } } }).catch((e: unknown) => ConnectError.from(e));
    expect(slurmOnSim).toBeInstanceOf(ConnectError);
    expect((slurmOnSim as ConnectError).code).toBe(Code.InvalidArgument);
    expect((slurmOnSim as ConnectError).rawMessage).toMatch(/launcher\.slurm .*only valid with launcher\.backend: slurm/);
    expect((await client.listManagedWorkers({})).workers).toEqual([]);
  }, 30_000);

  it("LaunchWorkers with a yaml of two groups (image and video); ScaleManagedWorkers takes one group, not a list", async () => {
    const base = randomBasePort();
    const wan = "Wan-AI/Wan2.2-T2V-A14B-Diffusers";
    const image = `  - backend: sim\n    model: Qwen/Qwen-Image\n    num_workers: 1\n    worker_base_port: ${base}\n    wait_timeout: 20\n`;
    const video = `  - backend: sim\n    model: ${wan}\n    num_workers: 1\n    worker_base_port: ${base + 100}\n    wait_timeout: 20\n`;
    const launched = await client.launchWorkers({ source: { case: "yaml", value: `launcher:\n${image}${video}` } });
    expect(launched.workers.map((w) => [w.state, w.model])).toEqual([
      ["ready", "Qwen/Qwen-Image"],
      ["ready", wan],
    ]);
    expect((await client.listManagedWorkers({})).workers.map((w) => w.model)).toEqual(["Qwen/Qwen-Image", wan]);
    // The router sees the video worker's task type, so it takes video jobs.
    const videoUrl = launched.workers[1]!.url;
    await waitFor(async () => (await client.getWorker({ url: videoUrl })).worker?.capabilities?.videoSupport === true || undefined, 10_000, "video support");

    // Which group a list means is ambiguous: refused, naming the reason.
    const both = await client.scaleManagedWorkers({ source: { case: "yaml", value: `launcher:\n${image}${video}` }, count: 2 }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(both?.code).toBe(Code.InvalidArgument);
    expect(both?.rawMessage).toMatch(/ScaleManagedWorkers scales one group of workers, but the yaml lists 2 launcher groups/);
    // One group, as a one-item list: only the video workers change.
    const up = await client.scaleManagedWorkers({ source: { case: "yaml", value: `launcher:\n${video}` }, count: 2 });
    expect(up.started.map((w) => [w.state, w.model])).toEqual([["ready", wan]]);
    expect(up.workers.map((w) => w.model)).toEqual(["Qwen/Qwen-Image", wan, wan]);

    const stopped = await client.stopManagedWorkers({});
    expect(stopped.workers).toHaveLength(3);
    for (const w of stopped.workers) expect(isAlive(w.pid)).toBe(false);
    expect((await client.listWorkers({})).workers).toEqual([]);
  }, 30_000);

  it("WatchWorkers: EXISTING then SYNCED, then each REST change within 1 s", async () => {
    const [a, b, c] = sims as [SimProcess, SimProcess, SimProcess];
    await client.addWorker({ url: a.url });
    await client.addWorker({ url: b.url });
    await waitHealthy(client, [a.url, b.url]);
    const abort = new AbortController();
    const watch = streamReader(client.watchWorkers({}, { signal: abort.signal }));
    try {
      const first = [(await watch.next()).msg, (await watch.next()).msg, (await watch.next()).msg];
      expect(first.map((e) => [e.type, e.worker?.url])).toEqual([
        [WorkerEventType.EXISTING, a.url],
        [WorkerEventType.EXISTING, b.url],
        [WorkerEventType.SYNCED, undefined],
      ]);

      let t0 = performance.now();
      expect((await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: c.url } })).status).toBe(200);
      const added = await watch.next((e) => e.type === WorkerEventType.ADDED);
      expect(added.msg.worker?.url).toBe(c.url);
      expect(added.at - t0).toBeLessThan(1000);

      t0 = performance.now();
      expect((await jsonRequest(`${router.url}/workers/${encodeURIComponent(c.url)}`, { method: "PUT", json: { is_dead: true } })).status).toBe(200);
      const quarantined = await watch.next((e) => e.type === WorkerEventType.UPDATED && e.worker?.isDead === true);
      expect(quarantined.msg.worker?.url).toBe(c.url);
      expect(quarantined.msg.reason).toBe("quarantined");
      expect(quarantined.at - t0).toBeLessThan(1000);

      t0 = performance.now();
      expect((await jsonRequest(`${router.url}/workers/${encodeURIComponent(c.url)}`, { method: "DELETE" })).status).toBe(200);
      const removed = await watch.next((e) => e.type === WorkerEventType.REMOVED);
      expect(removed.msg.worker?.url).toBe(c.url);
      expect(removed.at - t0).toBeLessThan(1000);
    } finally {
      abort.abort();
    }
  });

  it("WatchWorkers with exclude_load leaves out load events", async () => {
    const [a] = sims as [SimProcess];
    const abort = new AbortController();
    const all = streamReader(client.watchWorkers({ excludeLoad: false }, { signal: abort.signal }));
    const quiet = streamReader(client.watchWorkers({ excludeLoad: true }, { signal: abort.signal }));
    try {
      await all.next((e) => e.type === WorkerEventType.SYNCED);
      await quiet.next((e) => e.type === WorkerEventType.SYNCED);
      const img = await jsonRequest(`${router.url}/v1/images/generations`, {
        method: "POST",
        json: { prompt: "load", size: "32x32", num_inference_steps: 1, response_format: "b64_json" },
      });
      expect(img.status).toBe(200);
      // A marker change after the load: both streams see it, in order.
      await client.updateWorker({ url: a.url, draining: true });
      const isMarker = (e: WatchWorkersResponse) => e.type === WorkerEventType.UPDATED && e.reason === "draining";
      await all.next(isMarker);
      await quiet.next(isMarker);
      expect(all.all().filter((e) => e.reason === "load").length).toBeGreaterThan(0);
      expect(quiet.all().filter((e) => e.reason === "load")).toEqual([]);
    } finally {
      abort.abort();
      await client.updateWorker({ url: a.url, draining: false });
      for (const w of (await client.listWorkers({})).workers) await client.removeWorker({ url: w.url });
    }
  });
});

describe("WatchWorkers sends changes only", () => {
  it("probes that find a healthy worker healthy send nothing; a new worker's first event is ADDED; its removal REMOVED", async () => {
    const r = await startRouterProcess(["--health-check-interval", "0.1", "--worker-urls", sims[0]!.url]);
    const abort = new AbortController();
    try {
      const client = createClient(AdminService, createGrpcTransport({ baseUrl: r.url }));
      // The start-up registration is over (model card read, weights known): from now on, nothing changes.
      await waitFor(async () => (await jsonRequest(`${r.url}/workers`)).body.workers.every((w: any) => w.task_type === "T2I" && w.state === "healthy" && w.weight_version === "0"), 15_000, "worker probed");
      const events = streamReader(client.watchWorkers({ excludeLoad: true }, { signal: abort.signal }));
      await events.next((e) => e.type === WorkerEventType.SYNCED);
      // Ten probes of the first worker run meanwhile (one at a time: the eleventh started means ten finished).
      const probes = async () => (await simStats(sims[0]!)).requests_by_route["GET /health"] ?? 0;
      const probed = await probes();
      await waitFor(async () => (await probes()) >= probed + 11, 15_000, "ten more probes of the first worker");
      await client.addWorker({ url: sims[1]!.url });
      const first = await events.next((e) => e.worker?.url === sims[1]!.url);
      expect(first.msg.type).toBe(WorkerEventType.ADDED);
      await client.removeWorker({ url: sims[1]!.url });
      await events.next((e) => e.type === WorkerEventType.REMOVED && e.worker?.url === sims[1]!.url);
      const after = events.all().slice(events.all().findIndex((e) => e.type === WorkerEventType.SYNCED) + 1);
      // Nothing about the unchanged first worker; the second: ADDED, maybe UPDATEs that changed something, REMOVED.
      expect(after.filter((e) => e.worker?.url === sims[0]!.url).map((e) => [e.reason, e.worker?.state, e.worker?.capabilities?.taskType, e.worker?.weightVersion, e.worker?.lastError])).toEqual([]);
      const second = after.filter((e) => e.worker?.url === sims[1]!.url);
      expect(second[0]!.type).toBe(WorkerEventType.ADDED);
      expect(second.at(-1)!.type).toBe(WorkerEventType.REMOVED);
      for (let i = 1; i < second.length - 1; i++) expect(second[i]!.type).toBe(WorkerEventType.UPDATED);
    } finally {
      abort.abort();
      await r.stop();
    }
  });
});

describe("other transports", () => {
  it("gRPC-Web: one unary call", async () => {
    const client = createClient(AdminService, createGrpcWebTransport({ baseUrl: router.url, httpVersion: "1.1" }));
    await client.addWorker({ url: sims[0]!.url });
    try {
      expect((await client.listWorkers({})).workers.map((w) => w.url)).toEqual([sims[0]!.url]);
    } finally {
      await client.removeWorker({ url: sims[0]!.url });
    }
  });

  it("Connect over HTTP/2: one call", async () => {
    const sessionManager = new Http2SessionManager(router.url);
    sessions.push(sessionManager);
    const client = createClient(AdminService, createConnectTransport({ baseUrl: router.url, httpVersion: "2", sessionManager }));
    const status = await client.getRouterStatus({});
    expect(status.totalWorkers).toBe(0);
    expect(status.version).not.toBe("");
  });
});

describe("gRPC server reflection", () => {
  type Req = reflectionV1.ServerReflectionRequest["messageRequest"];
  type Res = reflectionV1.ServerReflectionResponse;
  let ask: (requests: Req[]) => Promise<Res[]>;
  beforeAll(() => {
    const client = createClient(reflectionV1.ServerReflection, grpcTransport(router.url));
    ask = async (requests) => {
      async function* input() {
        for (const messageRequest of requests) yield create(reflectionV1.ServerReflectionRequestSchema, { host: "h", messageRequest });
      }
      const out: Res[] = [];
      for await (const res of client.serverReflectionInfo(input())) out.push(res);
      return out;
    };
  });

  const decode = (res: Res): FileDescriptorProto[] => {
    expect(res.messageResponse.case).toBe("fileDescriptorResponse");
    const files = (res.messageResponse.value as reflectionV1.FileDescriptorResponse).fileDescriptorProto;
    return files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  };

  it("list_services names the AdminService, the RolloutService and the reflection services", async () => {
    const [res] = await ask([{ case: "listServices", value: "*" }]);
    expect(res!.validHost).toBe("h");
    expect(res!.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    expect(res!.messageResponse.case).toBe("listServicesResponse");
    const names = (res!.messageResponse.value as reflectionV1.ListServiceResponse).service.map((s) => s.name).sort();
    expect(names).toEqual(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "sgl.diffusion.router.v1.AdminService", "sgl.diffusion.router.v1.RolloutService"]);
  });

  it("file_containing_symbol answers the file and its dependencies for services, methods, messages, enums", async () => {
    const symbols = [
      "sgl.diffusion.router.v1.AdminService",
      "sgl.diffusion.router.v1.AdminService.WatchWorkers",
      "sgl.diffusion.router.v1.WorkerResult",
      ".sgl.diffusion.router.v1.Worker",
      "sgl.diffusion.router.v1.WorkerState",
      "sgl.diffusion.router.v1.WORKER_STATE_HEALTHY",
      "sgl.diffusion.router.v1.Worker.worker_id",
      "sgl.diffusion.router.v1.LaunchWorkersRequest.source",
    ];
    const answers = await ask(symbols.map((value) => ({ case: "fileContainingSymbol", value })));
    expect(answers).toHaveLength(symbols.length);
    for (const res of answers) {
      const files = decode(res);
      expect(files.map((f) => f.name)).toEqual(["sgl/diffusion/router/v1/admin.proto", "google/protobuf/struct.proto"]);
      expect(files[0]!.dependency).toEqual(["google/protobuf/struct.proto"]);
    }
    // The answered descriptors are a complete schema: the service and its types resolve.
    const reg = createFileRegistry(create(FileDescriptorSetSchema, { file: decode(answers[0]!).reverse() }));
    const svc = reg.getService("sgl.diffusion.router.v1.AdminService");
    expect(svc?.methods.map((m) => m.name)).toEqual(AdminService.methods.map((m) => m.name));
    expect(svc?.methods.find((m) => m.name === "WatchWorkers")?.methodKind).toBe("server_streaming");
    expect(reg.getMessage("sgl.diffusion.router.v1.WorkerResult")?.field.body?.message?.typeName).toBe("google.protobuf.Value");

    const [own] = await ask([{ case: "fileContainingSymbol", value: "grpc.reflection.v1.ServerReflection" }]);
    expect(decode(own!).map((f) => f.name)).toEqual(["grpc/reflection/v1/reflection.proto"]);
  });

  it("file_by_filename; unknown names and extensions answer error_response NOT_FOUND (5)", async () => {
    const answers = await ask([
      { case: "fileByFilename", value: "google/protobuf/struct.proto" },
      { case: "fileByFilename", value: "sgl/diffusion/router/v1/admin.proto" },
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingSymbol", value: "sgl.diffusion.router.v1.NoSuchThing" },
      { case: "fileContainingExtension", value: create(reflectionV1.ExtensionRequestSchema, { containingType: "sgl.diffusion.router.v1.Worker", extensionNumber: 100 }) },
      { case: "allExtensionNumbersOfType", value: "sgl.diffusion.router.v1.NoSuchThing" },
      { case: "allExtensionNumbersOfType", value: "sgl.diffusion.router.v1.Worker" },
    ]);
    expect(decode(answers[0]!).map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
    expect(decode(answers[1]!).map((f) => f.name)).toEqual(["sgl/diffusion/router/v1/admin.proto", "google/protobuf/struct.proto"]);
    for (const res of answers.slice(2, 6)) {
      expect(res.messageResponse.case).toBe("errorResponse");
      const err = res.messageResponse.value as reflectionV1.ErrorResponse;
      expect(err.errorCode).toBe(5);
      expect(err.errorMessage).not.toBe("");
    }
    expect((answers[3]!.messageResponse.value as reflectionV1.ErrorResponse).errorMessage).toContain("sgl.diffusion.router.v1.NoSuchThing");
    // A known message without extensions: an empty list, as upstream servers answer.
    expect(answers[6]!.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: create(reflectionV1.ExtensionNumberResponseSchema, { baseTypeName: "sgl.diffusion.router.v1.Worker", extensionNumber: [] }),
    });
  });

  it("v1alpha answers the same, and over Connect on HTTP/2", async () => {
    const sessionManager = new Http2SessionManager(router.url);
    sessions.push(sessionManager);
    const client = createClient(reflectionV1alpha.ServerReflection, createConnectTransport({ baseUrl: router.url, httpVersion: "2", sessionManager }));
    async function* input() {
      yield create(reflectionV1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(reflectionV1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "sgl.diffusion.router.v1.ListWorkersRequest" } });
      yield create(reflectionV1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "nope" } });
    }
    const out: reflectionV1alpha.ServerReflectionResponse[] = [];
    for await (const res of client.serverReflectionInfo(input())) out.push(res);
    expect(out.map((r) => r.messageResponse.case)).toEqual(["listServicesResponse", "fileDescriptorResponse", "errorResponse"]);
    const files = (out[1]!.messageResponse.value as reflectionV1alpha.FileDescriptorResponse).fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    expect(files).toEqual(["sgl/diffusion/router/v1/admin.proto", "google/protobuf/struct.proto"]);
    expect((out[2]!.messageResponse.value as reflectionV1alpha.ErrorResponse).errorCode).toBe(5);
  });
});
