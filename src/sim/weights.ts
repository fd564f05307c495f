import { createHash } from "node:crypto";
import { discardBody, parseRawJson, readBody, sendJson } from "./http.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";

/**
 * Weight refits and memory sleep/wake, as in SGLang's weights_api.py. They
 * all go through the scheduler queue as exclusive tasks: they run after the
 * generations already queued, and later generations wait for them (the real
 * worker has no lock, only its one queue). An update is all-or-nothing: on
 * failure the weights stay what they were.
 */

const MODULES = ["transformer", "vae", "text_encoder"];
const SLEEPING_UPDATE = "Cannot update weights while the server is sleeping. Call resume_memory_occupation first.";

function moduleList(value: unknown): string[] {
  return Array.isArray(value) && value.length > 0 && value.every((m) => typeof m === "string") ? (value as string[]) : MODULES;
}

function updatedMessage(modules: string[]): string {
  return `Updated ${modules.length} module${modules.length === 1 ? "" : "s"} (${modules.join(", ")}).`;
}

export function weightRoutes(state: SimState): Route[] {
  /** Loads `weights` (after weightLoadMs) unless asleep or told to fail. */
  function load(weights: string, modules: string[], source: string): Promise<{ status: number; body: { success: boolean; message: string } }> {
    return state.scheduler.run(
      async () => {
        if (state.sleeping) return { status: 400, body: { success: false, message: SLEEPING_UPDATE } };
        await state.delay(state.config.weightLoadMs);
        if (state.config.failUpdates) {
          return {
            status: 400,
            body: {
              success: false,
              message: `Failed to update weights from ${source}: simulated load failure. Rolled back ${modules.length} modules (${modules.join(", ")}); weights unchanged.`,
            },
          };
        }
        state.weights = weights;
        return { status: 200, body: { success: true, message: updatedMessage(modules) } };
      },
      { exclusive: true },
    );
  }

  async function fromDisk(ctx: RouteContext): Promise<void> {
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const modelPath = body["model_path"];
    if (!modelPath || typeof modelPath !== "string") {
      sendJson(ctx.res, 400, { success: false, message: "model_path is required" });
      return;
    }
    const answer = await load(modelPath, moduleList(body["target_modules"]), modelPath);
    sendJson(ctx.res, answer.status, answer.body);
  }

  async function fromTensor(ctx: RouteContext): Promise<void> {
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const tensors = body["serialized_named_tensors"];
    if (!tensors || (Array.isArray(tensors) && tensors.length === 0)) {
      sendJson(ctx.res, 400, { success: false, message: "serialized_named_tensors is required" });
      return;
    }
    const version = body["weight_version"];
    const weights = `tensor:${version === undefined || version === null ? "unversioned" : String(version)}`;
    const answer = await load(weights, moduleList(body["target_modules"]), "tensor");
    sendJson(ctx.res, answer.status, answer.body);
  }

  async function checksum(ctx: RouteContext): Promise<void> {
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const modules = moduleList(body["module_names"]);
    const sums = await state.scheduler.run(
      async () => Object.fromEntries(modules.map((m) => [m, createHash("sha256").update(`${state.weights}\u0000${m}`).digest("hex")])),
      { exclusive: true },
    );
    sendJson(ctx.res, 200, sums);
  }

  async function release(ctx: RouteContext): Promise<void> {
    await discardBody(ctx.req, state.stats);
    const body = await state.scheduler.run(
      async () => {
        if (state.sleeping) return { success: true, sleeping: true, message: "Server is already sleeping." };
        state.sleeping = true;
        return { success: true, sleeping: true, message: "Released GPU memory occupation; server is sleeping." };
      },
      { exclusive: true },
    );
    sendJson(ctx.res, 200, body);
  }

  async function resume(ctx: RouteContext): Promise<void> {
    await discardBody(ctx.req, state.stats);
    const body = await state.scheduler.run(
      async () => {
        if (!state.sleeping) return { success: true, sleeping: false, message: "Server is already awake." };
        state.sleeping = false;
        return { success: true, sleeping: false, message: "Resumed GPU memory occupation; server is awake." };
      },
      { exclusive: true },
    );
    sendJson(ctx.res, 200, body);
  }

  return [
    { method: "POST", pattern: /^\/update_weights_from_disk$/, name: "POST /update_weights_from_disk", kind: "control", handler: fromDisk },
    { method: "POST", pattern: /^\/update_weights_from_tensor$/, name: "POST /update_weights_from_tensor", kind: "control", handler: fromTensor },
    { method: "POST", pattern: /^\/get_weights_checksum$/, name: "POST /get_weights_checksum", kind: "control", handler: checksum },
    { method: "POST", pattern: /^\/release_memory_occupation$/, name: "POST /release_memory_occupation", kind: "control", handler: release },
    { method: "POST", pattern: /^\/resume_memory_occupation$/, name: "POST /resume_memory_occupation", kind: "control", handler: resume },
  ];
}
