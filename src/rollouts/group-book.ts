import type { PromptGroup } from "../admission/groups.js";

/** A result kept back: handed out with its group, or dropped when the group never resolves. */
interface Held {
  emit(): void;
  drop(): void;
}

/** One prompt group of a job: its admission pin and what became of its items. */
interface GroupState {
  readonly pin: PromptGroup;
  readonly size: number;
  /** 2xx answers complete (counted at each answer's end). */
  ok: number;
  /** Items with a result (succeeded or failed). */
  resolved: number;
  /** Results of the group held until the whole group is resolved (min_complete_groups jobs). */
  readonly held: Held[];
  /** An item of it was cancelled: its held results are dropped, and so are those still to come. */
  cut: boolean;
}

/**
 * A job's prompt groups: the pin each group's tickets share (admission puts
 * a group on one worker), which groups are complete (every item answered
 * 2xx), and, for a job that stops at K groups, its results held until the
 * group is resolved, so that no part of a group is handed out on its own.
 */
export class GroupBook {
  readonly #groups = new Map<string, GroupState>();
  readonly #hold: boolean;
  #complete = 0;

  /** `groups`: each item's group or null; `hold`: results wait for their whole group. */
  constructor(groups: readonly (string | null)[], hold: boolean) {
    this.#hold = hold;
    const sizes = new Map<string, number>();
    for (const g of groups) if (g !== null) sizes.set(g, (sizes.get(g) ?? 0) + 1);
    for (const [name, size] of sizes) this.#groups.set(name, { pin: { name, worker: null }, size, ok: 0, resolved: 0, held: [], cut: false });
  }

  get size(): number {
    return this.#groups.size;
  }

  /** The admission pin of a group (shared by the tickets of its items). */
  pin(name: string): PromptGroup {
    return this.#groups.get(name)!.pin;
  }

  /** An item's answer ended whole with `ok`; returns the number of complete groups when this one just completed, else 0. */
  answerEnded(name: string, ok: boolean): number {
    const g = this.#groups.get(name)!;
    if (!ok || ++g.ok !== g.size) return 0;
    return ++this.#complete;
  }

  /**
   * An item of `name` ended: `result` is its result (emitted now, or, held,
   * once every item of the group has one), null when it was cancelled (a
   * held group is then cut: what it holds, and will get, is dropped).
   */
  resolved(name: string, result: Held | null): void {
    const g = this.#groups.get(name)!;
    g.resolved++;
    if (!this.#hold) return result?.emit();
    if (result === null) g.cut = true;
    else g.held.push(result);
    if (g.cut) for (const r of g.held.splice(0)) r.drop();
    else if (g.resolved === g.size) for (const r of g.held.splice(0)) r.emit();
  }

  /** Groups whose every item succeeded, in name order. */
  completed(): string[] {
    return [...this.#groups.values()].filter((g) => g.ok === g.size).map((g) => g.pin.name).sort();
  }

  /** Drops the held results of groups that will not resolve (the job ended first: the rest was cancelled). */
  dropHeld(): void {
    for (const g of this.#groups.values()) for (const r of g.held.splice(0)) r.drop();
  }
}
