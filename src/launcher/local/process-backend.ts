import { existsSync, readFileSync } from "node:fs";
import type { Backend, BackendContext, Placement } from "../backend.js";
import { withoutRouterVariables } from "../child-env.js";
import { groupExists, spawnWorker } from "../process.js";
import type { WorkerRun } from "../run.js";
import { buildWorkerCommand, type BackendProgram } from "../worker-command.js";
import { placeLocally } from "./placement.js";
import { adoptedProcess, processRun } from "./process-run.js";

/**
 * A backend whose workers are child process groups of the router on this
 * machine (backends local and sim; they differ only in the program).
 *
 * @param resolveProgram finds the program, or throws LauncherError naming what is missing.
 */
export function createProcessBackend(ctx: BackendContext, resolveProgram: (env: NodeJS.ProcessEnv) => BackendProgram): Backend {
  const { logger, env, graceMs } = ctx;
  const live = new Set<WorkerRun>();
  const track = (run: WorkerRun): WorkerRun => {
    live.add(run);
    void run.exited.then(() => live.delete(run));
    return run;
  };
  return {
    holdsLocalResources: true,
    check() {
      resolveProgram(env);
    },
    place: (config, count, held) => placeLocally(config, count, held, ctx),
    async start(config, placement) {
      const { command, args } = buildWorkerCommand(resolveProgram(env), config, placement);
      const url = placement.url;
      const proc = await spawnWorker({ command, args, env: workerEnv(env, placement.gpus), logger: logger.child({ worker: url }) });
      logger.info(
        { worker: url, pid: proc.pid, cudaVisibleDevices: placement.gpus, command: [command, ...args].map(shellQuote).join(" ") },
        "launched worker",
      );
      return track(processRun(proc, locationOf(placement), { graceMs, logger: logger.child({ worker: url, pid: proc.pid }) }));
    },
    async adopt(_config, placement, handle) {
      const pgid = Number(handle);
      if (!Number.isInteger(pgid) || pgid <= 0 || !groupExists(pgid)) return null;
      // A recycled pid belongs to some other program: only a group whose leader was started for this
      // placement's port, and whose worker still answers there, is ours.
      if (!startedFor(pgid, placement.port) || !(await answersHealth(placement.url))) return null;
      logger.info({ worker: placement.url, pid: pgid }, "adopted running worker");
      return track(processRun(adoptedProcess(pgid), locationOf(placement), { graceMs, logger: logger.child({ worker: placement.url, pid: pgid }) }));
    },
    killAllSync() {
      for (const run of live) run.killSync();
    },
  };
}

function locationOf(placement: Placement): { url: string; port: number; gpus: string | null } {
  return { url: placement.url, port: placement.port, gpus: placement.gpus };
}

function workerEnv(env: NodeJS.ProcessEnv, gpus: string | null): NodeJS.ProcessEnv {
  const childEnv = withoutRouterVariables(env);
  if (gpus !== null) childEnv["CUDA_VISIBLE_DEVICES"] = gpus;
  // Python block-buffers stdout into a pipe; unbuffered, sglang's log reaches ours as it happens.
  childEnv["PYTHONUNBUFFERED"] ??= "1";
  return childEnv;
}

/**
 * Whether process `pid` was started with `--port <port>` (both worker programs
 * take it), read from /proc. Where /proc is missing (not Linux) the health
 * check alone decides.
 */
function startedFor(pid: number, port: number): boolean {
  if (!existsSync("/proc/self/cmdline")) return true;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  return argv.some((arg, i) => arg === "--port" && argv[i + 1] === String(port));
}

async function answersHealth(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer().catch(() => undefined);
    return response.status === 200;
  } catch {
    return false;
  }
}

/** For the log line only: the command as an operator would paste it into a shell. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
