// `npm run bench:rollout-memory`: the router's RSS while one rollout job of
// 1,000 items with ~2 MB answers streams through it (issue: results are
// streamed as they complete, never held).
//
//   node bench/rollout-memory.mjs [--items 1000] [--workers 4] [--answer-mb 2]
//
// Simulated workers answer /rollout/generate with one sample whose tensor is
// sized so the JSON answer is about --answer-mb; the client reads the NDJSON
// stream and drops it. The router's RSS (VmRSS from /proc) is sampled every
// 50 ms: before the job, its peak, and its value after each tenth of the items,
// so that growth with the job's size would show. As a reference in the same
// run, the same items are sent as plain /rollout/generate requests (8 at a
// time), the way frameworks send bursts today.
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { repoRoot } from "./lib/env.mjs";
import { startRouter, stopRouter } from "./lib/router.mjs";
import { startSim } from "./lib/sims.mjs";
import { checkArgs } from "./lib/args.mjs";

const argv = process.argv.slice(2);
checkArgs(import.meta.url, argv, { options: ["--answer-mb", "--items", "--workers"], flags: [] });
const option = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const items = Number(option("--items", 1000));
const workers = Number(option("--workers", 4));
const answerMb = Number(option("--answer-mb", 2));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function rssMib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

const body = (i) => ({ prompt: `sample ${i}`, seed: i, width: 64, height: 64, num_inference_steps: 1, num_outputs_per_prompt: 1 });

/** One job through POST /v1/rollouts; resolves { lines, bytes, ms, samples: RSS after each tenth }. */
function runJob(url, pid) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const payload = JSON.stringify({ requests: Array.from({ length: items }, (_, i) => ({ path: "/rollout/generate", body: body(i) })) });
    const req = request(`${url}/v1/rollouts`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let bytes = 0;
      let results = 0;
      let tail = "";
      const tenths = [];
      res.on("data", (chunk) => {
        bytes += chunk.length;
        // Count result lines without keeping them: newlines in this chunk.
        for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
          results++;
          if ((results - 1) % Math.max(1, Math.round(items / 10)) === 0) tenths.push(Math.round(rssMib(pid)));
        }
        tail = chunk.subarray(Math.max(0, chunk.length - 300)).toString();
      });
      res.on("end", () => resolve({ lines: results, bytes, ms: performance.now() - started, tenths, summary: tail.slice(tail.lastIndexOf('{"summary"')).trim() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** The same items as separate requests, `concurrency` at a time, answers read and dropped. */
async function runSeparate(url, concurrency = 8) {
  const started = performance.now();
  let next = 0;
  let bytes = 0;
  const statuses = {};
  async function loop() {
    while (next < items) {
      const i = next++;
      const r = await fetch(`${url}/rollout/generate`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i)) });
      // Read first, then add: `bytes += await ...` would read `bytes` before the await and lose the other loops' additions.
      const n = (await r.arrayBuffer()).byteLength;
      bytes += n;
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { bytes, ms: performance.now() - started, statuses };
}

async function sampled(pid, fn) {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, rssMib(pid))), 50);
  try {
    const r = await fn();
    return { ...r, peak: Math.round(Math.max(peak, rssMib(pid))) };
  } finally {
    clearInterval(t);
  }
}

// Raw tensor bytes per sample so that its base64 inside the JSON answer is about answerMb.
const rawBytes = Math.round((answerMb * 1024 * 1024 * 3) / 4);
const sims = await Promise.all(Array.from({ length: workers }, () => startSim(["--rollout-bytes-per-sample", String(rawBytes)])));
const port = await freePort();
const router = await startRouter({ pinPrefix: [], port, workerUrls: sims.map((s) => s.url), logFile: path.join(os.tmpdir(), "rollout-memory-router.log") });
try {
  const before = Math.round(rssMib(router.pid));
  const job = await sampled(router.pid, () => runJob(router.url, router.pid));
  const afterJob = Math.round(rssMib(router.pid));
  const separate = await sampled(router.pid, () => runSeparate(router.url));
  const commit = (() => {
    try {
      return readFileSync(path.join(repoRoot, ".git", "HEAD"), "utf8").trim();
    } catch {
      return "?";
    }
  })();
  const mb = (b) => (b / 1024 / 1024).toFixed(0);
  console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; ${new Date().toISOString()}; HEAD ${commit}`);
  console.log(`${items} items, ${workers} sim workers, answers ~${answerMb} MB`);
  console.log("");
  console.log("| run | streamed | time | router RSS before | peak | after each tenth of the items (MiB) |");
  console.log("|---|---|---|---|---|---|");
  console.log(`| one rollout job (POST /v1/rollouts, NDJSON) | ${mb(job.bytes)} MB in ${job.lines} lines | ${(job.ms / 1000).toFixed(1)} s | ${before} MiB | ${job.peak} MiB | ${job.tenths.join(", ")} (${afterJob} after) |`);
  console.log(`| reference: ${items} separate /rollout/generate, 8 at a time | ${mb(separate.bytes)} MB (statuses ${JSON.stringify(separate.statuses)}) | ${(separate.ms / 1000).toFixed(1)} s | ${afterJob} MiB | ${separate.peak} MiB | |`);
  console.log("");
  console.log(`summary line: ${job.summary}`);
} finally {
  await stopRouter(router);
  for (const s of sims) s.child.kill("SIGTERM");
}
