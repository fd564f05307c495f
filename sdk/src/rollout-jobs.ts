import type { JsonObject } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { RolloutService, type RolloutState } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";

/** One request of a rollout job. */
export interface RolloutJobRequest {
  path: "/v1/images/generations" | "/rollout/generate" | "/v1/diffusion/generate";
  /** The route's JSON body. */
  body: JsonObject;
}

export interface RolloutJobOptions {
  /** End the job once this many items succeeded; the rest are cancelled. */
  minComplete?: number;
  /** Cancel what is not done this many seconds after the start. */
  deadlineS?: number;
  /** All items on one worker (consistent hashing with bounded load). */
  routingKey?: string;
  /** Run only on workers holding this weight version; the call fails (FAILED_PRECONDITION) if the router holds another. */
  weightVersion?: string;
  /** Aborting it closes the stream, which cancels the job. */
  signal?: AbortSignal;
}

/** One finished item, with where it came from. */
export interface RolloutJobResult {
  index: number;
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
  /** Why items were cancelled (min_complete, deadline, cancelled, client_closed, weight_version_mismatch), or "". */
  reason: string;
}

/** A running job: iterate its results in completion order. */
export interface RolloutJobRun extends AsyncIterable<RolloutJobResult> {
  /** The job id, once the router started it. */
  readonly id: Promise<string>;
  /** The summary, after the last result (rejects if the call failed). */
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

/** The rollout jobs of the RolloutService, over a transport that carries the data-plane key. */
export function createRolloutJobs(transport: Transport): RolloutJobs {
  const client: Client<typeof RolloutService> = createClient(RolloutService, transport);
  return {
    run(requests, options = {}) {
      let resolveId!: (id: string) => void;
      let rejectId!: (e: unknown) => void;
      const id = new Promise<string>((res, rej) => ((resolveId = res), (rejectId = rej)));
      let resolveSummary!: (s: RolloutJobSummary) => void;
      let rejectSummary!: (e: unknown) => void;
      const summary = new Promise<RolloutJobSummary>((res, rej) => ((resolveSummary = res), (rejectSummary = rej)));
      // Nobody may await them; an unobserved rejection must not crash the caller.
      id.catch(() => undefined);
      summary.catch(() => undefined);
      let started = false;
      const stream = client.run(
        {
          requests: requests.map((r) => ({ path: r.path, body: r.body })),
          minComplete: options.minComplete,
          deadlineS: options.deadlineS,
          routingKey: options.routingKey ?? "",
          weightVersion: options.weightVersion ?? "",
        },
        { signal: options.signal },
      );
      async function* results(): AsyncGenerator<RolloutJobResult> {
        if (started) throw new TypeError("a rollout job's results can be iterated once");
        started = true;
        try {
          for await (const e of stream) {
            const ev = e.event;
            if (ev.case === "started") resolveId(ev.value.id);
            else if (ev.case === "summary") {
              resolveSummary({ id: ev.value.id, completed: ev.value.completed, failed: ev.value.failed, cancelled: ev.value.cancelled, reason: ev.value.reason });
            } else if (ev.case === "result") {
              const r = ev.value;
              const body = r.body;
              yield {
                index: r.index,
                status: r.status,
                ok: r.status >= 200 && r.status < 300,
                workerId: r.workerId,
                weightVersion: r.weightVersion,
                queueMs: r.queueMs,
                serviceMs: r.serviceMs,
                attempts: r.attempts,
                contentType: r.contentType,
                body,
                json: <T>() => JSON.parse(new TextDecoder().decode(body)) as T,
              };
            }
          }
        } catch (err) {
          rejectId(err);
          rejectSummary(err);
          throw err;
        }
      }
      return {
        id,
        summary,
        [Symbol.asyncIterator]: () => results(),
        async cancel() {
          await client.cancel({ id: await id });
        },
      };
    },
    async get(id) {
      return (await client.getRollout({ id })).rollout!;
    },
    async cancel(id) {
      return (await client.cancel({ id })).rollout!;
    },
  };
}
