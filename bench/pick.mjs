#!/usr/bin/env node
// Routing decision cost, in process: the balancer's pick() and the whole
// admission decision (tryAcquire + release) with 1 and 1,000 registered
// workers, in ns per call. Needs `npm run build` first.
//   node bench/pick.mjs          a table
//   node bench/pick.mjs --json   one JSON object (used by bench/run.mjs)
import { createAdmission } from "../dist/src/admission/admission.js";
import { createPolicy, policyNames } from "../dist/src/balancer/index.js";
import { Registry } from "../dist/src/registry/registry.js";
import { demandOf } from "../dist/src/scheduler/eligibility.js";
import { readRequestFacts } from "../dist/src/scheduler/request-facts.js";

const sizes = [1, 1000];
let sink = 0;

/** Median ns per call over `rounds` batches of about `batchMs` each, after a warm-up. */
function measure(fn, { rounds = 7, batchMs = 60 } = {}) {
  let n = 1000;
  // Warm up (lets the JIT optimise) and size a batch to about batchMs.
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms > batchMs / 2) break;
    n *= 2;
  }
  const perCall = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    perCall.push(Number(process.hrtime.bigint() - t0) / n);
  }
  perCall.sort((a, b) => a - b);
  return Math.round(perCall[Math.floor(rounds / 2)] * 10) / 10;
}

function candidates(n) {
  return Array.from({ length: n }, (_, i) => ({ url: `http://127.0.0.${(i % 250) + 1}:${20000 + Math.floor(i / 250)}`, activeRequests: i % 4 }));
}

/** One image request's ticket (its facts read once, outside the measured decision, as the data plane reads them before admission). */
const facts = readRequestFacts("image", { prompt: "p", size: "512x512" }, null);
const demand = demandOf("image", facts.model);
const ticket = () => ({ demand, facts, exclude: null, run: null, weightVersion: null });

const result = { unit: "ns per call (median of 7 batches)", pick: {}, admission: {} };
for (const name of policyNames) {
  result.pick[name] = {};
  for (const n of sizes) {
    const policy = createPolicy(name);
    const list = candidates(n);
    result.pick[name][n] = measure(() => {
      sink += policy.pick(list).activeRequests;
    });
  }
}
for (const n of sizes) {
  const registry = new Registry();
  for (const c of candidates(n)) registry.add(c.url);
  const admission = createAdmission({ registry, policy: createPolicy("least-request"), maxConcurrencyPerWorker: 0, queueSize: 10_000, queueTimeoutMs: 300_000 });
  // 32 requests in flight, as in the HTTP runs: the decision is taken with some workers busy.
  const held = Array.from({ length: Math.min(32, n) }, () => {
    const t = ticket();
    return { w: admission.tryAcquire(t), t };
  });
  result.admission[n] = measure(() => {
    const t = ticket();
    const w = admission.tryAcquire(t);
    admission.release(w, t, { ok: true });
    sink += w.activeRequests;
  });
  for (const { w, t } of held) admission.release(w, t, { ok: true });
}
if (sink === -1) console.log(sink);

if (process.argv.includes("--json")) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  console.log(`routing decision cost, ${result.unit}`);
  console.log(`${"".padEnd(34)}${sizes.map((n) => `${n} worker${n > 1 ? "s" : ""}`.padStart(14)).join("")}`);
  for (const name of policyNames) console.log(`${`pick() ${name}`.padEnd(34)}${sizes.map((n) => String(result.pick[name][n]).padStart(14)).join("")}`);
  console.log(`${"admission tryAcquire+release (LR)".padEnd(34)}${sizes.map((n) => String(result.admission[n]).padStart(14)).join("")}`);
}
