// The SDK's pure parts in process: how RPC failures become RouterClientErrors,
// and how a rollout job's stream is read on demand (a scripted stream that
// counts what was read). The same paths over real sockets: sdk.test.ts and
// rollouts.test.ts.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../sdk/src/gen/sgl/diffusion/router/v1/admin_pb.js";
import { RunResponseSchema, type RunResponse } from "../sdk/src/gen/sgl/diffusion/router/v1/rollout_pb.js";
import { RouterClientError, routerErrorCode } from "../sdk/src/errors.js";
import { RolloutRun } from "../sdk/src/rollout-run.js";
import { errorFromRpc } from "../sdk/src/rpc-errors.js";

const getWorker = AdminService.method.getWorker;

describe("errorFromRpc", () => {
  it("an answered failure: the router's code from x-router-error-code, Connect's HTTP status, the request id, the ConnectError as cause", () => {
    const cause = new ConnectError("Worker not found: x", Code.NotFound, { "x-router-error-code": "worker_not_found", "x-request-id": "r-1" });
    const err = errorFromRpc(cause, getWorker);
    expect(err).toBeInstanceOf(RouterClientError);
    expect(err).toMatchObject({ status: 404, code: "worker_not_found", routerCode: "worker_not_found", rpcCode: Code.NotFound, requestId: "r-1", message: "Worker not found: x" });
    expect(err.cause).toBe(cause);
    expect(routerErrorCode(err)).toBe("worker_not_found");
  });

  it("Unauthenticated is the router's unauthenticated even without metadata", () => {
    const err = errorFromRpc(new ConnectError("admin API key required", Code.Unauthenticated, { "x-request-id": "r-2" }), getWorker);
    expect(err).toMatchObject({ status: 401, code: "unauthenticated", routerCode: "unauthenticated" });
  });

  it("an answered failure without a router code gets Connect's code name and no routerCode", () => {
    const err = errorFromRpc(new ConnectError("boom", Code.FailedPrecondition, { "content-type": "application/grpc" }), getWorker);
    expect(err).toMatchObject({ status: 400, code: "failed_precondition", routerCode: null, rpcCode: Code.FailedPrecondition });
    expect(routerErrorCode(err)).toBeUndefined();
  });

  it("without an answer: status 0 and the data plane's codes, naming the RPC", () => {
    const cases: [Code, string][] = [
      [Code.Canceled, "aborted"],
      [Code.DeadlineExceeded, "timeout"],
      [Code.Unavailable, "network_error"],
    ];
    for (const [code, expected] of cases) {
      const err = errorFromRpc(new ConnectError("gone", code), getWorker);
      expect(err).toMatchObject({ status: 0, code: expected, routerCode: null, rpcCode: code, requestId: null });
      expect(err.message).toBe("AdminService.GetWorker failed: gone");
    }
  });

  it("anything else thrown is wrapped too; a RouterClientError passes unchanged", () => {
    expect(errorFromRpc(new Error("odd"), getWorker)).toMatchObject({ code: "unknown", rpcCode: Code.Unknown });
    const same = new RouterClientError({ status: 0, code: "timeout", message: "t" });
    expect(errorFromRpc(same, getWorker)).toBe(same);
  });
});

const started = (id: string) => create(RunResponseSchema, { event: { case: "started", value: { id } } });
const result = (index: number) =>
  create(RunResponseSchema, { event: { case: "result", value: { index, status: 200, workerId: "w", weightVersion: "3", contentType: "application/json", body: new TextEncoder().encode(`{"i":${index}}`) } } });
const summary = (id: string, completed: number) => create(RunResponseSchema, { event: { case: "summary", value: { id, completed, failed: 0, cancelled: 0, reason: "" } } });

/** A scripted stream: `read` counts the lines taken; a line may be an error to throw. */
function scripted(lines: (RunResponse | Error)[]) {
  const state = { read: 0, closed: false, cancelled: [] as string[] };
  const events: AsyncIterator<RunResponse> = {
    async next() {
      if (state.closed) throw new RouterClientError({ status: 0, code: "aborted", message: "closed" });
      const line = lines[state.read];
      if (line === undefined) return { done: true, value: undefined };
      state.read++;
      if (line instanceof Error) throw line;
      return { done: false, value: line };
    },
  };
  const stream = { events, close: () => void (state.closed = true), cancel: async (id: string) => void state.cancelled.push(id) };
  return { state, stream };
}

/** Lets pending reads settle. */
const settle = () => new Promise((r) => setImmediate(r));

describe("RolloutRun", () => {
  it("reads the first line at once, further ones only on demand", async () => {
    const { state, stream } = scripted([started("j1"), result(0), result(1), result(2), summary("j1", 3)]);
    const job = new RolloutRun(stream);
    expect(await job.id).toBe("j1");
    await settle();
    expect(state.read).toBe(1);
    const it = job[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ index: 0, ok: true, weightVersion: "3" });
    await settle();
    expect(state.read).toBe(2);
  });

  it("asking for the summary reads everything; the results stay iterable", async () => {
    const { state, stream } = scripted([started("j2"), result(0), result(1), summary("j2", 2)]);
    const job = new RolloutRun(stream);
    expect(await job.summary).toEqual({ id: "j2", completed: 2, failed: 0, cancelled: 0, reason: "", completedGroups: [] });
    expect(state.read).toBe(4);
    const seen: unknown[] = [];
    for await (const r of job) seen.push(r.json());
    expect(seen).toEqual([{ i: 0 }, { i: 1 }]);
  });

  it("cancel() before iterating sends Cancel with the job's id", async () => {
    const { state, stream } = scripted([started("j3"), summary("j3", 0)]);
    const job = new RolloutRun(stream);
    await job.cancel();
    expect(state.cancelled).toEqual(["j3"]);
  });

  it("leaving the loop early closes the stream; finishing it does not", async () => {
    const early = scripted([started("j4"), result(0), result(1), summary("j4", 2)]);
    for await (const _ of new RolloutRun(early.stream)) break;
    expect(early.state.closed).toBe(true);
    const full = scripted([started("j5"), result(0), summary("j5", 1)]);
    const job = new RolloutRun(full.stream);
    for await (const _ of job) void _;
    expect(full.state.closed).toBe(false);
    expect((await job.summary).completed).toBe(1);
  });

  it("a failed stream rejects id, summary and the loop with the same error; iterating twice is a TypeError", async () => {
    const refused = new RouterClientError({ status: 401, code: "unauthenticated", message: "key" });
    const { stream } = scripted([refused]);
    const job = new RolloutRun(stream);
    await expect(job.id).rejects.toBe(refused);
    await expect(job.summary).rejects.toBe(refused);
    await expect((async () => {
      for await (const _ of job) void _;
    })()).rejects.toBe(refused);
    await expect(job[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(TypeError);
  });

  it("a stream that ends without its summary rejects it with invalid_response", async () => {
    const { stream } = scripted([started("j6"), result(0)]);
    const job = new RolloutRun(stream);
    await expect(job.summary).rejects.toMatchObject({ code: "invalid_response" });
  });
});
