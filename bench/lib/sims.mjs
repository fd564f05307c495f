// Simulated workers (dist/src/sim/cli.js) as child processes, for the
// scheduling bench: each prints `SIM_LISTENING <url>` once it listens.
import { spawn } from "node:child_process";
import path from "node:path";
import { repoRoot } from "./env.mjs";

export const simCli = path.join(repoRoot, "dist", "src", "sim", "cli.js");

/** Starts one sim worker with `args` (sglang serve + sim flags); resolves { url, pid, child, args }. */
export function startSim(args, { timeoutMs = 15_000 } = {}) {
  const child = spawn(process.execPath, [simCli, "--port", "0", "--log-level", "warn", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sim ${args.join(" ")} did not listen within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    let out = "";
    let listening = false;
    child.stdout.setEncoding("utf8");
    // Keep reading stdout for the child's whole life, or a full pipe would block it.
    child.stdout.on("data", (d) => {
      if (listening) return;
      out += d;
      const m = /SIM_LISTENING (\S+)/.exec(out);
      if (!m) return;
      listening = true;
      clearTimeout(timer);
      resolve({ url: m[1], pid: child.pid, child, args });
    });
    child.once("exit", (code) => {
      if (listening) return;
      clearTimeout(timer);
      reject(new Error(`sim ${args.join(" ")} exited ${code}: ${stderr}`));
    });
  });
}

/** SIGTERM, SIGKILL after 3 s. */
export async function stopSim(sim) {
  if (sim.child.exitCode !== null || sim.child.signalCode !== null) return;
  const gone = new Promise((r) => sim.child.once("exit", r));
  sim.child.kill("SIGTERM");
  const t = setTimeout(() => sim.child.kill("SIGKILL"), 3000);
  await gone;
  clearTimeout(t);
}
