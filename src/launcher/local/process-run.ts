import type { Logger } from "../../log.js";
import { groupExists, signalGroup, stopProcessGroup, type ExitInfo, type WorkerProcess } from "../process.js";
import type { WorkerLocation, WorkerRun } from "../run.js";

/** A local process group (backends local and sim) as a {@link WorkerRun}; its location is known before it starts. */
export function processRun(proc: WorkerProcess, location: WorkerLocation, options: { graceMs: number; logger: Logger }): WorkerRun {
  let stopping: Promise<void> | undefined;
  return {
    pid: proc.pid,
    locate: () => Promise.resolve(location),
    exited: proc.exited,
    exitInfo: () => proc.exitInfo(),
    stop() {
      stopping ??= stopProcessGroup(proc, { graceMs: options.graceMs, logger: options.logger }).then(() => undefined);
      return stopping;
    },
    killSync() {
      if (proc.exitInfo() === undefined || groupExists(proc.pid)) signalGroup(proc.pid, "SIGKILL");
    },
    describe: () => ({ facts: {}, log: { pid: proc.pid }, handle: String(proc.pid) }),
  };
}

/** How often an adopted process group is checked for having ended (it is not our child: no exit event). */
const ADOPTED_POLL_MS = 500;

/**
 * A process group this router did not spawn (or spawned in an earlier life)
 * as a {@link WorkerProcess}: its exit is noticed by polling the group, and
 * its exit code is unknowable (reported as a reason).
 */
export function adoptedProcess(pgid: number): WorkerProcess {
  let exit: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    const timer = setInterval(() => {
      if (groupExists(pgid)) return;
      clearInterval(timer);
      exit = { code: null, signal: null, reason: `(adopted process group ${pgid} is gone)` };
      resolve(exit);
    }, ADOPTED_POLL_MS);
    timer.unref();
  });
  return { child: null, pid: pgid, exited, exitInfo: () => exit };
}
