import type { BroadcastResult, Control } from "../admin/control.js";
import type { Launcher, LauncherConfig, LauncherGroups, ManagedWorker } from "../launcher/index.js";
import type { DiskRefitResult, MemoryResult, RefitCoordinator } from "../refit/coordinator.js";
import type { Audit, AuditSummary, AuditWorkerOutcome } from "./audit.js";

/*
 * Decorators that put every control action on the audit trail. They wrap the
 * shared operations (Control, the refit coordinator, the launcher) that REST
 * and RPC both call, so an action is audited once whichever door it came
 * through, and the business logic knows nothing of auditing.
 */

/** A worker's broadcast answer as an audit outcome (200 and not success:false). */
function fromBroadcast(r: BroadcastResult): AuditWorkerOutcome {
  const body = r.body as Record<string, unknown> | null;
  const ok = r.status_code === 200 && !(body && typeof body === "object" && body.success === false);
  const out: AuditWorkerOutcome = { worker: r.worker_url, ok, status: r.status_code };
  if (!ok) {
    const m = body?.message ?? body?.detail ?? body?.error ?? body?.raw;
    out.error = (typeof m === "string" ? m : JSON.stringify(m ?? body) ?? "").slice(0, 300);
  }
  return out;
}

function fromDiskRefit(r: DiskRefitResult): AuditSummary {
  const summary: AuditSummary = { workers: r.results.map(fromBroadcast) };
  if (r.failure !== null) {
    summary.code = "upstream_failed";
    summary.message = r.failure;
  }
  return summary;
}

const fromMemory = (r: MemoryResult): AuditSummary => ({ workers: r.results.map(fromBroadcast) });

/** Scalars of a weight-load body worth a line (model path, version, flags), never tensors or large values. */
function scalarArgs(json: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
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
  const wrapped: RefitCoordinator = Object.create(refit) as RefitCoordinator;
  Object.assign(wrapped, {
    updateWeightsFromDisk(raw: Buffer, json: Record<string, unknown>, drainTimeoutMs?: number) {
      return audit.run("refit.from_disk", { ...scalarArgs(json), drain_timeout_s: seconds(drainTimeoutMs) }, () => refit.updateWeightsFromDisk(raw, json, drainTimeoutMs), fromDiskRefit);
    },
    begin(drainTimeoutMs?: number, timeoutMs?: number) {
      return audit.run("refit.begin", { drain_timeout_s: seconds(drainTimeoutMs), timeout_s: seconds(timeoutMs) }, () => refit.begin(drainTimeoutMs, timeoutMs), (r) => ({ workers: r.workers.map((w) => ({ worker: w, ok: true })) }));
    },
    updateTensors(workerUrl: string, send: Parameters<RefitCoordinator["updateTensors"]>[1]) {
      return audit.run("refit.tensor_update", { worker: workerUrl }, () => refit.updateTensors(workerUrl, send), (o) => ({
        workers: [{ worker: o.worker_url, ok: o.ok, ...(o.status_code ? { status: o.status_code } : { error: "no answer from the worker" }) }],
      }));
    },
    commit(weightVersion: unknown) {
      return audit.run("refit.commit", { weight_version: weightVersion ?? null }, () => refit.commit(weightVersion), (r) => ({
        workers: [...r.updated_workers.map((w) => ({ worker: w, ok: true })), ...r.stale_workers.map((w) => ({ worker: w, ok: false, error: "not updated: left rotation as stale" }))],
      }));
    },
    abort(why?: string) {
      return audit.run("refit.abort", why === undefined ? {} : { reason: why }, () => refit.abort(why), (r) => ({ workers: r.stale_workers.map((w) => ({ worker: w, ok: false, error: "holds uncommitted weights: left rotation as stale" })) }));
    },
    releaseMemory(raw: Buffer, drainTimeoutMs?: number) {
      return audit.run("memory.release", { drain_timeout_s: seconds(drainTimeoutMs) }, () => refit.releaseMemory(raw, drainTimeoutMs), fromMemory);
    },
    resumeMemory(raw: Buffer) {
      return audit.run("memory.resume", {}, () => refit.resumeMemory(raw), fromMemory);
    },
  });
  return wrapped;
}

function groupArgs(config: LauncherConfig | LauncherGroups): Record<string, unknown> {
  const groups = Array.isArray(config) ? (config as LauncherGroups) : [config as LauncherConfig];
  return { groups: groups.map((g) => ({ backend: g.backend, model: g.model, num_workers: g.num_workers })) };
}

const fromManaged = (m: ManagedWorker): AuditWorkerOutcome => ({ worker: m.url, ok: m.state === "ready", ...(m.error ? { error: m.error } : {}) });

export function auditedLauncher(launcher: Launcher, audit: Audit): Launcher {
  return {
    ...launcher,
    launch(config) {
      return audit.run("launcher.launch", groupArgs(config), () => launcher.launch(config), (r) => ({ workers: r.workers.map(fromManaged) }));
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
