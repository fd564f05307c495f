#!/usr/bin/env node
// A colocated RL training loop against sglang-d-router, with the SDK:
//   rollout -> release memory (sleep) -> train -> resume memory (wake) -> refit -> rollout
//
//   npm run build
//   node examples/rl_loop.mjs --router http://127.0.0.1:30081 [--api-key K2] [--admin-api-key K]
//
// Works against simulated workers (`npm start`) and real ones. Exits non-zero on any failure.
import { decode as decodeMsgpack } from "@msgpack/msgpack";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { createRouterClient, Code, RouterClientError, valueToJson } from "@sgl/diffusion-router-sdk";

const { values: args } = parseArgs({
  options: {
    router: { type: "string", default: "http://127.0.0.1:30081" },
    "api-key": { type: "string" },
    "admin-api-key": { type: "string" },
    transport: { type: "string", default: "connect" },
    prompts: { type: "string", default: "3" },
    "group-size": { type: "string", default: "4" },
    "model-path": { type: "string", default: "Qwen/Qwen-Image-step-1" },
    // The model whose workers train: in a pool serving several models a refit names it.
    model: { type: "string", default: "Qwen/Qwen-Image" },
    "train-ms": { type: "string", default: "200" },
  },
});

const client = createRouterClient({
  baseUrl: args.router,
  apiKey: args["api-key"],
  adminApiKey: args["admin-api-key"],
  transport: /** @type {"connect" | "grpc" | "grpc-web"} */ (args.transport),
  // RL clients retry what a router could not place (503), with bounded backoff.
  retry: { attempts: 5, baseDelayMs: 500, maxDelayMs: 5000 },
});

const numPrompts = Number(args.prompts);
const groupSize = Number(args["group-size"]);
const log = (...parts) => console.log(`[rl_loop] ${parts.join(" ")}`);

/** One rollout: every prompt group at once, each whole to one worker. */
async function rollout(step) {
  const started = performance.now();
  const answers = await Promise.all(
    Array.from({ length: numPrompts }, (_, i) =>
      client.rolloutGenerate(
        { prompt: `prompt ${i} (step ${step})`, seed: 1000 * step + groupSize * i, num_outputs_per_prompt: groupSize, width: 256, height: 256, num_inference_steps: 4 },
        { as: "bytes" },
      ),
    ),
  );
  let bytes = 0;
  let samples = 0;
  const weights = new Set();
  for (const a of answers) {
    bytes += a.bytes.length;
    // SGLang's /rollout/generate answers MessagePack (one item per sample),
    // whatever Accept says; a trainer streams large ones instead.
    const list = decodeMsgpack(a.bytes);
    if (!Array.isArray(list) || list.length !== groupSize) throw new Error(`expected ${groupSize} samples, got ${Array.isArray(list) ? list.length : typeof list}`);
    samples += list.length;
    // Simulated workers say which weights made the answer.
    const w = a.headers["x-sim-weights"];
    if (typeof w === "string") weights.add(w);
  }
  const ms = Math.round(performance.now() - started);
  log(`rollout ${step}: ${answers.length} groups, ${samples} samples, ${(bytes / 1e6).toFixed(1)} MB in ${ms} ms${weights.size ? `, weights ${[...weights].join(", ")}` : ""}`);
  return { samples, bytes, ms, weights };
}

/** Prints a broadcast's per-worker results; throws unless every worker succeeded. */
function checkResults(what, results) {
  if (results.length === 0) throw new Error(`${what}: no worker answered`);
  let failed = 0;
  for (const r of results) {
    const body = valueToJson(r.body);
    const ok = r.statusCode === 200 && !(body && typeof body === "object" && body.success === false);
    if (!ok) failed++;
    log(`  ${what} ${r.workerUrl}: ${r.statusCode} ${JSON.stringify(body)}`);
  }
  if (failed > 0) throw new Error(`${what} failed on ${failed} of ${results.length} workers`);
}

async function main() {
  const t0 = performance.now();
  const status = await client.admin.getRouterStatus({});
  log(`router ${args.router} v${status.version}: ${status.healthyWorkers}/${status.totalWorkers} workers healthy, weights ${status.weightVersion || "(unknown)"}`);

  const before = await rollout(1);

  log("release memory occupation (workers sleep)");
  checkResults("release", (await client.admin.releaseMemoryOccupation({})).results);

  log(`train (${args["train-ms"]} ms)`);
  await new Promise((r) => setTimeout(r, Number(args["train-ms"])));

  log("resume memory occupation (workers wake)");
  checkResults("resume", (await client.admin.resumeMemoryOccupation({})).results);

  log(`refit: update_weights_from_disk ${args["model-path"]}`);
  checkResults("refit", (await client.admin.updateWeightsFromDisk({ modelPath: args["model-path"], model: args.model })).results);

  const after = await rollout(2);
  if (after.weights.size > 0 && (after.weights.size !== 1 || !after.weights.has(args["model-path"]))) {
    throw new Error(`rollout after refit used weights ${[...after.weights].join(", ")}, expected only ${args["model-path"]} (off-policy)`);
  }

  log(
    `summary: 2 rollouts, ${before.samples + after.samples} samples, ${((before.bytes + after.bytes) / 1e6).toFixed(1)} MB, ` +
      `rollout ${before.ms}/${after.ms} ms, total ${Math.round(performance.now() - t0)} ms: OK`,
  );
}

try {
  await main();
} catch (err) {
  // Data plane and admin RPCs alike; rpcCode is set for RPC failures.
  if (err instanceof RouterClientError) console.error(`[rl_loop] FAILED: ${err.code} (${err.rpcCode === null ? `HTTP ${err.status}` : `RPC ${Code[err.rpcCode]}`}): ${err.message}`);
  else console.error(`[rl_loop] FAILED: ${err instanceof Error ? err.stack : err}`);
  process.exitCode = 1;
} finally {
  await client.close();
}
