import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../log.js";
import { LauncherError, WorkerExitedError } from "./errors.js";

/**
 * How a worker ended. For a process exactly one of code and signal is
 * non-null; a Slurm job that the scheduler ended has neither, and `reason`
 * says how (e.g. "Slurm job 12 CANCELLED").
 */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when neither code nor signal tells the story. */
  reason?: string;
}

/** A spawned worker: the leader of its own process group. */
export interface WorkerProcess {
  /** The child process; null for a process group adopted from an earlier router (not our child). */
  readonly child: ChildProcess | null;
  /** Pid of the leader, which is also the process group id. */
  readonly pid: number;
  /** Resolves (never rejects) when the leader has exited. */
  readonly exited: Promise<ExitInfo>;
  /** How the leader ended, once it has. */
  exitInfo(): ExitInfo | undefined;
}

/** Options of {@link spawnWorker}. */
export interface SpawnWorkerOptions {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Receives the worker's stdout/stderr, one entry per line (field `stream`). Bind the worker's URL on it. */
  logger: Logger;
}

// A progress bar without newlines must not grow a line buffer forever.
const MAX_LINE_CHARS = 16 * 1024;

/**
 * Starts a worker in its own process group (detached), so stopping it can
 * signal everything it spawned (sglang forks scheduler and GPU processes).
 * Its output is piped into `logger` line by line, so an operator sees it in
 * the router's log, tagged with the worker, instead of interleaved raw text.
 *
 * @throws LauncherError if the executable cannot be started (ENOENT, EACCES).
 */
export async function spawnWorker(options: SpawnWorkerOptions): Promise<WorkerProcess> {
  const child = spawn(options.command, [...options.args], {
    env: options.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let exit: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      child.off("spawn", onSpawn);
      reject(new LauncherError(`cannot start ${options.command}: ${error.message}`, { cause: error }));
    };
    const onSpawn = (): void => {
      child.off("error", onError);
      resolve();
    };
    child.once("error", onError);
    child.once("spawn", onSpawn);
  });
  // After a successful spawn, 'error' only reports a failed kill(); log it rather than crash.
  child.on("error", (error) => options.logger.warn({ err: error }, "worker process error"));
  pipeLines(child.stdout, options.logger, "stdout");
  pipeLines(child.stderr, options.logger, "stderr");
  return { child, pid: child.pid!, exited, exitInfo: () => exit };
}

function pipeLines(stream: Readable | null, logger: Logger, name: "stdout" | "stderr"): void {
  if (stream === null) return;
  const decoder = new StringDecoder("utf8");
  let pending = "";
  const emit = (line: string): void => {
    if (line.trim() !== "") logger.info({ stream: name }, line);
  };
  stream.on("data", (chunk: Buffer) => {
    pending += decoder.write(chunk);
    // \r too: progress bars redraw with a bare carriage return.
    const parts = pending.split(/\r\n|\n|\r/);
    pending = parts.pop() ?? "";
    for (const part of parts) emit(part);
    if (pending.length > MAX_LINE_CHARS) {
      emit(pending);
      pending = "";
    }
  });
  stream.on("end", () => emit(pending + decoder.end()));
  stream.on("error", () => {
    // The pipe breaks when the worker dies; its exit is reported elsewhere.
  });
}

/** Options of {@link waitForHealth}. */
export interface WaitForHealthOptions {
  /** Worker base URL; `GET <url>/health` is polled. */
  url: string;
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between polls. Default 500. */
  pollIntervalMs?: number;
  /** Per-request timeout, so a hung socket does not stall the loop. Default 2000. */
  requestTimeoutMs?: number;
  /** The worker's process or job; waiting fails as soon as it exits. `pid` 0 = not a local process. */
  process?: Pick<WorkerProcess, "pid" | "exited" | "exitInfo">;
  /** Log "still waiting" here every `progressEveryMs`. */
  logger?: Logger;
  /** Default 30000. */
  progressEveryMs?: number;
}

/**
 * Resolves when `GET <url>/health` answers 200.
 *
 * @throws WorkerExitedError (with the exit code) if the process exits first.
 * @throws LauncherError on timeout.
 */
