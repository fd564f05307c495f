import { discardBody, sendJson } from "./http.js";
import { isVideoTask } from "./options.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";

/** Health, discovery and the LoRA routes a router only forwards. */

const SIM_VERSION = "0.5.9-sim";

function pipelineName(modelPath: string): string {
  if (/wan/i.test(modelPath)) return "WanPipeline";
  if (/qwen/i.test(modelPath)) return "QwenImagePipeline";
  if (/flux/i.test(modelPath)) return "FluxPipeline";
  return "DiffusionPipeline";
}

export function modelCard(state: SimState): Record<string, unknown> {
  const { modelPath, numGpus, taskType } = state.options;
  return {
    id: modelPath,
    object: "model",
    // As SGLang's ModelCard: the time of the request, not of the process
    // start (so a router cannot tell a restarted worker by it).
    created: Math.floor(Date.now() / 1000),
    owned_by: "sglang",
    root: modelPath,
    parent: null,
    max_model_len: null,
    num_gpus: numGpus,
    task_type: taskType,
    dit_precision: "bf16",
    vae_precision: "fp32",
    pipeline_name: pipelineName(modelPath),
    pipeline_class: pipelineName(modelPath),
  };
}

export function infoRoutes(state: SimState): Route[] {
  const ok = async (ctx: RouteContext) => sendJson(ctx.res, 200, { status: "ok" });
  const { modelPath, numGpus, taskType } = state.options;

  async function models(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { object: "list", data: [modelCard(state)] });
  }

  async function model(ctx: RouteContext): Promise<void> {
    const name = ctx.params[0]!;
    if (name !== modelPath) {
      sendJson(ctx.res, 404, {
        error: { message: `The model '${name}' does not exist.`, type: "invalid_request_error", param: "model", code: "model_not_found" },
      });
      return;
    }
    sendJson(ctx.res, 200, modelCard(state));
  }

  async function serverInfo(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { model_path: modelPath, served_model_name: modelPath, tp_size: numGpus, dp_size: 1, version: SIM_VERSION });
  }

  async function modelInfo(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, {
      model_path: modelPath,
      is_generation: true,
      model_type: "diffusion",
      task_type: taskType,
      is_image_gen: !isVideoTask(taskType),
      is_video_gen: isVideoTask(taskType),
      pipeline_name: pipelineName(modelPath),
      num_gpus: numGpus,
    });
  }

  async function listLoras(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { loras: [] });
  }

  async function loraOp(ctx: RouteContext): Promise<void> {
    await discardBody(ctx.req, state.stats);
    sendJson(ctx.res, 200, { success: true, message: "OK" });
  }

  return [
    { method: "GET", pattern: /^\/health$/, name: "GET /health", kind: "health", handler: ok },
    { method: "GET", pattern: /^\/health_generate$/, name: "GET /health_generate", kind: "health", handler: ok },
    { method: "GET", pattern: /^\/v1\/models$/, name: "GET /v1/models", kind: "info", handler: models },
    // Model ids contain slashes ("Qwen/Qwen-Image"): match the rest of the path.
    { method: "GET", pattern: /^\/v1\/models\/(.+)$/, name: "GET /v1/models/{model}", kind: "info", handler: model },
    { method: "GET", pattern: /^\/server_info$/, name: "GET /server_info", kind: "info", handler: serverInfo },
    { method: "GET", pattern: /^\/model_info$/, name: "GET /model_info", kind: "info", handler: modelInfo },
    { method: "GET", pattern: /^\/v1\/list_loras$/, name: "GET /v1/list_loras", kind: "control", handler: listLoras },
    { method: "POST", pattern: /^\/v1\/set_lora$/, name: "POST /v1/set_lora", kind: "control", handler: loraOp },
    { method: "POST", pattern: /^\/v1\/merge_lora_weights$/, name: "POST /v1/merge_lora_weights", kind: "control", handler: loraOp },
    { method: "POST", pattern: /^\/v1\/unmerge_lora_weights$/, name: "POST /v1/unmerge_lora_weights", kind: "control", handler: loraOp },
  ];
}
