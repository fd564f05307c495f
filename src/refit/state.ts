import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";
import type { PersistedState, SharedLora, StateStore } from "./state-store.js";
import { modelOf } from "./targets.js";

export type LastRefit = PersistedState["last"];
export type RefitInProgress = PersistedState["inProgress"];

/** The weights a set of workers should hold: a version and how it was loaded (null: the base weights). */
export interface Weights {
  version: string;
  last: LastRefit;
}

/** The pool's weights: its version, how it got there, and what the state file remembers. */
export interface RefitState {
  /** The pool's weight version ("0" before any refit). */
  version: string;
  /** Successful refits so far (the default version counter). */
  refits: number;
  /** How the current weights were loaded (null: the base weights). */
  last: LastRefit;
  /** Models refitted on their own: their weights, which differ from the pool's. */
  models: Map<string, Weights>;
  /** Workers the state file says held their version, by process fingerprint. */
  remembered: PersistedState["workers"];
  /** The weights `w` should hold: its model's when that model was refitted on its own, else the pool's. */
  weightsOf(w: Worker): Weights;
  /** The weights of `model` (null: the pool's). */
  weightsOfModel(model: string | null): Weights;
  /** The label of a refit that names none. */
  nextVersion(): string;
  /** Moves `model` (null: the whole pool, which then has one version again) to `version`, loaded as `last` says. */
  advance(version: string, last: LastRefit, model?: string | null): void;
  /** Writes the state file (when there is one); `inProgress` = a refit that has started and not ended. */
  persist(inProgress?: RefitInProgress): void;
  /** What the state also carries of the pool's LoRA (set once the LoRA pool exists; null: nothing). */
  lora: () => SharedLora | null;
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
    models: new Map(),
    remembered: {},
    lora: () => null,
    weightsOf: (w) => state.weightsOfModel(modelOf(w)),
    weightsOfModel: (model) => (model !== null && state.models.get(model)) || { version: state.version, last: state.last },
    nextVersion: () => String(state.refits + 1),
    advance(version, last, model = null) {
      state.refits++;
      if (model !== null) {
        state.models.set(model, { version, last });
        return;
      }
      state.version = version;
      state.last = last;
      state.models.clear();
    },
    persist(inProgress = null) {
      if (!store) return;
      const workers: PersistedState["workers"] = {};
      for (const w of registry.all()) workers[w.url] = { version: w.weightVersion, fingerprint: w.capabilities.instanceFingerprint, ...(w.sleeping ? { sleeping: true as const } : {}) };
      const models = state.models.size > 0 ? { models: Object.fromEntries(state.models) } : {};
      const lora = state.lora();
      try {
        store.save({ version: state.version, refits: state.refits, last: state.last, inProgress, workers, ...models, ...(lora === null ? {} : { lora }) });
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
 * The restart rule, as the state it leaves: a refit that was in progress
 * when its router stopped cannot tell which workers loaded what, so no
 * worker is trusted (`workers` empty). A disk refit is rolled forward (the
 * pool moves to its target; every worker is re-synced to it by replaying
 * the body, harmless on one that loaded it already); a tensor refit, which
 * the router cannot replay, leaves the version and trusts no worker until a
 * trainer updates it. An interrupted sleep just ends. Used by a restarted router (`restore`) and by a
 * router that finds another one died mid-refit (state/refit-recover.ts).
 */
export function afterInterruptedRefit(saved: PersistedState): PersistedState {
  const p = saved.inProgress;
  if (p === null) return saved;
  // A sleep changes no weights: the workers keep their versions (one that went to sleep unrecorded is found asleep by its first answer: health/sleep-check.ts).
  if (p.kind === "sleep") return { ...saved, inProgress: null };
  // A LoRA change the router did not end: the state's LoRA is the one before it; workers that took the new one are replayed to it by their routers' LoRA re-sync.
  if (p.kind === "lora") return { ...saved, inProgress: null };
  if (p.kind === "tensor") return { ...saved, last: { kind: "tensor" }, inProgress: null, workers: {} };
  const last = { kind: "disk" as const, body: p.body };
  // refits + 1, as advance() counts it: the next default version must not repeat this label.
  const refits = saved.refits + 1;
  if (p.model !== undefined) return { ...saved, refits, models: { ...(saved.models ?? {}), [p.model]: { version: p.targetVersion, last } }, inProgress: null, workers: {} };
  // A pool-wide refit gives every model the pool's weights again (as advance() does).
  const rest: PersistedState = { ...saved };
  delete rest.models;
  return { ...rest, version: p.targetVersion, refits, last, inProgress: null, workers: {} };
}

/** A router restarted mid-refit applies the restart rule ({@link afterInterruptedRefit}). */
function restore(state: RefitState, saved: PersistedState, logger: Logger): void {
  const settled = afterInterruptedRefit(saved);
  state.version = settled.version;
  state.refits = settled.refits;
  state.last = settled.last;
  state.models = new Map(Object.entries(settled.models ?? {}));
  state.remembered = settled.workers ?? {};
  if (saved.inProgress?.kind === "disk") {
    logger.warn({ version: saved.inProgress.targetVersion, model: saved.inProgress.model }, "state file: the router stopped during a disk refit; every worker is re-synced to the refit's weights before it takes traffic");
  } else if (saved.inProgress?.kind === "tensor") {
    logger.warn("state file: the router stopped during a tensor refit; every worker stays out of rotation until a trainer updates it");
  }
}
