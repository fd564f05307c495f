#!/usr/bin/env node
// `npm run bench:scale`: the planner's cost and quality as the fleet grows
// (issue 25). See docs/benchmarks.md ("Scale") for what each number means.
//
//   node bench/scale.mjs [--sizes 8,64,256,1024,4096] [--bursts 3] [--process-workers 96]
//        [--gpu-scale 20] [--slowdown 30] [--no-process] [--no-virtual] [--profile] [--source DIR] [--diagnose]
//        [--arrivals-per-turn 64|all]
//
// --profile: each size's child runs under node --cpu-prof; the top functions
// by self time are printed (bench/results/scale-profiles/). --source DIR:
// bundle the virtual fleet from another checkout's src/ and test/helpers/
// (e.g. `git archive main src test | tar -x -C /tmp/base`), to profile or
// compare the planner before a change.
//
// Virtual part: for each size, a child process runs the virtual fleet
// (test/helpers/virtual-fleet.ts, bundled with esbuild: the router's real
// admission, cost model and planner, a virtual clock; 3/4 of the workers at
// speed 1, 1/4 at 0.5) through `--bursts` bursts of 8 requests per worker
// (the first is the warm-up) and reports the router's CPU per request, the
// event-loop delay, memory and makespan / bound. The router's CPU is
// process.cpuUsage() around admission's handling of each event; the harness
// charges it to virtual time, serially.
// Process part: the built router (dist/src/cli.js) and N simulated workers
// (dist/src/sim/cli.js) as processes, bursts over real sockets.
// Writes bench/results/scale-latest.{json,md}.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { repoRoot } from "./lib/env.mjs";
import { checkArgs } from "./lib/args.mjs";

const argv = process.argv.slice(2);
checkArgs(import.meta.url, argv, { options: ["--arrivals-per-turn", "--bursts", "--child", "--gpu-scale", "--process-workers", "--sizes", "--slowdown", "--source"], flags: ["--diagnose", "--no-process", "--no-virtual", "--profile"] });
const option = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(name);
const resultsDir = path.join(repoRoot, "bench", "results");
const bundle = path.join(resultsDir, "scale-virtual-fleet.mjs");
const sourceRoot = path.resolve(option("--source", repoRoot));
const profileDir = path.join(resultsDir, "scale-profiles");
const bursts = Number(option("--bursts", 3));
/**
 * Virtual GPUs run this many times slower than the simulated worker's
 * formula (1024x1024, 50 steps: 402 ms at speed 1), so a job takes what it
 * takes on a real GPU (seconds; the issue's fleet finishes a request every
 * ~5 s per worker). The router's measured CPU is charged as it is, so this
 * sets how many completions per second the router must keep up with.
 */
const gpuScale = Number(option("--gpu-scale", 20));
/**
 * Arrivals the router takes per event-loop turn (a burst comes over many
 * sockets); "all": the whole burst in one turn, as the harness before part 5
 * queued it (to tell the arrival model's effect on the warm-up from the router's).
 */
const arrivalsPerTurn = option("--arrivals-per-turn", "64") === "all" ? Infinity : Number(option("--arrivals-per-turn", "64"));

