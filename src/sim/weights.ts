import { createHash } from "node:crypto";
import { discardBody, parseRawJson, readBody, sendJson } from "./http.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";

/**
 * Weight refits and memory sleep/wake, as in SGLang's
 * post_training/weights_api.py. They all go through the scheduler queue as
 * exclusive tasks: they run after the generations already queued, and later
 * generations wait for them (the real worker has no lock, only its one
 * queue). An update is all-or-nothing: on failure the weights stay what they
 * were. Asleep, the scheduler raises for an update, which the route answers
 * as 500 `{success:false}`.
 */

const MODULES = ["transformer", "vae", "text_encoder"];
const SLEEPING_UPDATE = "Cannot update weights while the server is sleeping. Call resume_memory_occupation first.";

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

function moduleList(value: unknown): string[] {
  return Array.isArray(value) && value.length > 0 && value.every((m) => typeof m === "string") ? (value as string[]) : MODULES;
}

function updatedMessage(modules: string[]): string {
  return `Updated ${modules.length} module${modules.length === 1 ? "" : "s"} (${modules.join(", ")}).`;
}

/**
 * The sim's stand-in for a tensor's SHA-256: it depends on the weights the
 * worker holds, the module and the tensor name, so a client can compute the
 * value it expects after an update (documented in docs/worker-compat.md).
 */
export function simTensorSha256(weights: string, module: string, name: string): string {
  return createHash("sha256").update(`${weights}\u0000${module}\u0000${name}`).digest("hex");
}

function send(ctx: RouteContext, answer: Answer): void {
  sendJson(ctx.res, answer.status, answer.body);
}

/** Loads `weights` (after weightLoadMs) in the queue, unless asleep or told to fail. */
function loadWeights(state: SimState, weights: string, modules: string[], source: string): Promise<Answer> {
  return state.scheduler.run(
    async () => {
      if (state.sleeping) return { status: 500, body: { success: false, message: SLEEPING_UPDATE } };
      await state.delay(state.config.weightLoadMs);
      if (state.config.failUpdates) {
        const message = `Failed to update weights from ${source}: simulated load failure. Rolled back ${modules.length} modules (${modules.join(", ")}); weights unchanged.`;
        return { status: 400, body: { success: false, message } };
      }
      state.weights = weights;
      return { status: 200, body: { success: true, message: updatedMessage(modules) } };
    },
    { exclusive: true },
  );
}

export function weightRoutes(state: SimState): Route[] {
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => state.scheduler.run(fn, { exclusive: true });
  const load = (weights: string, modules: string[], source: string) => loadWeights(state, weights, modules, source);

  async function fromDisk(ctx: RouteContext): Promise<void> {
    state.stats.weightUpdateArrived("POST /update_weights_from_disk");
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const modelPath = body["model_path"];
    if (!modelPath || typeof modelPath !== "string") return send(ctx, { status: 400, body: { success: false, message: "model_path is required" } });
    send(ctx, await load(modelPath, moduleList(body["target_modules"]), modelPath));
  }

  async function fromTensor(ctx: RouteContext): Promise<void> {
    state.stats.weightUpdateArrived("POST /update_weights_from_tensor");
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const tensors = body["serialized_named_tensors"];
    if (!tensors || (Array.isArray(tensors) && tensors.length === 0)) {
      return send(ctx, { status: 400, body: { success: false, message: "serialized_named_tensors is required" } });
    }
    // The real route ignores weight_version; the sim names the weights by it so tests can tell versions apart.
    const version = body["weight_version"];
    const weights = `tensor:${version === undefined || version === null ? "unversioned" : String(version)}`;
    send(ctx, await load(weights, moduleList(body["target_modules"]), "tensor"));
  }

  async function tensorChecker(ctx: RouteContext): Promise<void> {
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const module = body["target_module"];
    const expected = body["expected_named_tensors_sha256"];
    if (!module || typeof module !== "string") return send(ctx, { status: 400, body: { success: false, message: "target_module is required" } });
    if (!expected || typeof expected !== "object" || Array.isArray(expected) || Object.keys(expected).length === 0) {
      return send(ctx, { status: 400, body: { success: false, message: "expected_named_tensors_sha256 is required" } });
    }
    const answer = await exclusive(async (): Promise<Answer> => {
      const wrong = Object.entries(expected).filter(([name, sha]) => sha !== simTensorSha256(state.weights, module, name)).map(([name]) => name);
      const n = Object.keys(expected).length;
      if (wrong.length === 0) return { status: 200, body: { success: true, message: `Verified ${n} tensor(s) of ${module}.` } };
      return { status: 400, body: { success: false, message: `SHA-256 mismatch in ${module} for ${wrong.length}/${n} tensor(s): ${wrong.join(", ")}` } };
    });
    send(ctx, answer);
  }

  async function checksum(ctx: RouteContext): Promise<void> {
    const body = parseRawJson(await readBody(ctx.req, state.stats));
    const modules = moduleList(body["module_names"]);
    const sums = await exclusive(async () =>
      Object.fromEntries(modules.map((m) => [m, createHash("sha256").update(`${state.weights}\u0000${m}`).digest("hex")])),
    );
    sendJson(ctx.res, 200, sums);
  }

  /** Release and resume read no body; the scheduler answers `{success, sleeping, message}`. */
  function memory(asleep: boolean, already: string, done: string) {
    const name = `POST /${asleep ? "release" : "resume"}_memory_occupation`;
    return async (ctx: RouteContext): Promise<void> => {
      state.stats.controlCallArrived(name);
      await discardBody(ctx.req, state.stats);
      const body = await exclusive(async () => {
        if (state.sleeping === asleep) return { success: true, sleeping: asleep, message: already };
        state.sleeping = asleep;
        return { success: true, sleeping: asleep, message: done };
      });
      sendJson(ctx.res, 200, body);
    };
  }

  const route = (path: string, handler: Route["handler"]): Route => ({ method: "POST", pattern: new RegExp(`^/${path}$`), name: `POST /${path}`, kind: "control", handler });
  return [
    route("update_weights_from_disk", fromDisk),
    route("update_weights_from_tensor", fromTensor),
    route("update_weights_from_tensor_checker", tensorChecker),
    route("get_weights_checksum", checksum),
    route("release_memory_occupation", memory(true, "already sleeping", "released GPU memory (moved active modules to CPU)")),
    route("resume_memory_occupation", memory(false, "already awake", "resumed GPU memory (restored modules to original devices)")),
  ];
}