export async function waitForHealth(options: WaitForHealthOptions): Promise<void> {
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  const requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  const progressEveryMs = options.progressEveryMs ?? 30_000;
  const startedAt = Date.now();
  const deadline = startedAt + options.timeoutMs;
  let nextProgressAt = startedAt + progressEveryMs;
  // Aborted when the process exits, to cut short an in-flight poll or a pause.
  const exitAbort = new AbortController();
  void options.process?.exited.then(() => exitAbort.abort());

  const checkExit = (): void => {
    const exit = options.process?.exitInfo();
    if (exit !== undefined) {
      const how = exit.reason ?? (exit.signal === null ? `with code ${exit.code}` : `on signal ${exit.signal}`);
      const pid = options.process!.pid === 0 ? "" : ` (pid ${options.process!.pid})`;
      throw new WorkerExitedError(`worker ${options.url}${pid} exited ${how} before /health answered 200`, exit);
    }
  };

  for (;;) {
    checkExit();
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new LauncherError(`worker ${options.url} did not answer /health with 200 within ${options.timeoutMs} ms`);
    }
    try {
      const response = await fetch(`${options.url}/health`, {
        signal: AbortSignal.any([AbortSignal.timeout(Math.min(requestTimeoutMs, remaining)), exitAbort.signal]),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.status === 200) return;
    } catch {
      // Not listening yet, or the request timed out: keep polling.
    }
    checkExit();
    if (options.logger !== undefined && Date.now() >= nextProgressAt) {
      options.logger.info({ elapsedMs: Date.now() - startedAt }, "still waiting for worker /health");
      nextProgressAt += progressEveryMs;
    }
    const pause = Math.min(pollIntervalMs, deadline - Date.now());
    if (pause > 0) await sleep(pause, undefined, { signal: exitAbort.signal }).catch(() => undefined);
  }
}

/** Options of {@link stopProcessGroup}. */
export interface StopProcessGroupOptions {
  /** Time between SIGTERM and SIGKILL. Default 10000. */
  graceMs?: number;
  /** Told when SIGKILL is needed. */
  logger?: Logger;
  /**
   * After the leader has exited, how long to wait for the rest of the group
   * to disappear once SIGKILLed. Orphans reparented to a non-reaping init
   * stay zombies forever, so this is bounded. Default 2000.
   */
  reapWaitMs?: number;
}

/**
 * Stops a worker's whole process group: SIGTERM, up to `graceMs` for the
 * leader and every group member to exit, then SIGKILL to the group. Resolves
 * once the leader has exited (and the group is gone, within `reapWaitMs`).
 * Safe to call on a worker that already exited: leftover group members still
 * get signalled.
 */
export async function stopProcessGroup(worker: WorkerProcess, options: StopProcessGroupOptions = {}): Promise<ExitInfo> {
  const graceMs = options.graceMs ?? 10_000;
  const reapWaitMs = options.reapWaitMs ?? 2000;
  if (worker.exitInfo() !== undefined && !groupExists(worker.pid)) return worker.exitInfo()!;

  signalGroup(worker.pid, "SIGTERM");
  const graceful = await waitUntil(() => worker.exitInfo() !== undefined && !groupExists(worker.pid), graceMs);
  if (!graceful) {
    options.logger?.warn({ pid: worker.pid, graceMs }, "worker process group did not exit after SIGTERM; sending SIGKILL");
    signalGroup(worker.pid, "SIGKILL");
    const exit = await worker.exited;
    await waitUntil(() => !groupExists(worker.pid), reapWaitMs);
    return exit;
  }
  return worker.exited;
}

/** Sends `signal` to process group `pgid`; a group that is already gone is fine. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** Whether any process (zombies included) is still in group `pgid`. */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    // EPERM: a member exists but belongs to someone else; still "exists".
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Polls `done` every 50 ms until it holds (true) or `timeoutMs` passes (false). */
async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return false;
    await sleep(Math.min(50, remaining));
  }
  return true;
}
