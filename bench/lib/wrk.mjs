// Runs wrk (closed loop: each connection sends its next request when the
// previous answer ended) and returns its summary as numbers.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cpuDelta, cpuSnapshot, processCpuUs } from "./cpu.mjs";

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "wrk-report.lua");

/** wrk processes running now (for the callers' exit handlers). */
export const running = new Set();

function run(argv, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    child.once("exit", () => running.delete(child));
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${err}${out}`))));
  });
}

/**
 * One measurement: `warmupS` seconds of the same load (discarded), then
 * `durationS` measured seconds. `bodyBytes` is the expected answer size,
 * for throughput in answer bytes (headers not counted).
 */
export async function wrk({ wrkBin, pinPrefix, url, connections, durationS, warmupS = 2, method = "POST", body = "", bodyBytes, timeoutS = 10, routerPid }) {
  const env = { BENCH_METHOD: method, BENCH_BODY: body };
  const base = [...pinPrefix, wrkBin, "-t1", `-c${connections}`, `--timeout`, `${timeoutS}s`, "-s", script];
  if (warmupS > 0) await run([...base, `-d${warmupS}s`, url], env);
  const before = cpuSnapshot();
  const routerBefore = routerPid ? processCpuUs(routerPid) : NaN;
  const out = await run([...base, `-d${durationS}s`, url], env);
  const routerCpuUs = routerPid ? processCpuUs(routerPid) - routerBefore : NaN;
  const cpu = cpuDelta(before, cpuSnapshot());
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`no summary from wrk:\n${out}`);
  const s = JSON.parse(line.slice("BENCH_JSON ".length));
  const seconds = s.duration_us / 1e6;
  const errors = s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout;
  return {
    connections,
    seconds: round(seconds, 2),
    requests: s.requests,
    rps: round(s.requests / seconds, 0),
    answerMBps: bodyBytes ? round((s.requests * bodyBytes) / seconds / 1e6, 1) : undefined,
    latencyMs: {
      mean: round(s.latency_us.mean / 1000, 3),
      p50: round(s.latency_us.p50 / 1000, 3),
      p90: round(s.latency_us.p90 / 1000, 3),
      p99: round(s.latency_us.p99 / 1000, 3),
      p999: round(s.latency_us.p999 / 1000, 3),
      max: round(s.latency_us.max / 1000, 3),
    },
    socketErrors: errors,
    // wrk counts answers with status >= 400 (a 3xx cannot happen here: the preflight request checks for 200).
    badStatus: s.errors.status,
    errorDetail: s.errors,
    cpuBusy: cpu.busy,
    // CPU time the router process spent per answered request (user + system; not kernel softirq work).
    routerCpuUsPerRequest: routerPid ? round(routerCpuUs / s.requests, 1) : undefined,
    foreignCpuPct: cpu.foreignCpuPct,
    stealPct: cpu.stealPct,
  };
}

export function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

