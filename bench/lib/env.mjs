// Machine facts, tool checks and CPU pinning shared by the bench scripts.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The router under test; BENCH_ROUTER_CLI points at another build (A/B of a change). */
export const routerCli = process.env.BENCH_ROUTER_CLI ? path.resolve(process.env.BENCH_ROUTER_CLI) : path.join(repoRoot, "dist", "src", "cli.js");

/** Absolute path of a program on PATH (also /usr/sbin, where Debian puts nginx), or null. */
export function which(name) {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/local/sbin"]);
  for (const d of dirs) {
    const p = path.join(d, name);
    if (d && existsSync(p)) return p;
  }
  return null;
}

/**
 * Finds nginx, wrk and taskset, and the built router; exits with an install
 * hint when one is missing (the bench never installs anything itself).
 */
export function preflight() {
  const nginx = which("nginx");
  const wrk = which("wrk");
  const taskset = which("taskset");
  const missing = [];
  if (!nginx) missing.push("nginx   (Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y nginx-light   # or: nginx)");
  if (!wrk) missing.push("wrk     (Debian/Ubuntu: sudo apt-get install -y wrk)");
  if (!existsSync(routerCli)) missing.push(`${path.relative(repoRoot, routerCli)}   (run: npm run build)`);
  if (missing.length) {
    process.stderr.write(`bench: missing prerequisites:\n  ${missing.join("\n  ")}\n`);
    process.exit(2);
  }
  return { nginx, wrk, taskset };
}

/**
 * Which CPUs each side runs on. With 2+ cores: the load generator and nginx
 * share CPU 0, the router has CPU 1 to itself (the same for direct and
 * router runs: the client side and the upstream are always on CPU 0).
 * Override with BENCH_CLIENT_CPUS / BENCH_ROUTER_CPUS (taskset -c lists);
 * BENCH_NO_PIN=1 turns pinning off.
 */
export function cpuPlan(taskset) {
  const n = os.availableParallelism();
  if (!taskset || process.env.BENCH_NO_PIN === "1" || n < 2) return { pinned: false, client: null, router: null, cores: n };
  return { pinned: true, client: process.env.BENCH_CLIENT_CPUS ?? "0", router: process.env.BENCH_ROUTER_CPUS ?? "1", cores: n };
}

/** argv prefix that pins a command to `cpus` (empty when not pinning). */
export function pin(taskset, cpus) {
  return cpus ? [taskset, "-c", cpus] : [];
}

function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n").find((l) => l.trim() !== "")?.trim() ?? "?";
}

/** What docs/benchmarks.md shows about the machine. */
export function machineInfo(tools) {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "?";
  let freeG = "?";
  try {
    freeG = execFileSync("free", ["-g"], { encoding: "utf8" }).split("\n").find((l) => l.startsWith("Mem:"))?.trim() ?? "?";
  } catch {
    freeG = `${Math.round(os.totalmem() / 2 ** 30)} GiB total`;
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: model,
    memory: freeG,
    kernel: os.release(),
    node: process.version,
    nginx: firstLine(tools.nginx, ["-v"]).replace(/^nginx version:\s*/, ""),
    wrk: firstLine(tools.wrk, ["-v"]).replace(/\s+Copyright.*$/, ""),
  };
}
