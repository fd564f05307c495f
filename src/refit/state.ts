import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { PersistedState, StateStore } from "./state-store.js";

export type LastRefit = PersistedState["last"];
export type RefitInProgress = PersistedState["inProgress"];

/** The pool's weights: its version, how it got there, and what the state file remembers. */
export interface RefitState {
  /** The pool's weight version ("0" before any refit). */
  version: string;
  /** Successful refits so far (the default version counter). */
  refits: number;
  /** How the current weights were loaded (null: the base weights). */
  last: LastRefit;
  /** Workers the state file says held `version`, by process fingerprint. */
  remembered: PersistedState["workers"];
  /** The label of a refit that names none. */
  nextVersion(): string;
  /** Moves the pool to `version`, loaded as `last` says. */
  advance(version: string, last: LastRefit): void;
  /** Writes the state file (when there is one); `inProgress` = a refit that has started and not ended. */
  persist(inProgress?: RefitInProgress): void;
}

export interface RefitStateOptions {
  registry: Registry;
  store: StateStore | null;
  logger: Logger;
}

export function createRefitState({ registry, store, logger }: RefitStateOptions): RefitState {
  const state: RefitState = {
    version: "0",
    refits: 0,
    last: null,
    remembered: {},
    nextVersion: () => String(state.refits + 1),
    advance(version, last) {
      state.version = version;
      state.refits++;
      state.last = last;
    },
    persist(inProgress = null) {
      if (!store) return;
      const workers: PersistedState["workers"] = {};
      for (const w of registry.all()) workers[w.url] = { version: w.weightVersion, fingerprint: w.capabilities.instanceFingerprint };
      try {
        store.save({ version: state.version, refits: state.refits, last: state.last, inProgress, workers });
      } catch (err) {
        // A full disk must not take the router down; the state is one write behind.
        logger.error({ err, path: store.path }, "could not write the state file");
      }
    },
  };
  const saved = store?.load() ?? null;
  if (saved) restore(state, saved, logger);
  return state;
}

/**
 * A router restarted mid-refit cannot know which workers loaded what, so it
 * trusts none of them and converges them to the target.
 */
function restore(state: RefitState, saved: PersistedState, logger: Logger): void {
  state.version = saved.version;
  state.refits = saved.refits;
  state.last = saved.last;
  state.remembered = saved.workers ?? {};
  if (saved.inProgress?.kind === "disk") {
    state.version = saved.inProgress.targetVersion;
    state.refits++; // the next default version must not repeat this label
    state.last = { kind: "disk", body: saved.inProgress.body };
    state.remembered = {};
    logger.warn({ version: state.version }, "state file: the router stopped during a disk refit; every worker is re-synced to the refit's weights before it takes traffic");
  } else if (saved.inProgress?.kind === "tensor") {
    state.last = { kind: "tensor" };
    state.remembered = {};
    logger.warn("state file: the router stopped during a tensor refit; every worker stays out of rotation until a trainer updates it");
  }
}