/** Per-size child: runs the virtual fleet and prints one JSON line. */
async function virtualChild(size) {
  const { VirtualFleet, boundMs, mixedBurst, rng } = await import(pathToFileURL(bundle).href);
  const gpus = Array.from({ length: size }, (_, i) => ({ speed: (i % 4 === 3 ? 0.5 : 1) / gpuScale }));
  const fleet = new VirtualFleet(gpus, "earliest-finish", { arrivalsPerTurn, routerCpu: "measured" });
  const random = rng(25);
  const out = [];
  const entry = flag("--diagnose") ? timeEntryPoints(fleet) : null;
  for (let b = 0; b < bursts; b++) {
    const jobs = mixedBurst(random, 8 * size);
    // (A harness from before issue 25, --source, measures no router CPU: only the process figures are real then.)
    const cpuOf = () => fleet.completionCpuUs ?? [];
    const before = { turns: fleet.turnCpuUs?.length ?? 0, cpu: cpuOf().length, arrival: fleet.arrivalCpuUs ?? 0, proc: process.cpuUsage(), trace: fleet.trace.length, late: fleet.seenLateMs?.length ?? 0, startMs: fleet.nowMs };
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const t0 = performance.now();
    const { makespanMs } = await fleet.burst(jobs);
    const wallMs = performance.now() - t0;
    eld.disable();
    const samples = cpuOf().slice(before.cpu);
    const routerUs = samples.reduce((a, b) => a + b, 0) + (fleet.arrivalCpuUs ?? 0) - before.arrival;
    const proc = process.cpuUsage(before.proc);
    const sorted = [...samples].sort((a, b) => a - b);
    const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1000;
    const mem = process.memoryUsage();
    // The router's own synchronous turns (a harness from before part 5 has none: its per-completion figures instead).
    const turns = (fleet.turnCpuUs ?? cpuOf()).slice(fleet.turnCpuUs ? before.turns : before.cpu).sort((a, b) => a - b);
    const diag = flag("--diagnose") ? { ...diagnose(fleet, before, makespanMs), entryPoints: entry.take() } : undefined;
    out.push({
      burst: b,
      diag,
      requests: jobs.length,
      ratio: makespanMs / boundMs(gpus, jobs),
      cpuPerRequestMs: routerUs / 1000 / jobs.length,
      completionP50Ms: q(0.5),
      completionP99Ms: q(0.99),
      processCpuPerRequestMs: (proc.user + proc.system) / 1000 / jobs.length,
      eldP99Ms: eld.percentile(99) / 1e6,
      turnP99Ms: turns[Math.floor(0.99 * turns.length)] / 1000,
      turnMaxMs: turns.at(-1) / 1000,
      eldMaxMs: eld.max / 1e6,
      wallMs,
      rssMiB: mem.rss / 2 ** 20,
      heapMiB: mem.heapUsed / 2 ** 20,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    });
    fleet.nowMs += 1000;
  }
  console.log(JSON.stringify(out));
}

/**
 * --diagnose: the router's own synchronous work at its two heavy entry
 * points, wall time per call (the cost model's observe, which runs the fleet
 * refits; the plan's dispatch round): p99 and max per burst, and how many
 * calls took over 10 ms. Reaches into admission's private parts (a
 * diagnostic, not an API).
 */
function timeEntryPoints(fleet) {
  const parts = fleet.admission.p;
  const timed = {};
  // Calls over 100 ms of wall time, with what the router faced: when (virtual s), the queue, the CPU the call used.
  const slow = [];
  // Garbage-collector pauses over 20 ms (a long call may be one).
  const gcs = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.duration > 20) gcs.push({ atS: Number((fleet.nowMs / 1000).toFixed(2)), ms: Number(e.duration.toFixed(0)), kind: e.detail?.kind });
  }).observe({ entryTypes: ["gc"] });
  const wrap = (obj, name, label) => {
    const f = obj[name].bind(obj);
    timed[label] = [];
    obj[name] = (...args) => {
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const queued = parts.queue.queued;
      try {
        return f(...args);
      } finally {
        const ms = performance.now() - t0;
        timed[label].push(ms);
        if (ms > 100) {
          const c = process.cpuUsage(cpu0);
          slow.push({ label, atS: Number((fleet.nowMs / 1000).toFixed(2)), wallMs: Number(ms.toFixed(0)), cpuMs: Number(((c.user + c.system) / 1000).toFixed(0)), queued, heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) });
        }
      }
    };
  };
  wrap(parts.loads.costs, "observe", "observe");
  wrap(parts.strategy, "dispatch", "dispatch");
  return {
    take() {
      const r = {};
      for (const [k, xs] of Object.entries(timed)) {
        const s = xs.splice(0).sort((a, b) => a - b);
        r[k] = { calls: s.length, p99: Number((s[Math.floor(0.99 * s.length)] ?? 0).toFixed(2)), max: Number((s.at(-1) ?? 0).toFixed(1)), over10ms: s.filter((x) => x > 10).length };
      }
      r.over100ms = slow.splice(0);
      r.gcOver20ms = gcs.splice(0);
      return r;
    },
  };
}

/**
 * --diagnose: where a burst's GPU time went idle. Per worker, from the
 * harness's trace: idle before its first request (the burst's arrival
 * plans), between requests (the router seeing an answer late, or choosing
 * not to use the worker), after its last one (the tail); idle GPU time per
 * tenth of the makespan; how late the router saw each answer.
 */
