import type { Registry } from "../registry/registry.js";
import { displayIdOf, workerIdOf } from "../registry/worker-url.js";
import type { ManagedWorker } from "./launcher-api.js";

/**
 * What the router's views (`/workers`, `/health`, `/metrics`, the
 * dashboard) know of the launcher: its workers, and which of them failed.
 * A worker past `max_restarts` (or one that never became healthy) is not
 * in the registry, so nothing routes to it; without this view it would
 * vanish from every place an operator looks. Built with the core, before the
 * launcher exists: the launcher is attached once built.
 */
export class ManagedView {
  #list: (() => ManagedWorker[]) | null = null;

  constructor(private readonly registry: Registry) {}

  attach(list: () => ManagedWorker[]): void {
    this.#list = list;
  }

  list(): ManagedWorker[] {
    return this.#list?.() ?? [];
  }

  /** Managed workers in state `failed` that no registered worker stands for (a worker on their URL would be shown itself). */
  failed(): ManagedWorker[] {
    return this.list().filter((m) => m.state === "failed" && (m.url === "" || this.registry.get(m.url) === undefined));
  }
}

/**
 * A failed managed worker in the shape of `/workers`: the original's fields
 * first, `state: "failed"` and the launcher's reason in `last_error`, then
 * the launcher's facts (`name`, `group`, `restarts`).
 */
export function failedWorkerJson(m: ManagedWorker): Record<string, unknown> {
  return {
    // A Slurm job that never reported has no URL: its name stands for it.
    worker_id: m.url === "" ? m.name : workerIdOf(m.url),
    display_id: m.url === "" ? m.name : displayIdOf(m.url),
    url: m.url,
    active_requests: 0,
    is_dead: true,
    is_sleeping: false,
    consecutive_failures: 0,
    video_support: false,
    state: "failed",
    dead_reason: "launcher_failed",
    last_error: m.error ?? null,
    task_type: null,
    models: [m.model],
    weight_version: null,
    draining: false,
    managed: true,
    parallel_slots: 0,
    name: m.name,
    group: m.group,
    restarts: m.restarts,
  };
}

/** A managed worker in REST's snake_case (`GET /managed_workers`): ListManagedWorkers' fields. */
export function managedWorkerJson(m: ManagedWorker): Record<string, unknown> {
  return {
    name: m.name,
    group: m.group,
    url: m.url,
    state: m.state,
    backend: m.backend,
    model: m.model,
    pid: m.pid,
    port: m.port,
    master_port: m.masterPort,
    scheduler_port: m.schedulerPort,
    gpus: m.gpus,
    started_at_ms: m.startedAtMs,
    restarts: m.restarts,
    exit_code: m.exitCode ?? null,
    exit_signal: m.exitSignal ?? null,
    error: m.error ?? null,
    ...(m.slurm === undefined ? {} : { slurm: m.slurm }),
  };
}
