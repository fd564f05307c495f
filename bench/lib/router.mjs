// Starts the built router (dist/src/cli.js) as a child process, pinned, and
// reads its memory from /proc.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { routerCli } from "./env.mjs";

/**
 * `logLevel` warn = no access log (the throughput runs); info = the default,
 * one JSON line per request written synchronously to stdout (here a file).
 * The health-check interval is an hour so that probes never run during a
 * measurement.
 */
export async function startRouter({ pinPrefix, port, workerUrls, logLevel = "warn", logFile, extraArgs = [], nodeArgs = [], readyTimeoutMs = 60_000, cli = routerCli }) {
  const args = [...nodeArgs, cli, "--host", "127.0.0.1", "--port", String(port), "--log-level", logLevel, "--health-check-interval", "3600", ...extraArgs, "--worker-urls", ...workerUrls];
  const out = openSync(logFile, "a");
  const argv = [...pinPrefix, process.execPath, ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", out, out] });
  closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`router exited with ${child.exitCode}; see ${logFile}`);
    try {
      const r = await fetch(`${url}/health`);
      const h = await r.json();
      if (h.routable_workers === workerUrls.length) return { child, pid: child.pid, url };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill("SIGKILL");
  throw new Error(`router did not get ${workerUrls.length} routable workers in ${readyTimeoutMs} ms; see ${logFile}`);
}

/** Graceful stop (SIGTERM); SIGKILL after `graceMs`. Resolves with the exit code. */
export async function stopRouter(router, graceMs = 10_000) {
  if (!router || router.child.exitCode !== null) return router?.child.exitCode;
  const done = new Promise((r) => router.child.once("exit", (code) => r(code)));
  router.child.kill("SIGTERM");
  const t = setTimeout(() => router.child.kill("SIGKILL"), graceMs);
  const code = await done;
  clearTimeout(t);
  return code;
}

/** VmRSS and VmHWM (peak resident set, kept by the kernel) of a process, in MiB. */
export function memoryMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** Samples VmRSS every `everyMs`; stop() returns the highest sample and the kernel's VmHWM. */
export function sampleRss(pid, everyMs = 50) {
  let maxRss = 0;
  let samples = 0;
  const tick = () => {
    try {
      const m = memoryMiB(pid);
      samples++;
      if (m.rss > maxRss) maxRss = m.rss;
    } catch {
      // process gone
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      let hwm = NaN;
      try {
        hwm = memoryMiB(pid).hwm;
      } catch {
        // process gone
      }
      return { maxSampledRssMiB: maxRss, vmHwmMiB: hwm, samples };
    },
  };
}
