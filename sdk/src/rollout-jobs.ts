import type { JsonObject } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { RolloutService, type RolloutState } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";
import { RolloutRun } from "./rollout-run.js";

/** One request of a rollout job. */
export interface RolloutJobRequest {
  path: "/v1/images/generations" | "/rollout/generate" | "/v1/diffusion/generate";
  /** The route's JSON body. */
  body: JsonObject;
  /** The prompt group it belongs to: a group's items all go to one worker (moved only if it fails). */
  group?: string;
}

export interface RolloutJobOptions {
  /** End the job once this many items succeeded; the rest are cancelled. */
  minComplete?: number;
  /**
   * End the job once this many groups (`group` of the requests) are complete, every item of each
   * succeeded; the rest are cancelled. Results then arrive a whole group at a time: a group cut
   * short sends none. Not with `minComplete`.
   */
  minCompleteGroups?: number;
  /** Cancel what is not done this many seconds after the start. */
  deadlineS?: number;
  /** All items on one worker if it can (consistent hashing with bounded load: best effort; `group` is the guarantee). */
  routingKey?: string;
  /**
   * Run only on workers holding this weight version: refused (code `weight_version_mismatch`) if
   * the router holds another, cancelled (reason `weight_version_mismatch`) if a refit changes it.
   */
  weightVersion?: string;
  /** Aborting it closes the stream, which cancels the job. */
  signal?: AbortSignal;
}

/** One finished item, with where it came from. */
export interface RolloutJobResult {
  index: number;
  /** The item's prompt group, or "". */
  group: string;
  /** HTTP status of the item's answer. */
  status: number;
  /** 2xx. */
  ok: boolean;
  /** The worker that answered (its worker_id), or "" when none did. */
  workerId: string;
  /** The weights that made it. */
  weightVersion: string;
  queueMs: number;
  serviceMs: number;
  attempts: number;
  /** Hedged tails: the worker_id a copy of the item ran on, or "" when none ran. */
  hedgeWorkerId: string;
  /** When a copy ran, whose answer this is: "original", "copy" or "none"; "" when none ran. */
  hedgeWinner: string;
  contentType: string;
  /** The answer as the worker sent it. */
  body: Uint8Array;
  /** The body parsed as JSON (images, errors). */
  json<T = unknown>(): T;
}

export interface RolloutJobSummary {
  id: string;
  completed: number;
  failed: number;
  cancelled: number;
  /** Why items were cancelled (min_complete, min_complete_groups, deadline, cancelled, client_closed, weight_version_mismatch), or "". */
  reason: string;
  /** Groups whose every item succeeded, by name. */
  completedGroups: string[];
}

/**
 * A running job: iterate its results in completion order. The job is
 * submitted when `run()` is called; `id`, `summary` and `cancel()` work
 * before, during and after iterating. Leaving the loop early closes the
 * stream, which cancels the job on the router.
 */
export interface RolloutJobRun extends AsyncIterable<RolloutJobResult> {
  /** The job id, as soon as the router started it (rejects if the call failed). */
  readonly id: Promise<string>;
  /**
   * The summary, when the job ended (rejects if the call failed). Asking for
   * it reads the whole stream: results not iterated yet are kept in memory
   * until they are.
   */
  readonly summary: Promise<RolloutJobSummary>;
  /** Cancels the job on the router: queued items never reach a worker, running ones are cut; the summary still arrives. */
  cancel(): Promise<void>;
}

export interface RolloutJobs {
  /** Submits a whole burst at once; results stream back as they finish. */
  run(requests: readonly RolloutJobRequest[], options?: RolloutJobOptions): RolloutJobRun;
  /** The live state of a job and its items. */
  get(id: string): Promise<RolloutState>;
  /** Cancels a job by id. */
  cancel(id: string): Promise<RolloutState>;
}

/** The rollout jobs of the RolloutService, over a transport that carries the data-plane key (and throws RouterClientErrors). */
export function createRolloutJobs(transport: Transport): RolloutJobs {
  const client: Client<typeof RolloutService> = createClient(RolloutService, transport);
  return {
    run(requests, options = {}) {
      // Our own controller: leaving the loop early closes the stream too.
      const controller = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
      const events = client.run(
        {
          requests: requests.map((r) => ({ path: r.path, body: r.body, group: r.group ?? "" })),
          minComplete: options.minComplete,
          minCompleteGroups: options.minCompleteGroups,
          deadlineS: options.deadlineS,
          routingKey: options.routingKey ?? "",
          weightVersion: options.weightVersion ?? "",
        },
        { signal },
      );
      return new RolloutRun({
        events: events[Symbol.asyncIterator](),
        close: () => controller.abort(),
        cancel: async (id) => void (await client.cancel({ id })),
      });
    },
    async get(id) {
      return (await client.getRollout({ id })).rollout!;
    },
    async cancel(id) {
      return (await client.cancel({ id })).rollout!;
    },
  };
}
