import { createHash } from "node:crypto";
import type { Placement } from "./backend.js";
import type { LauncherConfig } from "./config.js";
import { backendTable, type LauncherBackend } from "./registry.js";

/**
 * What a restarted router needs to take one of its managed workers over
 * instead of starting a second copy on the same ports and GPUs (issue 21):
 * which group it belongs to, where it serves, and the handle its backend
 * adopts it by (a process group id; a Slurm job). Written to the state file
 * whenever one changes, so a router SIGKILLed at any point finds the
 * workers it left running.
 */
export interface ManagedRecord {
  /** Its stable name (`group/index`), kept by the adopted worker. */
  readonly name: string;
  readonly group: string;
  readonly backend: LauncherBackend;
  readonly model: string;
  /**
   * A digest of its group's settings (num_workers aside): a restarted router
   * adopts it only into a group configured the same way. The settings
   * themselves are not written (a `slurm.env` may hold tokens).
   */
  readonly settings: string;
  /** Where it serves ("" for a Slurm job that had not reported yet); the placement a process backend restarts it on. */
  readonly url: string;
  readonly port: number;
  readonly masterPort: number;
  readonly schedulerPort: number;
  readonly gpus: string | null;
  /** The backend's {@link RunDescription.handle} of its current start. */
  readonly handle: string;
  readonly restarts: number;
}

/** Configs that differ only in num_workers describe the same kind of worker. */
export function configKey(config: LauncherConfig): string {
  const { num_workers: _ignored, ...rest } = config;
  return JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
}

/** {@link ManagedRecord.settings} of a group. */
export function settingsDigest(config: LauncherConfig): string {
  return createHash("sha256").update(configKey(config)).digest("hex").slice(0, 32);
}

/** The placement a record names (a process backend adopts and restarts it there). */
export function placementOf(record: ManagedRecord): Placement {
  return { url: record.url, port: record.port, masterPort: record.masterPort, schedulerPort: record.schedulerPort, gpus: record.gpus };
}

/** The records of a state file that are well formed; anything else (a hand-edited or older file) is dropped. */
export function validRecords(value: unknown): ManagedRecord[] {
  if (!Array.isArray(value)) return [];
  return value.filter(isManagedRecord);
}

function isManagedRecord(v: unknown): v is ManagedRecord {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  const strings = ["name", "group", "model", "settings", "url", "handle"].every((k) => typeof r[k] === "string");
  const numbers = ["port", "masterPort", "schedulerPort", "restarts"].every((k) => Number.isInteger(r[k]));
  const backend = r["backend"];
  const gpus = r["gpus"];
  return strings && numbers && typeof backend === "string" && Object.hasOwn(backendTable, backend) && (gpus === null || typeof gpus === "string") && r["handle"] !== "";
}
