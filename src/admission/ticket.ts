import type { Worker } from "../registry/worker.js";
import type { PromptGroup } from "./groups.js";
import type { Demand } from "../scheduler/eligibility.js";
import type { RequestFacts } from "../scheduler/request-facts.js";

/**
 * One generation request as admission sees it: what it needs and costs.
 * Made once per request by the data plane; retries reuse it.
 */
export interface Ticket {
  readonly demand: Demand;
  readonly facts: RequestFacts;
  /** Workers already tried (retries go elsewhere). */
  exclude: Set<string> | null;
  /** Set by admission while the request runs. */
  run: Run | null;
  /** Only workers holding this weight version may serve it (a rollout job pinned to a version); null = any. */
  weightVersion: string | null;
  /**
   * Set for the items of a rollout job: they wait as long as their job lets
   * them (its deadline, or until cancelled), not `--queue-timeout`, and do
   * not count against `--queue-size` (a job's size is bounded on its own).
   */
  fromJob?: boolean;
  /**
   * The body names its seed (an integer `seed` in a JSON body the router
   * read): the answer is the same whichever worker runs it, so a copy may
   * serve it (hedge.ts).
   */
  seeded?: boolean;
  /** The prompt group of a rollout item that names one: all its items go to one worker (see groups.ts). */
  group?: PromptGroup;
}

/** A dispatched request (or a video job): when it started, what it was predicted to take, and its batch. */
export interface Run {
  readonly worker: Worker;
  readonly startedMs: number;
  readonly predictedMs: number;
  readonly model: string;
  readonly batch: Batch | null;
}

/**
 * Requests sent together to a batching worker: observed as one when the last
 * member ends. A batch still queued behind the one its worker runs may take
 * more members (LoadBook.joinCost): `size` and `left` grow.
 */
export interface Batch {
  left: number;
  size: number;
  /** The members' batch key (request-facts.ts): a request with the same key may join it; null: none may. */
  readonly key: string | null;
  readonly startedMs: number;
  readonly items: { facts: RequestFacts; ok: boolean }[];
}

/** The end of a request, for the cost model: whether it succeeded and when its answer's head arrived. */
export interface RunEnd {
  ok: boolean;
  /** performance.now() at the answer's head; default: now. */
  doneMs?: number;
}

/** The model name a worker's observations are filed under: its first served model. */
export function modelOf(worker: Worker): string {
  return worker.capabilities.models[0] ?? "";
}
