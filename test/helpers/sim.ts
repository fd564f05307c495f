import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repo root, from test/helpers/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The built CLI (`npm run build` compiles src/ to dist/src/). */
export const simCliPath = resolve(repoRoot, "dist", "src", "sim", "cli.js");

export interface SimProcess {
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stderr seen so far. */
  stderr(): string;
}

export interface StartSimProcessOptions {
  /** How long to wait for the SIM_LISTENING line. Default 10 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Spawns the simulated worker (`node dist/src/sim/cli.js --port 0 ...args`)
 * and resolves once it printed `SIM_LISTENING <url>`.
 */
export function startSimProcess(args: string[] = [], opts: StartSimProcessOptions = {}): Promise<SimProcess> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const child = spawn(process.execPath, [simCliPath, "--port", "0", ...args], {
    cwd: repoRoot,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  let listening = false;
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once("exit", (code, signal) => res({ code, signal }));
  });

  return new Promise<SimProcess>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sim worker did not print SIM_LISTENING within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.stdout.setEncoding("utf8");
    // Keep reading stdout for the whole life of the child (logs), or a full pipe would block it.
    child.stdout.on("data", (d: string) => {
      if (listening) return;
      stdout += d;
      const match = /^SIM_LISTENING (\S+)$/m.exec(stdout);
      if (!match) return;
      listening = true;
      clearTimeout(timer);
      const url = match[1]!;
      const pid = child.pid!;
      let stopping: Promise<void> | undefined;
      resolvePromise({
        url,
        port: Number(new URL(url).port),
        pid,
        exited,
        stderr: () => stderr,
        kill: (signal: NodeJS.Signals = "SIGTERM") => {
          child.kill(signal);
        },
        stop: () => {
          stopping ??= (async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill("SIGTERM");
            const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
            await exited;
            clearTimeout(killer);
          })();
          return stopping;
        },
      });
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sim worker exited (code ${code}, signal ${signal}) before SIM_LISTENING; stderr:\n${stderr}`));
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
