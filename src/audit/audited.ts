import { answerMessage, answerSucceeded, type WorkerAnswer } from "../admin/broadcast.js";
import type { Control } from "../admin/control.js";
import type { Launcher, LauncherConfig, LauncherGroups, ManagedWorker } from "../launcher/index.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import type { DiskRefitCommand, DiskRefitResult, MemoryResult } from "../refit/types.js";
import type { Audit, AuditSummary, AuditWorkerOutcome } from "./audit.js";

/*
 * Decorators that put every control action on the audit trail. They wrap the
 * shared operations (Control, the refit coordinator, the launcher) that REST
 * and RPC both call, so an action is audited once whichever door it came
 * through, and the business logic knows nothing of auditing.
 */

function fromAnswer(a: WorkerAnswer): AuditWorkerOutcome {
  const ok = answerSucceeded(a);
  const out: AuditWorkerOutcome = { worker: a.workerUrl, ok, status: a.status };
  if (!ok) out.error = answerMessage(a).slice(0, 300);
  return out;
}

function fromDiskRefit(r: DiskRefitResult): AuditSummary {
  const summary: AuditSummary = { workers: r.results.map(fromAnswer) };
  if (r.failure !== null) {
    summary.code = "upstream_failed";
    summary.message = r.failure;
  }
  return summary;
}

const fromMemory = (r: MemoryResult): AuditSummary => ({ workers: r.results.map(fromAnswer), ...(r.changed ? {} : { message: "nothing to do: the pool already was so" }) });

/** Scalars of a weight-load body worth a line (model path, version, flags), never tensors or large values. */
function scalarArgs(body: Buffer): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    return {};
  }
  const out: Record<string, unknown> = {};
  if (json === null || typeof json !== "object") return out;
  for (const [k, v] of Object.entries(json)) {
    if (typeof v === "string") out[k] = v.length > 300 ? `${v.slice(0, 300)}...` : v;
    else if (typeof v === "number" || typeof v === "boolean" || v === null) out[k] = v;
    else if (Array.isArray(v) && v.length <= 20 && v.every((x) => typeof x === "string")) out[k] = v;
  }
  return out;
}

const seconds = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000);

export function auditedControl(control: Control, audit: Audit): Control {
  return {
    ...control,
    addWorker(rawUrl, opts) {
      // Registering a URL that is already registered changes nothing: no audit line.
      return audit.run("worker.register", { url: typeof rawUrl === "string" ? rawUrl : String(rawUrl), managed: opts?.managed ?? false }, () => control.addWorker(rawUrl, opts), (r) => ({
        workers: [{ worker: r.worker.url, ok: !r.worker.dead, ...(r.worker.dead && r.worker.lastError ? { error: r.worker.lastError } : {}) }],
        ...(r.created ? {} : { message: "already registered" }),
      }));
    },
    removeWorker(rawUrl) {
      return audit.run("worker.remove", { url: rawUrl }, () => control.removeWorker(rawUrl), (w) => ({ workers: [{ worker: w.url, ok: true }] }));
    },
    updateWorker(rawUrl, patch) {
      return audit.run("worker.update", { url: rawUrl, ...patch }, () => control.updateWorker(rawUrl, patch), (w) => ({ workers: [{ worker: w.url, ok: true }] }));
    },
  };
}

export function auditedRefit(refit: RefitCoordinator, audit: Audit): RefitCoordinator {
  return {
    get version() {
      return refit.version;
    },
    status: () => refit.status(),
    sweep: () => refit.sweep(),
    // The LoRA change is audited as lora.* by lora/audited-lora.ts.
    loraChange: (ms, run) => refit.loraChange(ms, run),
    shareLora: (snapshot) => refit.shareLora(snapshot),
    updateWeightsFromDisk(command: DiskRefitCommand) {
      return audit.run("refit.from_disk", { ...scalarArgs(command.body), drain_timeout_s: seconds(command.drainTimeoutMs) }, () => refit.updateWeightsFromDisk(command), fromDiskRefit);
    },
    begin(command = {}) {
      return audit.run("refit.begin", { drain_timeout_s: seconds(command.drainTimeoutMs), timeout_s: seconds(command.timeoutMs) }, () => refit.begin(command), (r) => ({ workers: r.workers.map((w) => ({ worker: w, ok: true })) }));
    },
    updateTensors(workerUrl, send) {
      return audit.run("refit.tensor_update", { worker: workerUrl }, () => refit.updateTensors(workerUrl, send), (o) => ({
        workers: [{ worker: o.workerUrl, ok: o.ok, ...(o.status ? { status: o.status } : { error: "no answer from the worker" }) }],
      }));
    },
    commit(command) {
      return audit.run("refit.commit", { weight_version: command.weightVersion, ...(command.replay ? { replay: true } : {}) }, () => refit.commit(command), (r) => ({
        workers: [...r.updatedWorkers.map((w) => ({ worker: w, ok: true })), ...r.staleWorkers.map((w) => ({ worker: w, ok: false, error: "not updated: left rotation as stale" }))],
      }));
    },
    abort(reason) {
      return audit.run("refit.abort", reason === undefined ? {} : { reason }, () => refit.abort(reason), (r) => ({ workers: r.staleWorkers.map((w) => ({ worker: w, ok: false, error: "holds uncommitted weights: left rotation as stale" })) }));
    },
    releaseMemory(command) {
      return audit.run("memory.release", { drain_timeout_s: seconds(command.drainTimeoutMs), ...(command.model ? { model: command.model } : {}) }, () => refit.releaseMemory(command), fromMemory);
    },
    resumeMemory(command) {
      return audit.run("memory.resume", command.model ? { model: command.model } : {}, () => refit.resumeMemory(command), fromMemory);
    },
    // Another router's commit, taken over etcd: no operator action here.
    adopt: (saved) => refit.adopt(saved),
  };
}

function groupArgs(config: LauncherConfig | LauncherGroups): Record<string, unknown> {
  const groups = Array.isArray(config) ? (config as LauncherGroups) : [config as LauncherConfig];
  return { groups: groups.map((g) => ({ backend: g.backend, model: g.model, num_workers: g.num_workers })) };
}

const fromManaged = (m: ManagedWorker): AuditWorkerOutcome => ({ worker: m.url, ok: m.state === "ready", ...(m.error ? { error: m.error } : {}) });

export function auditedLauncher(launcher: Launcher, audit: Audit): Launcher {
  return {
    ...launcher,
    launch(config, options) {
      // Restart recovery says how many recorded workers it was given to adopt.
      const args = options?.adopt?.length ? { ...groupArgs(config), recorded: options.adopt.length } : groupArgs(config);
      return audit.run("launcher.launch", args, () => launcher.launch(config, options), (r) => ({ workers: r.workers.map(fromManaged) }));
    },
    scale(config, count, options) {
      return audit.run("launcher.scale", { ...groupArgs(config), count, ...(options?.create ? { create: true } : {}) }, () => launcher.scale(config, count, options), (r) => ({
        workers: [...r.started.map(fromManaged), ...r.stopped.map((u) => ({ worker: u, ok: true }))],
      }));
    },
    stop(urls) {
      return audit.run("launcher.stop", urls === undefined ? { all: true } : { urls: [...urls] }, () => launcher.stop(urls));
    },
  };
}
