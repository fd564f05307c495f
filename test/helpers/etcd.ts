/**
 * A real single-member etcd for tests (Debian's etcd-server), started as a
 * child of the test process in a fresh folder on free 127.0.0.1 ports, and
 * stopped with its folder removed. It can be killed and started again on the
 * same ports and data (an etcd outage).
 */
import { freePort } from "./ports.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Tool } from "./tools.js";

export interface EtcdServer {
  /** `127.0.0.1:PORT` of the client endpoint. */
  hostPort: string;
  /** A `--state-store` URL for this server with a fresh prefix per call. */
  storeUrl(prefix?: string): string;
  /** SIGKILLs etcd (its data stays). */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data; resolves when healthy. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}


let prefixes = 0;

async function exit(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, "exit");
  proc.kill(signal);
  const t = setTimeout(() => proc.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(t);
}

/** Starts etcd and waits until its /health says true. */
export async function startEtcd(tool: Tool): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-test-"));
  const [client, peer] = [await freePort(), await freePort()];
  const args = [
    "--name", "t",
    "--data-dir", join(dir, "data"),
    "--listen-client-urls", `http://127.0.0.1:${client}`,
    "--advertise-client-urls", `http://127.0.0.1:${client}`,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `t=http://127.0.0.1:${peer}`,
  ];
  let proc: ChildProcess;
  let stderr = "";
  const launch = async (): Promise<void> => {
    proc = spawn(tool.path!, args, { stdio: ["ignore", "ignore", "pipe"] });
    proc.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr = (stderr + c).slice(-4000)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${client}/health`);
        if (res.ok && ((await res.json()) as { health?: string }).health === "true") return;
      } catch {
        // not listening yet
      }
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`etcd did not become healthy: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async (): Promise<void> => {
    await exit(proc, "SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await launch();
  } catch (err) {
    await stop();
    throw err;
  }
  const hostPort = `127.0.0.1:${client}`;
  return {
    hostPort,
    storeUrl: (prefix = `sgld/test-${process.pid}-${++prefixes}`) => `etcd://${hostPort}/${prefix}`,
    kill: () => exit(proc, "SIGKILL"),
    restart: launch,
    stop,
  };
}
