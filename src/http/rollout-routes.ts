import type { RolloutResult, RolloutSummary } from "../rollouts/rollout-job.js";
import type { RolloutSubmission, Rollouts } from "../rollouts/rollouts.js";
import type { ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { readJsonObject } from "./body.js";
import { sendJson, type Res } from "./respond.js";
import type { RestCall } from "./rest-call.js";

/** A rollout submission carries every item's body: far above the admin limit. */
export const MAX_SUBMISSION_BYTES = 64 * 1024 * 1024;

const ndjsonHeaders = { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-accel-buffering": "no" } as const;

/**
 * The REST door of rollout jobs: `POST /v1/rollouts` answers NDJSON, one
 * line per finished item in completion order, between a first line with the
 * job id and a last line with the summary; `GET /v1/rollouts/{id}` and
 * `POST /v1/rollouts/{id}/cancel`.
 */
export function createRolloutRoutes(rollouts: Rollouts, logger: Logger) {
  /** Waits until the client took what was written (or left). */
  function drained(res: Res): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        res.removeListener("drain", done);
        res.removeListener("close", done);
        resolve();
      };
      res.once("drain", done);
      res.once("close", done);
    });
  }

  return {
    async submit(call: RestCall): Promise<void> {
      // Both response kinds write the same way; one type keeps the calls simple.
      const res = call.res as ServerResponse;
      const { json } = await readJsonObject(call.req, MAX_SUBMISSION_BYTES);
      const job = rollouts.submit(json as RolloutSubmission);
      res.writeHead(200, { ...ndjsonHeaders, "x-rollout-id": job.id, "x-request-id": call.requestId });
      // The caller learns the id before the first result, so it can cancel or poll.
      res.write(`${JSON.stringify({ id: job.id, size: job.size })}\n`);
      const onClose = () => {
        if (res.writableEnded) return;
        // A trainer that has what it needs hangs up: not an error of anyone's.
        logger.info({ requestId: call.requestId, rollout: job.id, transport: "rest" }, "client closed the stream");
        job.cancel("client_closed");
      };
      res.once("close", onClose);
      for await (const e of job.events()) {
        if (res.destroyed) continue; // keep consuming: the job still ends and counts
        const ok = e.type === "result" ? res.write(resultLine(e.result)) : res.write(summaryLine(e.summary));
        if (!ok) await drained(res);
      }
      res.removeListener("close", onClose);
      if (!res.destroyed) res.end();
    },

    list(res: Res): void {
      sendJson(res, 200, { rollouts: rollouts.list().map((job) => job.brief()) });
    },

    get(res: Res, id: string): void {
      sendJson(res, 200, rollouts.get(id).view());
    },

    cancel(res: Res, id: string): void {
      sendJson(res, 200, rollouts.cancel(id).view());
    },
  };
}

export type RolloutRoutes = ReturnType<typeof createRolloutRoutes>;

/** A JSON answer looks like one object or array end to end: embedded as is (no re-encoding of a large answer). */
function looksLikeJson(contentType: string, body: Buffer): boolean {
  if (!/json/i.test(contentType) || body.length === 0) return false;
  let a = 0;
  while (a < body.length && (body[a] === 0x20 || body[a] === 0x0a || body[a] === 0x0d || body[a] === 0x09)) a++;
  let z = body.length - 1;
  while (z > a && (body[z] === 0x20 || body[z] === 0x0a || body[z] === 0x0d || body[z] === 0x09)) z--;
  const open = body[a];
  const close = body[z];
  if (!((open === 0x7b && close === 0x7d) || (open === 0x5b && close === 0x5d))) return false;
  // A raw newline would split the NDJSON line.
  return body.indexOf(0x0a) < 0 && body.indexOf(0x0d) < 0;
}

function resultLine(r: RolloutResult): Buffer {
  const head = JSON.stringify({
    index: r.index,
    group: r.group,
    status: r.status,
    worker_id: r.workerId,
    weight_version: r.weightVersion,
    queue_ms: r.queueMs,
    service_ms: r.serviceMs,
    attempts: r.attempts,
    hedge: r.hedge === null ? null : { worker_id: r.hedge.workerId, winner: r.hedge.winner },
    content_type: r.contentType,
  });
  const inline = looksLikeJson(r.contentType, r.body);
  const prefix = `${head.slice(0, -1)},"body_encoding":"${inline ? "json" : "base64"}","body":`;
  if (inline) return Buffer.concat([Buffer.from(prefix), r.body, Buffer.from("}\n")]);
  return Buffer.from(`${prefix}"${r.body.toString("base64")}"}\n`);
}

function summaryLine(s: RolloutSummary): string {
  const { completedGroups, ...rest } = s;
  return `${JSON.stringify({ summary: { ...rest, completed_groups: completedGroups } })}\n`;
}
