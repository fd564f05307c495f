#!/usr/bin/env node
// CPU profile of the router under the small-answer load of bench/run.mjs
// (2 KB images answers from nginx, 32 connections, --log-level warn; or the
// 2 MB answers, 8 connections, with --answer big), then a summary of where
// the time goes. Needs nginx, wrk and `npm run build`.
//
//   node bench/profile.mjs [--answer small|big] [--duration S] [--log-level info] [--workers 1000] [--routing-algorithm earliest-finish] [--out DIR]
//
// Writes DIR/router.cpuprofile (open it in Chrome DevTools or speedscope) and
// DIR/profile.md; DIR defaults to bench/results/profile.
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { summarise, toMarkdown } from "./lib/cpuprofile.mjs";
import { cpuPlan, pin, preflight, repoRoot } from "./lib/env.mjs";
import { BIG_BYTES, freePort, prepareUpstream, SMALL_BYTES, startNginx, stopNginx } from "./lib/nginx.mjs";
import { startRouter, stopRouter } from "./lib/router.mjs";
import { waitQuiet } from "./lib/cpu.mjs";
import { running as wrkRunning, wrk } from "./lib/wrk.mjs";
import { checkArgs } from "./lib/args.mjs";

const argv = process.argv.slice(2);
checkArgs(import.meta.url, argv, { options: ["--answer", "--duration", "--log-level", "--out", "--routing-algorithm", "--workers"], flags: [] });
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const durationS = Number(opt("--duration", "10"));
const logLevel = opt("--log-level", "warn");
const workers = Number(opt("--workers", "1"));
const big = opt("--answer", "small") === "big";
// As bench/run.mjs: the proxy path under least-request unless asked (earliest-finish serializes requests to one nginx "worker").
const routing = opt("--routing-algorithm", "least-request");
const outDir = path.resolve(opt("--out", path.join(repoRoot, "bench", "results", "profile")));

const tools = preflight();
const plan = cpuPlan(tools.taskset);
const clientPin = pin(tools.taskset, plan.client);
const routerPin = pin(tools.taskset, plan.router);
const dir = mkdtempSync(path.join(os.tmpdir(), "sgl-router-profile-"));
const children = new Set();
process.on("exit", () => {
  for (const c of [...children, ...wrkRunning]) if (c.exitCode === null) (c.killNow ?? (() => c.kill("SIGKILL")))();
  rmSync(dir, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

const up = await prepareUpstream(tools.nginx, dir, { hugeFile: false });
const nginx = await startNginx(tools.nginx, dir, up.confPath, up.small, clientPin);
children.add(nginx);
const profDir = path.join(dir, "prof");
mkdirSync(profDir);
const workerUrls = big ? [`http://127.0.0.1:${up.big}`] : workers === 1 ? [`http://127.0.0.1:${up.small}`] : up.manyUrls.slice(0, workers);
const router = await startRouter({
  pinPrefix: routerPin,
  port: await freePort(),
  workerUrls,
  logLevel,
  logFile: path.join(dir, "router.log"),
  extraArgs: ["--routing-algorithm", routing],
  nodeArgs: ["--cpu-prof", "--cpu-prof-dir", profDir, "--cpu-prof-name", "router.cpuprofile"],
  readyTimeoutMs: 120_000,
});
children.add(router.child);
const body = JSON.stringify({ model: "bench/nginx-image-model", prompt: "a red fox in fresh snow, morning light", n: 1, size: "1024x1024", response_format: big ? "b64_json" : "url" });
await waitQuiet({ onWait: (d) => console.log(`(waiting for the machine to be idle: other processes use ${d.foreignCpuPct}% of a CPU, steal ${d.stealPct}%)`) });
const r = await wrk({ wrkBin: tools.wrk, pinPrefix: clientPin, url: `${router.url}/v1/images/generations`, connections: big ? 8 : 32, durationS, warmupS: 2, body, bodyBytes: big ? BIG_BYTES : SMALL_BYTES, routerPid: router.pid });
await stopRouter(router);
await stopNginx(nginx);

mkdirSync(outDir, { recursive: true });
const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
if (!file) throw new Error("no .cpuprofile written (did the router exit cleanly?)");
renameSync(path.join(profDir, file), path.join(outDir, "router.cpuprofile"));
const md = [
  `Router under ${big ? "2 MB" : "small"}-answer load: ${r.rps} req/s${big ? ` (${r.answerMBps} MB/s)` : ""}, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, router CPU ${r.routerCpuUsPerRequest} µs/request, errors ${r.socketErrors + r.badStatus}, other processes ${r.foreignCpuPct}% of a CPU, steal ${r.stealPct}%; ${workers} worker(s), --log-level ${logLevel}, ${durationS} s + 2 s warm-up, profiled (the profiler itself costs some throughput). The profile also covers start-up and shutdown.`,
  "",
  toMarkdown(summarise(path.join(outDir, "router.cpuprofile"))),
].join("\n");
writeFileSync(path.join(outDir, "profile.md"), `${md}\n`);
console.log(md);
console.log(`\nwrote ${path.relative(process.cwd(), outDir)}/router.cpuprofile and profile.md`);
