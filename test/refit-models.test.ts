/**
 * Refits and sleep/wake that target one model in a pool serving two (issue
 * 24), over sockets: the other model's workers keep serving meanwhile.
 */
import { afterEach, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const A = "Qwen/Qwen-Image";
const B = "sim/other-image";

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function generate(r: RouterProcess, model: string) {
  const res = await fetch(`${r.url}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" }),
  });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get("x-weight-version"), worker: res.headers.get("x-sim-worker"), atMs: Date.now() };
}

const stats = async (s: SimProcess) => (await jsonRequest(`${s.url}/sim/stats`)).body;

describe("refits and sleep/wake of one model (issue 24)", () => {
  it("a two-model pool needs model on a refit; the named model's workers update while the other model keeps serving; versions per model", async () => {
    const a = await startSimProcess(["--model-path", A, "--weight-load-ms", "2000"]);
    const b = await startSimProcess(["--model-path", B, "--task-type", "T2I"]);
    cleanup.push(() => a.stop(), () => b.stop());
    const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--worker-urls", a.url, b.url]);
    cleanup.push(() => r.stop());

    const untargeted = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/1" } });
    expect(untargeted.status).toBe(400);
    expect(untargeted.body).toMatchObject({ code: "invalid_request", param: "model" });
    expect(untargeted.body.error).toContain(A);

    // B's traffic flows while A loads for 2 s.
    const refit = jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/a1", model: A, weight_version: "a1" } });
    // A has the update (a fixed 300 ms sleep here let a loaded machine send A's request before the refit reached A).
    await waitFor(async () => (await stats(a)).weight_updates.length === 1, 10_000, "the update on A");
    const startedAtMs = Date.now();
    const duringB = await generate(r, B);
    const duringA = generate(r, A);
    const done = await refit;
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ weight_version: "a1", previous_weight_version: "0", summary: { targets: 1, succeeded: 1 } });
    const refitEndedMs = Date.now();
    expect(duringB).toMatchObject({ status: 200, version: "0" });
    expect(duringB.atMs).toBeLessThan(refitEndedMs);
    expect(duringB.atMs - startedAtMs).toBeLessThan(1500);
    // A's request waited for A's new weights.
    expect(await duringA).toMatchObject({ status: 200, version: "a1" });
    expect((await stats(a)).requests_by_route["POST /update_weights_from_disk"]).toBe(1);
    expect((await stats(b)).requests_by_route["POST /update_weights_from_disk"] ?? 0).toBe(0);

    const health = await jsonRequest(`${r.url}/health`);
    expect(health.body).toMatchObject({ status: "healthy", weight_version: "0", weight_versions: { [A]: "a1" } });
    const workers = (await jsonRequest(`${r.url}/workers`)).body.workers;
    expect(Object.fromEntries(workers.map((w: any) => [w.models[0], w.weight_version]))).toEqual({ [A]: "a1", [B]: "0" });
    // The label is checked against the named model's version.
    expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/a1", model: A, weight_version: "a1" } })).status).toBe(409);
    expect((await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "x", model: "nobody/serves-this" } })).body).toMatchObject({ code: "invalid_request", param: "model" });

    // Sleep B only: A keeps serving, /health stays healthy; wake B.
    const slept = await jsonRequest(`${r.url}/release_memory_occupation`, { method: "POST", json: { model: B } });
    expect(slept.body).toMatchObject({ changed: true, results: [{ worker_url: b.url, status_code: 200 }] });
    expect((await stats(b)).sleeping).toBe(true);
    expect((await stats(a)).sleeping).toBe(false);
    expect(await generate(r, A)).toMatchObject({ status: 200, version: "a1" });
    expect((await jsonRequest(`${r.url}/health`)).body).toMatchObject({ status: "healthy", sleeping_workers: 1 });
    const woke = await jsonRequest(`${r.url}/resume_memory_occupation`, { method: "POST", json: { model: B } });
    expect(woke.body).toMatchObject({ changed: true, results: [{ worker_url: b.url, status_code: 200 }] });
    expect(await generate(r, B)).toMatchObject({ status: 200, version: "0" });
  });
});