function diagnose(fleet, before, makespanMs) {
  const start = before.startMs;
  const end = start + makespanMs;
  const byWorker = new Map();
  for (const e of fleet.trace.slice(before.trace)) {
    const list = byWorker.get(e.worker) ?? [];
    list.push(e);
    byWorker.set(e.worker, list);
  }
  let head = 0, gaps = 0, tail = 0, busy = 0;
  // Idle GPU time while requests still waited in the router (before the burst's last send), by worker speed.
  let lastSent = start;
  for (const e of fleet.trace.slice(before.trace)) lastSent = Math.max(lastSent, e.sentMs);
  const speeds = [...fleet.gpus.values()].map((g) => g.speed * gpuScale);
  const idleWaiting = {};
  const waitingIdle = (w, a, b) => {
    const x = Math.max(0, Math.min(b, lastSent) - a);
    idleWaiting[speeds[w]] = (idleWaiting[speeds[w]] ?? 0) + x;
  };
  const tenths = new Array(10).fill(0);
  const idleIn = (a, b) => {
    for (let t = 0; t < 10; t++) {
      const lo = start + (t * makespanMs) / 10, hi = start + ((t + 1) * makespanMs) / 10;
      tenths[t] += Math.max(0, Math.min(b, hi) - Math.max(a, lo));
    }
  };
  const workers = fleet.gpus.size;
  for (const list of byWorker.values()) {
    list.sort((x, y) => x.startMs - y.startMs);
    head += list[0].startMs - start;
    idleIn(start, list[0].startMs);
    waitingIdle(list[0].worker, start, list[0].startMs);
    for (let i = 0; i < list.length; i++) {
      busy += list[i].endMs - list[i].startMs;
      if (i > 0) {
        gaps += Math.max(0, list[i].startMs - list[i - 1].endMs);
        idleIn(list[i - 1].endMs, list[i].startMs);
        waitingIdle(list[i].worker, list[i - 1].endMs, list[i].startMs);
      }
    }
    tail += end - list.at(-1).endMs;
    waitingIdle(list[0].worker, list.at(-1).endMs, end);
    idleIn(list.at(-1).endMs, end);
  }
  const gpuMs = workers * makespanMs;
  const late = (fleet.seenLateMs ?? []).slice(before.late).sort((a, b) => a - b);
  const lq = (p) => late[Math.min(late.length - 1, Math.floor(p * late.length))];
  const pct = (x) => Number(((100 * x) / gpuMs).toFixed(2));
  const lastEnds = fleet.trace.slice(before.trace).sort((a, b) => b.endMs - a.endMs).slice(0, 3).map((e) => ({ speed: fleet.gpus.size && [...fleet.gpus.values()][e.worker].speed * gpuScale, sentS: (e.sentMs - start) / 1000, startS: (e.startMs - start) / 1000, endS: (e.endMs - start) / 1000, predictedS: e.predictedMs / 1000, actualS: e.actualMs / 1000, size: e.body.size, steps: e.body.num_inference_steps }));
  // The router's turns over 10 ms: with arrivals, or how many answers they handled.
  const long = { arrivals: 0, answers: [] };
  (fleet.turnCpuUs ?? []).slice(before.turns).forEach((us, i) => {
    if (us <= 10_000) return;
    const e = fleet.turnEvents[before.turns + i];
    if (e.arrivals) long.arrivals++;
    else long.answers.push(e.answers);
  });
  long.answers.sort((a, b) => a - b);
  // The cost model's error: actual / predicted per worker speed and size, over the burst and over its last sends.
  const miss = {};
  const entries = fleet.trace.slice(before.trace);
  entries.forEach((e, i) => {
    const k = `${speeds[e.worker]}/${e.body.size}${i >= entries.length * 0.9 ? "/last10%" : ""}`;
    const m = (miss[k] ??= { n: 0, sum: 0, max: 0 });
    m.n++;
    m.sum += e.actualMs / e.predictedMs;
    m.max = Math.max(m.max, e.actualMs / e.predictedMs);
  });
  for (const k of Object.keys(miss)) miss[k] = `${miss[k].n}: mean ${(miss[k].sum / miss[k].n).toFixed(2)} max ${miss[k].max.toFixed(2)}`;
  return {
    miss,
    longTurns: { withArrivals: long.arrivals, answerTurns: long.answers.length, answersP50: long.answers[long.answers.length >> 1], answersMax: long.answers.at(-1) },
    lastEnds,
    lastSentS: (lastSent - start) / 1000,
    idleWhileWaitingPct: Object.fromEntries(Object.entries(idleWaiting).map(([k, v]) => [k, pct(v)])),
    arrivalBlockMs: ((fleet.arrivalCpuUs ?? 0) - before.arrival) / 1000,
    seenLateMs: { p50: lq(0.5), p90: lq(0.9), p99: lq(0.99), max: late.at(-1), mean: late.reduce((a, b) => a + b, 0) / late.length },
    idlePct: { head: pct(head), gaps: pct(gaps), tail: pct(tail), total: pct(gpuMs - busy), unusedWorkers: workers - byWorker.size },
    idlePctByTenth: tenths.map((x) => Number(((100 * x) / (workers * makespanMs / 10)).toFixed(1))),
  };
}

