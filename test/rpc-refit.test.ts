/**
 * The refit RPCs: the same coordinator as the REST routes, reached through
 * the generated client over gRPC (h2c) against the built router.
 */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { AdminService, UpdateWeightsFromDiskResponseSchema, WorkerState } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function setup(simArgs: string[][]): Promise<{ r: RouterProcess; sims: SimProcess[]; admin: Client<typeof AdminService> }> {
  const sims = await Promise.all(simArgs.map((a) => startSimProcess(a)));
  for (const s of sims) cleanup.push(() => s.stop());
  const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--worker-urls", ...sims.map((s) => s.url)]);
  cleanup.push(() => r.stop());
  const sessionManager = new Http2SessionManager(r.url);
  cleanup.push(() => sessionManager.abort());
  return { r, sims, admin: createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager })) };
}

async function generate(base: string) {
  const res = await fetch(`${base}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" }),
  });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get("x-weight-version"), weights: res.headers.get("x-sim-weights"), worker: res.headers.get("x-sim-worker") };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("refit RPCs", () => {
  it("UpdateWeightsFromDisk returns the new version and per-worker results; a partial failure is UNAVAILABLE with the results as error detail", async () => {
    const { r, sims, admin } = await setup([[], ["--fail-updates"]]);
    const err = await failure(admin.updateWeightsFromDisk({ modelPath: "ckpt/rpc-1", weightVersion: "rpc-1" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.metadata.get("x-router-error-code")).toBe("upstream_failed");
    const [detail] = err.findDetails(UpdateWeightsFromDiskResponseSchema);
    expect(detail?.weightVersion).toBe("rpc-1");
    expect(detail?.summary).toMatchObject({ targets: 2, succeeded: 1, failed: 1 });
    expect(detail?.summary?.failedWorkers[0]?.workerUrl).toBe(sims[1]!.url);
    const body = detail?.results.find((x) => x.workerUrl === sims[0]!.url)?.body;
    expect(toJson(ValueSchema, body!)).toMatchObject({ success: true });

    const { workers } = await admin.listWorkers({});
    expect(workers.find((w) => w.url === sims[1]!.url)?.state).toBe(WorkerState.STALE);
    expect(workers.find((w) => w.url === sims[0]!.url)?.weightVersion).toBe("rpc-1");
    expect((await admin.getRouterStatus({})).weightVersion).toBe("rpc-1");
    const answer = await generate(r.url);
    expect([answer.status, answer.version, answer.worker]).toEqual([200, "rpc-1", sims[0]!.url]);
  });

  it("BeginRefit, UpdateWeightsFromTensor per worker, CommitRefit; a second BeginRefit is FAILED_PRECONDITION", async () => {
    const { r, sims, admin } = await setup([[], []]);
    const begin = await admin.beginRefit({ timeoutS: 30 });
    expect(begin.workers.sort()).toEqual(sims.map((s) => s.url).sort());
    expect((await failure(admin.beginRefit({}))).code).toBe(Code.FailedPrecondition);
    expect((await admin.getRefitStatus({})).phase).toBe("open");
    const held = generate(r.url);
    for (const s of sims) {
      const { result } = await admin.updateWeightsFromTensor({ url: s.url, body: { serialized_named_tensors: ["ipc"], load_format: "flattened_bucket", weight_version: "t-rpc" } });
      expect(result?.statusCode).toBe(200);
    }
    expect((await admin.getRefitStatus({})).updatedWorkers.sort()).toEqual(sims.map((s) => s.url).sort());
    const commit = await admin.commitRefit({ weightVersion: "t-rpc" });
    expect(commit.staleWorkers).toEqual([]);
    expect(commit.previousWeightVersion).toBe("0");
    expect(await held).toMatchObject({ status: 200, version: "t-rpc", weights: "tensor:t-rpc" });
    expect((await jsonRequest(`${r.url}/refit`)).body).toMatchObject({ phase: "idle", weight_version: "t-rpc" });
  });

  it("UpdateWeightsFromTensor without an open refit is FAILED_PRECONDITION; AbortRefit releases held requests", async () => {
    const { r, sims, admin } = await setup([[]]);
    const outside = await failure(admin.updateWeightsFromTensor({ url: sims[0]!.url, body: { serialized_named_tensors: ["x"] } }));
    expect(outside.code).toBe(Code.FailedPrecondition);
    expect(outside.metadata.get("x-router-error-code")).toBe("no_refit_in_progress");
    await admin.beginRefit({});
    const held = generate(r.url);
    const aborted = await admin.abortRefit({});
    expect(aborted.weightVersion).toBe("0");
    expect(await held).toMatchObject({ status: 200, version: "0" });
    expect((await failure(admin.abortRefit({}))).code).toBe(Code.FailedPrecondition);
  });

  it("ReleaseMemoryOccupation and ResumeMemoryOccupation go through the same drain and state", async () => {
    const { r, admin } = await setup([[], []]);
    const released = await admin.releaseMemoryOccupation({ drainTimeoutS: 5 });
    expect(released.results.map((x) => x.statusCode)).toEqual([200, 200]);
    expect((await jsonRequest(`${r.url}/health`)).body.sleeping_workers).toBe(2);
    const resumed = await admin.resumeMemoryOccupation({});
    expect(resumed.results.map((x) => x.statusCode)).toEqual([200, 200]);
    expect((await generate(r.url)).status).toBe(200);
  });
});
