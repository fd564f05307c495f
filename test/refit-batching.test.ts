/**
 * A refit under dynamic batching mixes no versions. The workers batch as
 * SGLang's `--batching-mode dynamic` does: the queue's head waits for
 * partners with the same sampling signature, and its scan skips what is not
 * a generation, so a generation queued behind a weight update can join a
 * batch ahead of it and run on the old weights. Only the router's hold and
 * drain keep that from happening: generations sent while the refit runs wait
 * in the router, and the update reaches a worker with nothing queued.
 *
 * The sim stamps each answer with the weights that made it (`x-sim-weights`)
 * and the scheduler dispatch it ran in (`x-sim-batch: <dispatch>/<size>`,
 * sim-only introspection); the router stamps the version it served under
 * (`x-weight-version`). Checked: each answer's weights are its version's,
 * no batch holds two versions, and nothing sent after the refit's answer
 * came back on the old weights.
 */
import { afterEach, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { requestLoops } from "./helpers/clients.js";

const BASE = "Qwen/Qwen-Image";
const NEW = "ckpt/step-1";
/** One batchable shape (~60 ms alone at --speed 0.1); prompts and seeds differ per request. */
const shape = { size: "256x256", num_inference_steps: 10, response_format: "b64_json" };

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

async function sim(args: string[]): Promise<SimProcess> {
  const s = await startSimProcess(args);
  cleanup.push(() => s.stop());
  return s;
}

async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", ...args]);
  cleanup.push(() => r.stop());
  return r;
}

interface Answer {
  sentAtMs: number;
  status: number;
  version: string | null;
  weights: string | null;
  worker: string | null;
  /** `<worker> <dispatch>`: equal for answers that ran in one batch. */
  batch: string;
  batchSize: number;
}

let sequence = 0;
async function generate(base: string): Promise<Answer> {
  const sentAtMs = Date.now();
  const n = sequence++;
  const res = await fetch(`${base}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: `p${n}`, seed: n, ...shape }),
  });
  await res.arrayBuffer();
  const [dispatch = "?", size = "0"] = (res.headers.get("x-sim-batch") ?? "").split("/");
  const worker = res.headers.get("x-sim-worker");
  return { sentAtMs, status: res.status, version: res.headers.get("x-weight-version"), weights: res.headers.get("x-sim-weights"), worker, batch: `${worker} ${dispatch}`, batchSize: Number(size) };
}

/** `clients` loops of generations until stop() (helpers/clients.ts). */
function load(base: string, clients: number) {
  return requestLoops(() => generate(base), clients);
}

/** Every answer of each batch, by batch. */
function batches(answers: Answer[]): Map<string, Answer[]> {
  const by = new Map<string, Answer[]>();
  for (const a of answers) by.set(a.batch, [...(by.get(a.batch) ?? []), a]);
  return by;
}

/** What a refit made: the version the router serves under, the weights the sims then hold. */
type Refit = (r: RouterProcess, sims: SimProcess[]) => Promise<{ version: string; weights: string }>;

/**
 * Two batching workers behind a `--worker-batch-size 4` router, 16 clients
 * sending one batchable shape; `refit` runs once 40 answers came on the old
 * weights; the load goes on until 40 requests sent after the refit's answer
 * were answered.
 */
async function refitUnderBatching(refit: Refit): Promise<void> {
  const simArgs = ["--batching-max-size", "4", "--batching-delay-ms", "50", "--weight-load-ms", "300", "--speed", "0.1"];
  const sims = await Promise.all([sim(simArgs), sim(simArgs)]);
  const r = await router(["--worker-batch-size", "4", "--worker-urls", ...sims.map((s) => s.url)]);
  const traffic = load(r.url, 16);
  await waitFor(() => traffic.answers.filter((a) => a.version === "0").length >= 40, 15_000, "traffic answered on the old weights");
  const done = await refit(r, sims);
  const refitAnsweredMs = Date.now();
  await waitFor(() => traffic.answers.filter((a) => a.sentAtMs > refitAnsweredMs).length >= 40, 15_000, "traffic sent after the refit answered");
  await traffic.stop();

  expect(traffic.errors).toEqual([]);
  expect(traffic.answers.filter((a) => a.status !== 200)).toEqual([]);
  // The workers did batch, before and after the refit (else nothing here could mix).
  const batched = (v: string) => traffic.answers.filter((a) => a.version === v && a.batchSize > 1).length;
  expect(batched("0")).toBeGreaterThan(10);
  expect(batched(done.version)).toBeGreaterThan(10);
  // Each answer came from the weights of the version the router served it under.
  const weightsOf = (v: string | null) => (v === "0" ? BASE : v === done.version ? done.weights : `? (version ${v})`);
  expect(traffic.answers.filter((a) => a.weights !== weightsOf(a.version))).toEqual([]);
  // No batch the sim ran holds two versions (or two weights).
  for (const [id, members] of batches(traffic.answers)) {
    expect({ id, versions: [...new Set(members.map((m) => m.version))] }).toEqual({ id, versions: [members[0]!.version] });
    expect(new Set(members.map((m) => m.weights)).size).toBe(1);
  }
  // A generation sent after the refit's answer never came back on the old weights.
  const late = traffic.answers.filter((a) => a.sentAtMs > refitAnsweredMs);
  expect(late.filter((a) => a.weights !== done.weights)).toEqual([]);
}

describe("refit under the batching sim (--batching-max-size 4, --worker-batch-size 4)", () => {
  it("disk refit: generations in flight and arriving meanwhile; each answer's weights are its version's, no batch mixes versions, none after the refit's answer is old", async () => {
    await refitUnderBatching(async (r) => {
      const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: NEW } });
      expect(refit.status).toBe(200);
      expect(refit.body.weight_version).toBe("1");
      return { version: "1", weights: NEW };
    });
  }, 60_000);

  it("two-phase tensor refit (begin, a tensor update per worker, commit): the same", async () => {
    await refitUnderBatching(async (r, sims) => {
      expect((await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: { timeout_s: 30 } })).status).toBe(200);
      for (const s of sims) {
        const up = await jsonRequest(`${r.url}/workers/${encodeURIComponent(s.url)}/update_weights_from_tensor`, { method: "POST", json: { serialized_named_tensors: ["ipc-handle"], weight_version: "t1" } });
        expect(up.status).toBe(200);
      }
      const commit = await jsonRequest(`${r.url}/refit/commit`, { method: "POST", json: { weight_version: "t1" } });
      expect(commit.status).toBe(200);
      return { version: "t1", weights: "tensor:t1" };
    });
  }, 60_000);
});
