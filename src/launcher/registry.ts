import type { BackendDefinition } from "./backend.js";
import { localBackend } from "./local/backend.js";
import { simBackend } from "./sim/backend.js";
import { slurmBackend } from "./slurm/backend.js";
import type { SlurmOptions } from "./slurm/config.js";
import type { SlurmJobFacts } from "./slurm/jobs.js";

/**
 * The registration table: the YAML `backend:` value → its backend. `local`
 * runs `sglang serve` and `sim` the simulated worker of this repo, both as
 * child processes; `slurm` submits one Slurm job per worker (running either
 * of them, see SlurmOptions.program). A new backend is a folder exporting a
 * {@link BackendDefinition} and one line here (plus its section and facts
 * types below, if it has them).
 */
export const backendTable = {
  local: localBackend,
  sim: simBackend,
  slurm: slurmBackend,
} as const satisfies Record<string, BackendDefinition>;

export type LauncherBackend = keyof typeof backendTable;
/** The `backend:` values, in registration order. */
export const launcherBackends = Object.freeze(Object.keys(backendTable)) as readonly LauncherBackend[];

/** Each backend's own mapping in a parsed group: filled for a group of that backend, null otherwise. */
export type BackendSections = {
  /** The `slurm:` options, defaults filled, when backend is "slurm"; null otherwise. */
  readonly slurm: SlurmOptions | null;
};

/** What backends add to a managed worker's snapshot (ListManagedWorkers), each under its own key. */
export type BackendFacts = {
  /** Backend slurm: the current job's id, node ("" while pending) and last squeue state. */
  readonly slurm?: SlurmJobFacts;
};
