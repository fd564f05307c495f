import type { SharedLora } from "../refit/state-store.js";
import type { Worker } from "../registry/worker.js";

/** The three LoRA calls a worker takes, by the router's action name. */
export const loraCalls = {
  set: "/v1/set_lora",
  merge: "/v1/merge_lora_weights",
  unmerge: "/v1/unmerge_lora_weights",
} as const;

export type LoraKind = keyof typeof loraCalls;

/** What the router believes a worker (or the pool) holds: the adapter(s) set and whether merged. */
export interface LoraView {
  nickname: string | string[];
  merged: boolean;
}

/**
 * The pool's LoRA for one scope (every worker, or the workers of one model):
 * the last set_lora body and the last merge/unmerge after it, replayed in
 * that order to a worker that joins or restarts. `generation` changes with
 * every recorded call, so a worker's record says whether it is current.
 */
export interface LoraScope {
  readonly model: string | null;
  readonly setBody: string;
  readonly nickname: string | string[];
  readonly merged: boolean;
  /** The last merge or unmerge since the set, as sent (null: none). */
  readonly mergeCall: { kind: "merge" | "unmerge"; body: string } | null;
  readonly generation: number;
}

interface Applied {
  /** The worker process (registry `processEpoch`) that took it: a restart loses it. */
  epoch: number;
  generation: number;
  view: LoraView;
}

function nicknameOf(json: Record<string, unknown>): string | string[] {
  const n = json.lora_nickname;
  return Array.isArray(n) ? n.map(String) : String(n);
}

/**
 * The pool's LoRA state and what each worker took of it. A scope named by a
 * model wins over the pool-wide one for that model's workers. SGLang's
 * set_lora activates the adapter merged, so a set is `merged: true`.
 */
export class PoolLora {
  /** "" = every worker; otherwise a model id. */
  readonly #scopes = new Map<string, LoraScope>();
  readonly #applied = new Map<string, Applied>();
  /** Workers the adopted state lists as holding a scope generation, not yet seen here (see {@link joined}). */
  readonly #listed = new Map<string, number>();
  #generation = 0;

  /** The scope a worker should hold, or null when the pool never set a LoRA for it. */
  desiredFor(w: Worker): LoraScope | null {
    for (const m of w.capabilities.models) {
      const s = this.#scopes.get(m);
      if (s) return s;
    }
    return this.#scopes.get("") ?? null;
  }

  /** Whether the worker holds what the pool says it should (nothing set = current). */
  isCurrent(w: Worker): boolean {
    const want = this.desiredFor(w);
    if (want === null) return true;
    const a = this.#applied.get(w.url);
    return a !== undefined && a.epoch === w.processEpoch && a.generation === want.generation;
  }

  /** The new scope a call makes (not yet recorded: only when some worker took it). */
  next(kind: LoraKind, model: string | null, body: string, json: Record<string, unknown>): LoraScope {
    const key = model ?? "";
    const generation = ++this.#generation;
    if (kind === "set") return { model, setBody: body, nickname: nicknameOf(json), merged: true, mergeCall: null, generation };
    // A merge for one model starts from the pool-wide adapter when that model has none of its own.
    const base = this.#scopes.get(key) ?? (model !== null ? this.#scopes.get("") : undefined);
    if (!base) return { model, setBody: "", nickname: [], merged: kind === "merge", mergeCall: null, generation };
    return { ...base, model, merged: kind === "merge", mergeCall: { kind, body }, generation };
  }

  /** The pool now holds `scope`; a pool-wide set or merge replaces every model's own. */
  record(scope: LoraScope): void {
    if (scope.setBody === "") return; // a merge with nothing set: nothing to replay
    if (scope.model === null) {
      // A pool-wide merge applies to each model's adapter too: keep them, flipped.
      for (const [k, s] of this.#scopes) {
        if (k === "") continue;
        if (scope.mergeCall === null) this.#scopes.delete(k);
        else this.#scopes.set(k, { ...s, merged: scope.merged, mergeCall: scope.mergeCall, generation: scope.generation });
      }
    }
    this.#scopes.set(scope.model ?? "", scope);
  }

  /** The worker took `scope` (by the action or a replay). */
  took(w: Worker, epoch: number, scope: LoraScope): void {
    this.#applied.set(w.url, { epoch, generation: scope.generation, view: { nickname: scope.nickname, merged: scope.merged } });
  }

  forget(url: string): void {
    this.#applied.delete(url);
    this.#listed.delete(url);
  }

  /** What `/workers` shows: the LoRA the worker holds as far as the router knows (null: none, or its process restarted). */
  viewOf(w: Worker): LoraView | null {
    const a = this.#applied.get(w.url);
    return a !== undefined && a.epoch === w.processEpoch ? a.view : null;
  }

  /** The scopes and, per worker, the generation its current process took (for the shared state); null when no LoRA was ever set. */
  snapshot(workers: readonly Worker[]): SharedLora | null {
    if (this.#scopes.size === 0) return null;
    const took: Record<string, number> = {};
    for (const w of workers) {
      const a = this.#applied.get(w.url);
      if (a !== undefined && a.epoch === w.processEpoch) took[w.url] = a.generation;
    }
    return { scopes: [...this.#scopes.values()].map((s) => ({ ...s })), workers: took };
  }

  /**
   * Takes the pool's LoRA as another router left it: its scopes, and the
   * workers it saw take them (held by their current process here: the
   * other router just called them). A worker not listed is not known to
   * hold them; this router's own record of it is dropped. The generation
   * counter moves past the other router's, so this router's next change is
   * newer than every scope it took.
   */
  adopt(shared: SharedLora, workers: readonly Worker[]): void {
    this.#scopes.clear();
    for (const s of shared.scopes) this.#scopes.set(s.model ?? "", { ...s });
    for (const s of shared.scopes) this.#generation = Math.max(this.#generation, s.generation);
    this.#listed.clear();
    for (const [url, g] of Object.entries(shared.workers)) this.#listed.set(url, g);
    for (const w of workers) {
      this.#applied.delete(w.url);
      this.joined(w);
    }
  }

  /**
   * A worker the adopted state lists, seen here for the first time since (a
   * router starting on a shared store registers the pool after it read the
   * state): it holds what the state says, as a worker registered at the
   * adoption does. Called by the re-sync before it judges a worker.
   */
  joined(w: Worker): void {
    const g = this.#listed.get(w.url);
    if (g === undefined) return;
    this.#listed.delete(w.url);
    const want = this.desiredFor(w);
    if (want !== null && g === want.generation) this.took(w, w.processEpoch, want);
  }

  /** The pool's scopes for answers: `{model, nickname, merged}` each. */
  describe(): { model: string | null; nickname: string | string[]; merged: boolean }[] {
    return [...this.#scopes.values()].map((s) => ({ model: s.model, nickname: s.nickname, merged: s.merged }));
  }
}
