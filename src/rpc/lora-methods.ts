import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { secondsToMs } from "../config/durations.js";
import { RouterError } from "../errors.js";
import { UpdateLoraRequest_Action, UpdateLoraResponseSchema, type UpdateLoraRequest } from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import type { LoraPool } from "../lora/lora-action.js";
import type { LoraKind } from "../lora/pool-lora.js";
import { resultsToPb } from "./convert.js";
import { toConnectError } from "./errors.js";

const kinds: Partial<Record<UpdateLoraRequest_Action, LoraKind>> = {
  [UpdateLoraRequest_Action.SET]: "set",
  [UpdateLoraRequest_Action.MERGE]: "merge",
  [UpdateLoraRequest_Action.UNMERGE]: "unmerge",
};

async function updateLora(lora: LoraPool, req: UpdateLoraRequest) {
  const kind = kinds[req.action];
  if (kind === undefined) throw new RouterError("invalid_request", "action is required: ACTION_SET, ACTION_MERGE or ACTION_UNMERGE", { details: { param: "action" } });
  const json: Record<string, unknown> = { ...req.body };
  if (kind === "set" && (json.lora_nickname === undefined || json.lora_nickname === "")) {
    throw new RouterError("invalid_request", "body.lora_nickname is required (a string or a list of strings)", { details: { param: "lora_nickname" } });
  }
  const r = await lora.change(kind, Buffer.from(JSON.stringify(json)), json, secondsToMs(req.drainTimeoutS, "drain_timeout_s"));
  const first = r.results[0]?.body as { message?: unknown } | undefined;
  const response = create(UpdateLoraResponseSchema, {
    message: `${typeof first?.message === "string" ? first.message : `LoRA ${kind} done`} (on ${r.results.length} worker(s))`,
    results: resultsToPb(r.results),
    pool: r.pool.map((s) => ({ model: s.model ?? "", nicknames: Array.isArray(s.nickname) ? s.nickname : [s.nickname], merged: s.merged })),
  });
  // As a failed refit: the per-worker outcome travels as an error detail.
  if (r.failure !== null) throw new ConnectError(r.failure, Code.Unavailable, { "x-router-error-code": "upstream_failed" }, [{ desc: UpdateLoraResponseSchema, value: response }]);
  return response;
}

/** The AdminService's LoRA method (`UpdateLora`), over the same audited LoRA action as REST. */
export function loraMethods(lora: LoraPool) {
  return {
    async updateLora(req: UpdateLoraRequest) {
      try {
        return await updateLora(lora, req);
      } catch (err) {
        throw err instanceof ConnectError ? err : toConnectError(err);
      }
    },
  };
}
