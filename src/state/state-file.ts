import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { RouterError } from "../errors.js";
import { validRecords, type ManagedRecord } from "../launcher/managed-record.js";
import type { PersistedState, SharedLora, StateStore } from "../refit/state-store.js";
import type { PoolRecord } from "./pool-record.js";

/** The pool's part of the state file. */
export interface PoolStore {
  readonly path: string;
  load(): PoolRecord | null;
  save(pool: PoolRecord): void;
}

/** The launcher's part of the state file: its live workers and how to adopt them. */
export interface LauncherStore {
  readonly path: string;
  /** The recorded workers; null when the file has none recorded. */
  load(): ManagedRecord[] | null;
  save(records: readonly ManagedRecord[]): void;
}

/** One `--state-file`, three writers: the refit coordinator (weights), the pool recorder (which workers) and the launcher (its workers' handles). */
export interface StateFile {
  readonly refit: StateStore;
  readonly pool: PoolStore;
  readonly launcher: LauncherStore;
}

/**
 * The router's state file: one JSON document whose top-level fields are the
 * refit state (as before, so older files still load), whose `pool` field
 * is the worker set and whose `launcher` field the launcher's workers. Each
 * writer saves its own part; the other parts are kept
 * from memory, so the two never overwrite each other. Written atomically
 * (temp file + rename in the same folder): a crash mid-write leaves the
 * previous state, never half of one. Synchronous: writes happen on control
 * actions and registrations, and the router must not answer one before its
 * state is on disk.
 */
export function openStateFile(path: string): StateFile {
  let doc: Record<string, unknown> | undefined;
  const read = (): Record<string, unknown> => {
    if (doc !== undefined) return doc;
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return (doc = {});
      throw new RouterError("invalid_request", `cannot read --state-file ${path}: ${(err as Error).message}`, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RouterError("invalid_request", `--state-file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new RouterError("invalid_request", `--state-file ${path} does not hold router state (a JSON object)`);
    return (doc = parsed as Record<string, unknown>);
  };
  const write = (next: Record<string, unknown>): void => {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(next, null, 1));
    renameSync(tmp, path);
    doc = next;
  };
  return {
    refit: {
      path,
      load() {
        const d = read();
        if (!("version" in d)) return null;
        if (typeof d.version !== "string" || typeof d.refits !== "number" || typeof d.workers !== "object") {
          throw new RouterError("invalid_request", `--state-file ${path} does not hold router state (version, refits, workers)`);
        }
        return {
          version: d.version,
          refits: d.refits,
          last: (d.last ?? null) as PersistedState["last"],
          inProgress: (d.inProgress ?? null) as PersistedState["inProgress"],
          workers: d.workers as PersistedState["workers"],
          // The pool's LoRA (absent in files written before it was kept).
          ...(isSharedLora(d.lora) ? { lora: d.lora } : {}),
        };
      },
      save(state) {
        const { pool, launcher } = read();
        write({ ...state, pool, launcher });
      },
    },
    pool: {
      path,
      load() {
        const pool = read().pool;
        return isPoolRecord(pool) ? pool : null;
      },
      save(pool) {
        write({ ...read(), pool });
      },
    },
    launcher: {
      path,
      load() {
        const part = read().launcher;
        return typeof part === "object" && part !== null ? validRecords((part as { workers?: unknown }).workers) : null;
      },
      save(records) {
        write({ ...read(), launcher: { workers: records } });
      },
    },
  };
}

function isSharedLora(v: unknown): v is SharedLora {
  return typeof v === "object" && v !== null && Array.isArray((v as SharedLora).scopes) && typeof (v as SharedLora).workers === "object";
}

function isPoolRecord(v: unknown): v is PoolRecord {
  return typeof v === "object" && v !== null && Array.isArray((v as PoolRecord).workers);
}
