import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { RouterError } from "../errors.js";

/** What the router must remember across a restart to never mix weights. */
export interface PersistedState {
  /** Current weight version of the pool. */
  version: string;
  /** Successful refits so far (the default version counter). */
  refits: number;
  /** How the current weights were loaded; a disk body can be replayed to joining workers. */
  last: { kind: "disk"; body: string } | { kind: "tensor" } | null;
  /** A refit that had started and not finished when the state was written. */
  inProgress: { kind: "disk"; body: string; targetVersion: string; startedAtMs: number; model?: string } | { kind: "tensor"; startedAtMs: number } | null;
  /** Models refitted on their own (a refit that named a model), each with its version and last refit; absent = none. */
  models?: Record<string, { version: string; last: PersistedState["last"] }>;
  /** Per worker: the version it held and the process it was (model card `created`). */
  workers: Record<string, { version: string | null; fingerprint: string | null }>;
}

export interface StateStore {
  readonly path: string;
  load(): PersistedState | null;
  save(state: PersistedState): void;
}

/**
 * A JSON file written atomically (temp file + rename in the same folder), so
 * a crash mid-write leaves the previous state, never half of one. Writes are
 * synchronous: they happen a few times per refit, and the router must not
 * answer a refit before its state is on disk.
 */
export function createStateStore(path: string): StateStore {
  return {
    path,
    load() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw new RouterError("invalid_request", `cannot read --state-file ${path}: ${(err as Error).message}`, { cause: err });
      }
      let parsed: PersistedState;
      try {
        parsed = JSON.parse(text) as PersistedState;
      } catch (err) {
        throw new RouterError("invalid_request", `--state-file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      if (typeof parsed.version !== "string" || typeof parsed.refits !== "number" || typeof parsed.workers !== "object") {
        throw new RouterError("invalid_request", `--state-file ${path} does not hold router state (version, refits, workers)`);
      }
      return parsed;
    },
    save(state) {
      mkdirSync(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(state, null, 1));
      renameSync(tmp, path);
    },
  };
}
