import { sendJson } from "./http.js";
import { acceptsImageInput, isVideoTask } from "./options.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";

/**
 * Health and discovery, as SGLang's http_server.py and common_api.py answer
 * them. `/health`, `/health_generate`, `/server_info` and `/model_info` are
 * answered during warm-up; everything else, `/v1/models` included, waits.
 */

const SIM_VERSION = "0.5.9-sim";

function pipelineClass(modelPath: string): string {
  if (/wan/i.test(modelPath)) return "WanPipeline";
  if (/qwen/i.test(modelPath)) return "QwenImagePipeline";
  if (/flux/i.test(modelPath)) return "FluxPipeline";
  return "DiffusionPipeline";
}

/** The registry's `pipeline_name` is the snake-case form of the class. */
function pipelineName(modelPath: string): string {
  return pipelineClass(modelPath).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

export function modelCard(state: SimState): Record<string, unknown> {
  const { modelPath, servedModelName, numGpus, taskType } = state.options;
  return {
    id: servedModelName,
    object: "model",
    // As SGLang's ModelCard: the time of the request, not of the process
    // start (so a router cannot tell a restarted worker by it).
    created: Math.floor(Date.now() / 1000),
    owned_by: "sglang",
    root: servedModelName,
    parent: null,
    max_model_len: null,
    num_gpus: numGpus,
    task_type: taskType,
    dit_precision: "bf16",
    vae_precision: "fp32",
    pipeline_name: pipelineName(modelPath),
    pipeline_class: pipelineClass(modelPath),
  };
}

export function infoRoutes(state: SimState): Route[] {
  const ok = async (ctx: RouteContext) => sendJson(ctx.res, 200, { status: "ok" });
  const { modelPath, servedModelName, numGpus, taskType, dpSize } = state.options;

  async function models(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { object: "list", data: [modelCard(state)] });
  }

  async function model(ctx: RouteContext): Promise<void> {
    const name = ctx.params[0]!;
    if (name !== servedModelName) {
      sendJson(ctx.res, 404, {
        error: { message: `The model '${name}' does not exist`, type: "invalid_request_error", param: "model", code: "model_not_found" },
      });
      return;
    }
    sendJson(ctx.res, 200, modelCard(state));
  }

  /** The deprecated `/models`: the card's facts without the OpenAI wrapper. */
  async function legacyModels(ctx: RouteContext): Promise<void> {
    const card = modelCard(state);
    sendJson(ctx.res, 200, {
      model_path: modelPath,
      num_gpus: numGpus,
      task_type: taskType,
      dit_precision: card["dit_precision"],
      vae_precision: card["vae_precision"],
      pipeline_name: card["pipeline_name"],
      pipeline_class: card["pipeline_class"],
    });
  }

  async function serverInfo(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { model_path: modelPath, served_model_name: servedModelName, tp_size: numGpus, dp_size: dpSize, version: SIM_VERSION });
  }

  async function modelInfo(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, {
      model_path: modelPath,
      is_generation: true,
      model_type: "diffusion",
      architectures: [pipelineClass(modelPath)],
      has_image_understanding: acceptsImageInput(taskType),
      has_audio_understanding: false,
      task_type: taskType,
      is_image_gen: !isVideoTask(taskType) && taskType !== "I2M" && taskType !== "VLA_ACTION",
    });
  }

  /** `/v1/model_info` (common_api.py) answers the model path only. */
  async function v1ModelInfo(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { model_path: modelPath });
  }

  async function stats(ctx: RouteContext): Promise<void> {
    sendJson(ctx.res, 200, { status: "ok", model_path: modelPath, disagg: { role: "monolithic", message: "not in disagg mode" } });
  }

  return [
    { method: "GET", pattern: /^\/health$/, name: "GET /health", kind: "health", handler: ok },
    { method: "GET", pattern: /^\/health_generate$/, name: "GET /health_generate", kind: "health", handler: ok },
    { method: "GET", pattern: /^\/server_info$/, name: "GET /server_info", kind: "info", handler: serverInfo },
    { method: "GET", pattern: /^\/model_info$/, name: "GET /model_info", kind: "info", handler: modelInfo },
    { method: "GET", pattern: /^\/v1\/models$/, name: "GET /v1/models", kind: "control", handler: models },
    // Model ids contain slashes ("Qwen/Qwen-Image"): match the rest of the path.
    { method: "GET", pattern: /^\/v1\/models\/(.+)$/, name: "GET /v1/models/{model}", kind: "control", handler: model },
    { method: "GET", pattern: /^\/models$/, name: "GET /models", kind: "control", handler: legacyModels },
    { method: "GET", pattern: /^\/v1\/model_info$/, name: "GET /v1/model_info", kind: "control", handler: v1ModelInfo },
    { method: "GET", pattern: /^\/stats$/, name: "GET /stats", kind: "control", handler: stats },
  ];
}
