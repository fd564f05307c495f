import type { Worker } from "../registry/worker.js";

/**
 * A prompt group of a rollout job (GRPO compares the samples of one prompt
 * with each other): every item of it goes to one worker, so the group sees
 * one weights state, can be batched, and fails in one place. One object per
 * group, shared by the tickets of its items; `worker` is set when the first
 * item is handed a worker (admission's `take`).
 *
 * Unlike a routing key (best effort: bounded-load hashing), this is hard
 * affinity: the group's items wait for their worker while it is busy,
 * asleep, syncing or draining, and move only when it fails (dead, ejected
 * or removed) or fails one of them (that item's retry goes elsewhere and
 * the rest of the group follows it).
 */
export interface PromptGroup {
  /** The group's name, as the client gave it. */
  readonly name: string;
  worker: Worker | null;
}

/**
 * The workers a group's item may take now, among `all` (routable, eligible
 * ones): its group's worker, nothing while that worker is only unavailable
 * for now (busy, asleep, syncing, draining, or not eligible for a moment
 * while its capabilities are re-read), and `all` when the group is not
 * placed yet or its worker failed: dead, or gone from the registry (`lookup`
 * by URL). The group is then unplaced, so the plan places it again as one
 * unit.
 */
export function groupCandidates(group: PromptGroup, all: readonly Worker[], lookup: (url: string) => Worker | undefined, exclude: ReadonlySet<string> | null): readonly Worker[] {
  const w = group.worker;
  if (w === null) return all;
  // This item already failed on the group's worker: its retry goes elsewhere (and takes the group along).
  if (exclude?.has(w.url)) return all.filter((o) => !exclude.has(o.url));
  if (all.includes(w)) return [w];
  const now = lookup(w.url);
  if (now === undefined || now !== w || now.dead) {
    group.worker = null;
    return all;
  }
  return [];
}
