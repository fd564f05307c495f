import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  RolloutStateSchema,
  RunResponseSchema,
  type RolloutService,
  type RolloutState,
  type RunRequest,
  type RunResponse,
} from "../gen/sgl/diffusion/router/v1/rollout_pb.js";
import type { Logger } from "../log.js";
import type { RolloutJob } from "../rollouts/rollout-job.js";
import type { Rollouts } from "../rollouts/rollouts.js";
import { toConnectError } from "./errors.js";

/**
 * The RPC door of rollout jobs: the same jobs as REST's /v1/rollouts,
 * results as messages with the body as bytes. Closing the stream (the
 * client's cancel, or its deadline) cancels the job.
 */
export function createRolloutServiceImpl(rollouts: Rollouts, logger: Logger): ServiceImpl<typeof RolloutService> {
  return {
    async *run(req: RunRequest, ctx: HandlerContext): AsyncGenerator<RunResponse> {
      let job: RolloutJob;
      try {
        job = rollouts.submit({
          requests: req.requests.map((r) => ({ path: r.path, body: r.body ?? null, group: r.group === "" ? undefined : r.group })),
          min_complete: req.minComplete,
          min_complete_groups: req.minCompleteGroups,
          deadline_s: req.deadlineS,
          routing_key: req.routingKey === "" ? undefined : req.routingKey,
          weight_version: req.weightVersion === "" ? undefined : req.weightVersion,
        });
      } catch (err) {
        throw toConnectError(err);
      }
      // A trainer that has what it needs hangs up: logged once, at info, as REST does.
      let told = false;
      const clientClosed = () => {
        if (told || job.ended) return;
        told = true;
        logger.info({ rollout: job.id, transport: "rpc" }, "client closed the stream");
        job.cancel("client_closed");
      };
      const onAbort = clientClosed;
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        yield create(RunResponseSchema, { event: { case: "started", value: { id: job.id, size: job.size } } });
        for await (const e of job.events()) {
          if (e.type === "result") {
            const r = e.result;
            yield create(RunResponseSchema, {
              event: {
                case: "result",
                value: {
                  index: r.index,
                  group: r.group ?? "",
                  status: r.status,
                  workerId: r.workerId ?? "",
                  weightVersion: r.weightVersion ?? "",
                  queueMs: r.queueMs,
                  serviceMs: r.serviceMs,
                  attempts: r.attempts,
                  hedgeWorkerId: r.hedge?.workerId ?? "",
                  hedgeWinner: r.hedge?.winner ?? "",
                  contentType: r.contentType,
                  body: r.body,
                },
              },
            });
          } else {
            const s = e.summary;
            yield create(RunResponseSchema, { event: { case: "summary", value: { id: s.id, completed: s.completed, failed: s.failed, cancelled: s.cancelled, reason: s.reason ?? "", completedGroups: s.completedGroups } } });
          }
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        // A consumer that stops reading (return/throw) also ends the job, and nobody keeps its results.
        clientClosed();
        job.detach();
      }
    },

    async cancel(req) {
      try {
        return { rollout: stateOf(rollouts.cancel(req.id)) };
      } catch (err) {
        throw toConnectError(err);
      }
    },

    async getRollout(req) {
      try {
        return { rollout: stateOf(rollouts.get(req.id)) };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

function stateOf(job: RolloutJob): RolloutState {
  const v = job.view();
  return create(RolloutStateSchema, {
    id: v.id,
    status: v.status,
    size: v.size,
    summary: { id: v.id, completed: v.summary.completed, failed: v.summary.failed, cancelled: v.summary.cancelled, reason: v.summary.reason ?? "", completedGroups: v.summary.completed_groups },
    items: v.items.map((i) => ({ index: i.index, group: i.group ?? "", state: i.state, status: i.status ?? 0, workerId: i.worker_id ?? "", weightVersion: i.weight_version ?? "" })),
  });
}