function bundleFleet() {
  mkdirSync(profileDir, { recursive: true });
  const esbuild = path.join(repoRoot, "node_modules", ".bin", "esbuild");
  const r = spawnSync(esbuild, [path.join(sourceRoot, "test", "helpers", "virtual-fleet.ts"), "--bundle", "--platform=node", "--format=esm", "--packages=external", `--outfile=${bundle}`, "--log-level=warning"], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("esbuild failed to bundle the virtual fleet");
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "-");

async function virtualRuns(sizes) {
  bundleFleet();
  const rows = [];
  for (const size of sizes) {
    const t0 = Date.now();
    const prof = flag("--profile") ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=scale-${size}.cpuprofile`] : [];
    const r = spawnSync(process.execPath, [...prof, "--max-old-space-size=8192", path.join(repoRoot, "bench", "scale.mjs"), "--child", String(size), "--bursts", String(bursts), "--gpu-scale", String(gpuScale), "--arrivals-per-turn", String(option("--arrivals-per-turn", "64")), ...(flag("--diagnose") ? ["--diagnose"] : [])], { encoding: "utf8", maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`size ${size}: ${r.stderr}`);
    const runs = JSON.parse(r.stdout.trim().split("\n").pop());
    for (const x of runs) if (x.diag) console.log(`${size} workers, burst ${x.burst}: ratio ${fmt(x.ratio)}, ${JSON.stringify(x.diag)}`);
    const measured = runs.slice(1);
    const row = {
      size,
      requests: runs[0].requests,
      warmupRatio: runs[0].ratio,
      ratio: median(measured.map((x) => x.ratio)),
      worstRatio: Math.max(...runs.map((x) => x.ratio)),
      cpuPerRequestMs: median(measured.map((x) => x.cpuPerRequestMs)),
      completionP50Ms: median(measured.map((x) => x.completionP50Ms)),
      completionP99Ms: median(measured.map((x) => x.completionP99Ms)),
      processCpuPerRequestMs: median(measured.map((x) => x.processCpuPerRequestMs)),
      eldP99Ms: Math.max(...runs.map((x) => x.eldP99Ms)),
      eldMaxMs: Math.max(...runs.map((x) => x.eldMaxMs)),
      turnP99Ms: Math.max(...runs.map((x) => x.turnP99Ms)),
      turnMaxMs: Math.max(...runs.map((x) => x.turnMaxMs)),
      wallPerBurstS: median(measured.map((x) => x.wallMs)) / 1000,
      maxRssMiB: Math.max(...runs.map((x) => x.maxRssMiB)),
      heapMiB: Math.max(...runs.map((x) => x.heapMiB)),
      runs,
    };
    rows.push(row);
    if (prof.length > 0) {
      const { summarise } = await import("./lib/cpuprofile.mjs");
      const sum = summarise(path.join(profileDir, `scale-${size}.cpuprofile`), { top: 15 });
      console.log(`profile of ${size} workers: ${sum.busyMs.toFixed(0)} ms busy`);
      for (const f of sum.topSelf) console.log(`  ${String(f.pctOfBusy).padStart(5)}%  ${f.fn}`);
    }
    console.log(`${size} workers x ${row.requests}: ratio ${fmt(row.ratio)} (warm-up ${fmt(row.warmupRatio)}), router CPU/request ${fmt(row.cpuPerRequestMs)} ms (p50 ${fmt(row.completionP50Ms)}, p99 ${fmt(row.completionP99Ms)}), ELD p99 ${fmt(row.eldP99Ms, 1)} ms (max ${fmt(row.eldMaxMs, 1)}), router turns p99 ${fmt(row.turnP99Ms, 1)} max ${fmt(row.turnMaxMs, 1)} ms, RSS ${fmt(row.maxRssMiB, 0)} MiB, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return rows;
}

/**
 * What the sims' GPUs did in a burst, from each answer's inference_time_s
 * (the sim's own wall time for the generation, timers and drawing included):
 * that time over the formula's at the serving sim's speed (> 1: the sims run
 * slow, e.g. late timers and drawing on a loaded host) and the share of
 * worker-time no generation ran. The bound times that stretch is what the
 * sims could have done at the speed they actually ran (an estimate: the
 * stretch is a mean over the burst).
 */
function simGpuTime(served, sims, workers, cost, makespanMs) {
  const byUrl = new Map(sims.map((s, i) => [s.url.replace(/\/$/, ""), workers[i]]));
  let actual = 0, formula = 0;
  for (const s of served) {
    const w = byUrl.get(String(s.worker ?? "").replace(/\/$/, ""));
    if (s.inferenceS === null || w === undefined) continue;
    actual += s.inferenceS * 1000;
    formula += cost(s.job, w);
  }
  return { stretch: actual / formula, idlePct: 100 * (1 - actual / (workers.length * makespanMs)) };
}

/**
 * The process run's default slowdown: requests of 0.9-9.6 s at speed 1 (a
 * real GPU takes seconds per image). The sims draw and encode every picture
 * (~11-13 ms of CPU per request here): at --slowdown 3, 96 of them used
 * 63-65% of the two cores and ran 1.19x slower than their formula, so the
 * run measured the host (1.43-1.53 of the bound); at 30 they use 11-13% and
 * run within 0.5% of it (docs/benchmarks.md, Scale part 7).
 */
const PROCESS_SLOWDOWN = 30;

/** The process run: N sims (3/4 at speed 1, 1/4 at 0.5, all `slowdown` times slower) behind the built router. */
async function processRun(n, slowdown) {
  const { routedBurst, closeClient } = await import("./lib/burst.mjs");
  const { lowerBound, rng, cost } = await import("./lib/fleets.mjs");
  const { startRouter, stopRouter } = await import("./lib/router.mjs");
  const { startSim, stopSim } = await import("./lib/sims.mjs");
  const { freePort } = await import("./lib/nginx.mjs");
  const { processCpuUs } = await import("./lib/cpu.mjs");
  const model = "Qwen/Qwen-Image";
  const workers = Array.from({ length: n }, (_, i) => ({ model, speed: (i % 4 === 3 ? 0.5 : 1) / slowdown, attention: 0, video: false, extra: [] }));
  const sims = [];
  let router = null;
  const r = rng("scale");
  const sizes = ["512x512", "768x768", "1024x1024"];
  const out = [];
  try {
    // Started a few at a time: 96 node processes at once on two cores time out.
    for (let i = 0; i < workers.length; i += 8) sims.push(...(await Promise.all(workers.slice(i, i + 8).map((w) => startSim(["--model-path", w.model, "--speed", String(w.speed), "--attention-factor", "0"], { timeoutMs: 60_000 })))));
    const logFile = path.join(resultsDir, "scale-router.log");
    router = await startRouter({ pinPrefix: [], port: await freePort(), workerUrls: sims.map((s) => s.url), logLevel: "warn", logFile, readyTimeoutMs: 120_000 });
    for (let b = 0; b < bursts; b++) {
      const jobs = Array.from({ length: 8 * n }, (_, i) => {
        const size = sizes[Math.floor(r() * sizes.length)];
        const steps = [30, 40][Math.floor(r() * 2)];
        const [width, height] = size.split("x").map(Number);
        return { kind: "image", model, body: { model, prompt: `scale ${b}.${i}`, size, num_inference_steps: steps, seed: i, response_format: "url" }, work: { width, height, steps, frames: 1, outputs: 1 } };
      });
      // Who used the host's cores during the burst: the router, the 96 sims (timers, drawing and encoding pictures), the client (this process).
      const simsCpu = () => sims.reduce((a, s) => a + (processCpuUs(s.pid) || 0), 0);
      const cpu0 = processCpuUs(router.pid);
      const sims0 = simsCpu();
      const client0 = process.cpuUsage();
      const res = await routedBurst(router.url, jobs);
      const cpuUs = processCpuUs(router.pid) - cpu0;
      const client = process.cpuUsage(client0);
      const coresMs = os.cpus().length * res.makespanMs;
      const host = { routerPct: (100 * cpuUs) / 1000 / coresMs, simsPct: (100 * (simsCpu() - sims0)) / 1000 / coresMs, clientPct: (100 * (client.user + client.system)) / 1000 / coresMs, loadAverage: os.loadavg()[0] };
      const bound = lowerBound(jobs, workers);
      const gpu = simGpuTime(res.served, sims, workers, cost, res.makespanMs);
      out.push({ burst: b, requests: jobs.length, makespanMs: res.makespanMs, boundMs: bound, ratio: res.makespanMs / bound, errors: res.errors.length, routerCpuPerRequestMs: cpuUs / 1000 / jobs.length, ...gpu, ...host });
      console.log(`process run, burst ${b}: ${jobs.length} requests, makespan ${(res.makespanMs / 1000).toFixed(2)} s, bound ${(bound / 1000).toFixed(2)} s, ratio ${fmt(res.makespanMs / bound)}, errors ${res.errors.length}, router CPU/request ${fmt(cpuUs / 1000 / jobs.length)} ms; sims' GPU time / formula ${fmt(gpu.stretch)}, sims idle ${fmt(gpu.idlePct, 1)}% of worker-time, makespan / (bound x that) ${fmt(res.makespanMs / (bound * gpu.stretch))}; share of the host's ${os.cpus().length} cores: sims ${fmt(host.simsPct, 1)}%, router ${fmt(host.routerPct, 1)}%, client ${fmt(host.clientPct, 1)}% (load average ${fmt(host.loadAverage, 1)})`);
    }
  } finally {
    if (router !== null) await stopRouter(router);
    await Promise.all(sims.map(stopSim));
    await closeClient();
  }
  return { workers: n, slowdown, runs: out, ratio: median(out.slice(1).map((x) => x.ratio)), warmupRatio: out[0]?.ratio };
}

function markdown(result) {
  const lines = [`Machine: ${result.machine}; ${result.date}. Virtual GPUs ${result.gpuScale}x slower than the sim's formula (speed 1: ${(402 * result.gpuScale / 1000).toFixed(1)} s for 1024x1024 at 50 steps).`, ""];
  if (result.virtual.length > 0) {
    lines.push("| workers x requests | router CPU / request | per completion p50 / p99 | process CPU / request (harness incl.) | event-loop delay p99 (max) | max RSS / heap | makespan / bound (warm-up; worst) | wall per burst |", "|---|---|---|---|---|---|---|---|");
    for (const r of result.virtual) {
      lines.push(`| ${r.size} x ${r.requests} | ${fmt(r.cpuPerRequestMs)} ms | ${fmt(r.completionP50Ms)} / ${fmt(r.completionP99Ms)} ms | ${fmt(r.processCpuPerRequestMs)} ms | ${fmt(r.eldP99Ms, 1)} (${fmt(r.eldMaxMs, 1)}) ms | ${fmt(r.maxRssMiB, 0)} / ${fmt(r.heapMiB, 0)} MiB | ${fmt(r.ratio)} (${fmt(r.warmupRatio)}; ${fmt(r.worstRatio)}) | ${fmt(r.wallPerBurstS, 1)} s |`);
    }
  }
  if (result.process) {
    const p = result.process;
    lines.push("", `Process run: ${p.workers} simulated workers (speeds ${fmt(1 / p.slowdown, 2)} and ${fmt(0.5 / p.slowdown, 2)}), bursts of ${8 * p.workers}: makespan / bound ${p.runs.map((x) => fmt(x.ratio)).join(", ")} (first is the warm-up; median of the rest ${fmt(p.ratio)}); errors ${p.runs.map((x) => x.errors).join(", ")}; router CPU per request ${p.runs.map((x) => fmt(x.routerCpuPerRequestMs)).join(", ")} ms; sims' GPU time / formula ${p.runs.map((x) => fmt(x.stretch)).join(", ")}; share of the host's cores used by the sims ${p.runs.map((x) => `${fmt(x.simsPct, 0)}%`).join(", ")}, the router ${p.runs.map((x) => `${fmt(x.routerPct, 0)}%`).join(", ")}, the client ${p.runs.map((x) => `${fmt(x.clientPct, 0)}%`).join(", ")}.`);
  }
  return lines.join("\n");
}

if (flag("--child")) {
  await virtualChild(Number(option("--child", 8)));
} else {
  const sizes = option("--sizes", "8,64,256,1024,4096").split(",").map(Number);
  const cpus = os.cpus();
  const result = {
    date: new Date().toISOString(),
    gpuScale,
    machine: `${cpus.length} x ${cpus[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")} at start`,
    virtual: flag("--no-virtual") ? [] : await virtualRuns(sizes),
    process: flag("--no-process") ? null : await processRun(Number(option("--process-workers", 96)), Number(option("--slowdown", PROCESS_SLOWDOWN))),
  };
  writeFileSync(path.join(resultsDir, "scale-latest.json"), JSON.stringify(result, null, 2));
  writeFileSync(path.join(resultsDir, "scale-latest.md"), markdown(result) + "\n");
  console.log("\n" + markdown(result));
}
