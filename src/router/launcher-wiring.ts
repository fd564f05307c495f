import { auditedLauncher } from "../audit/audited.js";
import { createLauncher, type Launcher } from "../launcher/index.js";
import type { Logger } from "../log.js";
import { launcherProcessId } from "../health/fingerprint.js";
import { launcherRecorder } from "../state/launcher-record.js";
import type { Core } from "./core.js";
import type { Doors } from "./doors.js";

/**
 * The launcher registers and removes its workers through the audited
 * control actions, like an operator would; a restart it makes is an action
 * of the router's own, on the audit trail and counted. With `--state-file`
 * its workers' handles are recorded as they change, for restart recovery.
 */
export function buildLauncher(core: Core, doors: Doors, logger: Logger): Launcher {
  const { registry, metrics, audit } = core;
  const store = core.state.launcher;
  const record = store === undefined ? undefined : launcherRecorder(store, logger);
  const launcher: Launcher = auditedLauncher(
    createLauncher({
      logger,
      ...(record === undefined ? {} : { onRunsChanged: () => record(launcher.records()) }),
      register: async (url, handle) => {
        // The launcher knows which process this is: its identity lets the refit coordinator recognise
        // a worker adopted after a router restart as the one that held the recorded version.
        await doors.control.addWorker(url, { managed: true, process: launcherProcessId(handle) });
      },
      deregister: async (url) => {
        if (registry.get(url)) doors.control.removeWorker(url);
      },
      onRestart: (w) => {
        // By its stable name: a Slurm resubmission lands on another URL, and is still the same worker.
        metrics.workerRestarted(w.name);
        const span = audit.begin("launcher.restart", { url: w.url, name: w.name, restarts: w.restarts, exit_code: w.exitCode ?? null, exit_signal: w.exitSignal ?? null });
        return (o) => span.end({ workers: [{ worker: o.url, ok: o.state === "ready", ...(o.state === "ready" || !o.error ? {} : { error: o.error }) }] });
      },
    }),
    audit,
  );
  core.managed.attach(() => launcher.list());
  return launcher;
}
