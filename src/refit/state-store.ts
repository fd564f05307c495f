/** What the router must remember across a restart to never mix weights. */
export interface PersistedState {
  /** Current weight version of the pool. */
  version: string;
  /** Successful refits so far (the default version counter). */
  refits: number;
  /** How the current weights were loaded; a disk body can be replayed to joining workers. */
  last: { kind: "disk"; body: string } | { kind: "tensor" } | null;
  /**
   * A refit, memory release (sleep) or LoRA change that had started and not finished when
   * the state was written. A sleep is here so that the other routers on a
   * shared store hold and drain for it as for a refit (state/refit-follow.ts).
   */
  inProgress: { kind: "disk"; body: string; targetVersion: string; startedAtMs: number; model?: string } | { kind: "tensor"; startedAtMs: number } | { kind: "sleep"; startedAtMs: number; model?: string } | { kind: "lora"; startedAtMs: number } | null;
  /** Models refitted on their own (a refit that named a model), each with its version and last refit; absent = none. */
  models?: Record<string, { version: string; last: PersistedState["last"] }>;
  /**
   * Per worker: the version it held and the process it was (model card
   * `created`); `sleeping` (only when true) put to sleep through a router, so
   * another router on the shared store takes it out of rotation before it
   * releases the requests it held for the sleep.
   */
  workers: Record<string, { version: string | null; fingerprint: string | null; sleeping?: true }>;
  /** The pool's LoRA (lora/pool-lora.ts), so that every router on a shared store answers with it; absent = none set. */
  lora?: SharedLora;
}

/** The pool's LoRA scopes as set through any router, and the scope generation each worker took. */
export interface SharedLora {
  scopes: { model: string | null; setBody: string; nickname: string | string[]; merged: boolean; mergeCall: { kind: "merge" | "unmerge"; body: string } | null; generation: number }[];
  workers: Record<string, number>;
}

/** The refit's part of the state file (state/state-file.ts). */
export interface StateStore {
  readonly path: string;
  load(): PersistedState | null;
  save(state: PersistedState): void;
}
