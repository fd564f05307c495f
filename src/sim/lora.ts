import { HttpError, detailError, parseModelBody, readBody, sendJson, validationError } from "./http.js";
import type { Route, RouteContext } from "./route.js";
import type { SimState } from "./state.js";

/**
 * LoRA adapters, as SGLang's common_api.py and the scheduler handle them:
 * every call (the list too) is a scheduler request, so it waits behind the
 * generations queued before it. `set_lora` loads an adapter (when given a
 * path) and activates it on the target modules; merge/unmerge flip `merged`
 * on the active ones; `GET /v1/list_loras` shows it all, which is how a test
 * checks that every worker of a pool got the same adapter. Answers are
 * `{"status":"ok","message"}`; a failure is a 500 `{"detail": ...}`.
 */

export interface LoadedAdapter {
  nickname: string;
  path: string;
}

export interface ActiveAdapter extends LoadedAdapter {
  merged: boolean;
  strength: number;
}

/** One worker's adapters: what it loaded, and what is active per module. */
export class LoraState {
  readonly loaded = new Map<string, string>();
  readonly active = new Map<string, ActiveAdapter[]>();

  /** Nicknames active anywhere, for the x-sim-lora header (sent only when not ""). */
  activeNames(): string {
    const names = new Set<string>();
    for (const list of this.active.values()) for (const a of list) names.add(a.nickname);
    return [...names].join(",");
  }

  snapshot(): { loaded_adapters: LoadedAdapter[]; active: Record<string, ActiveAdapter[]> } {
    return {
      loaded_adapters: [...this.loaded].map(([nickname, path]) => ({ nickname, path })),
      active: Object.fromEntries([...this.active].map(([module, list]) => [module, list.map((a) => ({ ...a }))])),
    };
  }
}

/** `target: "all"` reaches every transformer; a Wan2.2 worker has two. */
function modulesOf(state: SimState, target: string): string[] {
  const all = /wan2\.2/i.test(state.options.modelPath) ? ["transformer", "transformer_2"] : ["transformer"];
  return target === "all" ? all : [target];
}

function list<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

function str(body: Record<string, unknown>, key: string, fallback: string): string {
  const value = body[key] ?? fallback;
  if (typeof value !== "string") throw validationError([{ type: "string_type", loc: ["body", key], msg: "Input should be a valid string", input: value }]);
  return value;
}

function num(body: Record<string, unknown>, key: string, fallback: number): number {
  const value = body[key] ?? fallback;
  if (typeof value !== "number") throw validationError([{ type: "float_type", loc: ["body", key], msg: "Input should be a valid number", input: value }]);
  return value;
}

interface SetLora {
  nicknames: string[];
  paths: (string | null)[];
  targets: string[];
  strengths: number[];
}

/** `set_lora`'s body: each field a value or a list as long as `lora_nickname`. */
function readSetLora(body: Record<string, unknown>): SetLora {
  const nick = body["lora_nickname"];
  if (nick === undefined) throw validationError([{ type: "missing", loc: ["body", "lora_nickname"], msg: "Field required", input: null }]);
  const nicknames = list(nick);
  if (nicknames.length === 0 || !nicknames.every((n) => typeof n === "string" && n.length > 0)) {
    throw validationError([{ type: "string_type", loc: ["body", "lora_nickname"], msg: "Input should be a valid string", input: nick }]);
  }
  const spread = <T>(value: unknown, fallback: T, key: string): T[] => {
    const values = list((value ?? fallback) as T | T[]);
    if (values.length === 1) return nicknames.map(() => values[0]!);
    if (values.length !== nicknames.length) throw detailError(500, `Failed to set LoRA adapter: ${key} must have the same length as lora_nickname`);
    return values;
  };
  return {
    nicknames: nicknames as string[],
    paths: spread<string | null>(body["lora_path"], null, "lora_path"),
    targets: spread<string>(body["target"], "all", "target"),
    strengths: spread<number>(body["strength"], 1, "strength"),
  };
}

function fmt(values: unknown[]): string {
  return values.length === 1 ? String(values[0]) : values.map(String).join(", ");
}

export function loraRoutes(state: SimState): Route[] {
  const lora = state.lora;

  /** Runs `op` in the scheduler queue; a thrown message becomes the real 500. */
  async function scheduled(ctx: RouteContext, failure: string, op: () => string): Promise<void> {
    const message = await state.scheduler.run(
      async () => {
        try {
          return op();
        } catch (error) {
          if (error instanceof HttpError) throw error;
          throw detailError(500, `${failure}: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
      { exclusive: true },
    );
    sendJson(ctx.res, 200, { status: "ok", message });
  }

  async function setLora(ctx: RouteContext): Promise<void> {
    state.stats.controlCallArrived("POST /v1/set_lora");
    const req = readSetLora(parseModelBody(await readBody(ctx.req, state.stats)));
    await scheduled(ctx, "Failed to set LoRA adapter", () => {
      req.nicknames.forEach((nickname, i) => {
        const path = req.paths[i] ?? lora.loaded.get(nickname);
        if (path === undefined) throw new Error(`LoRA adapter '${nickname}' is not loaded and no lora_path was given`);
        lora.loaded.set(nickname, path);
      });
      // A new set replaces what was active on the targeted modules.
      for (const target of new Set(req.targets)) for (const module of modulesOf(state, target)) lora.active.set(module, []);
      req.nicknames.forEach((nickname, i) => {
        for (const module of modulesOf(state, req.targets[i]!)) {
          lora.active.get(module)!.push({ nickname, path: lora.loaded.get(nickname)!, merged: true, strength: req.strengths[i]! });
        }
      });
      return `Successfully set LoRA adapter(s): ${fmt(req.nicknames)} (target: ${fmt(req.targets)}, strength: ${fmt(req.strengths)})`;
    });
  }

  async function merge(ctx: RouteContext): Promise<void> {
    state.stats.controlCallArrived("POST /v1/merge_lora_weights");
    const body = parseModelBody(await readBody(ctx.req, state.stats));
    const target = str(body, "target", "all");
    const strength = num(body, "strength", 1);
    await scheduled(ctx, "Failed to merge LoRA weights", () => {
      const actives = modulesOf(state, target).flatMap((m) => lora.active.get(m) ?? []);
      if (actives.length === 0) throw new Error("no LoRA adapter is set; call set_lora first");
      for (const a of actives) Object.assign(a, { merged: true, strength });
      return `Successfully merged LoRA weights (target: ${target}, strength: ${strength})`;
    });
  }

  async function unmerge(ctx: RouteContext): Promise<void> {
    state.stats.controlCallArrived("POST /v1/unmerge_lora_weights");
    const body = parseModelBody(await readBody(ctx.req, state.stats));
    const target = str(body, "target", "all");
    await scheduled(ctx, "Failed to unmerge LoRA weights", () => {
      for (const m of modulesOf(state, target)) for (const a of lora.active.get(m) ?? []) a.merged = false;
      return `Successfully unmerged LoRA weights (target: ${target})`;
    });
  }

  async function listLoras(ctx: RouteContext): Promise<void> {
    const snapshot = await state.scheduler.run(async () => lora.snapshot(), { exclusive: true });
    sendJson(ctx.res, 200, snapshot);
  }

  return [
    { method: "GET", pattern: /^\/v1\/list_loras$/, name: "GET /v1/list_loras", kind: "control", handler: listLoras },
    { method: "POST", pattern: /^\/v1\/set_lora$/, name: "POST /v1/set_lora", kind: "control", handler: setLora },
    { method: "POST", pattern: /^\/v1\/merge_lora_weights$/, name: "POST /v1/merge_lora_weights", kind: "control", handler: merge },
    { method: "POST", pattern: /^\/v1\/unmerge_lora_weights$/, name: "POST /v1/unmerge_lora_weights", kind: "control", handler: unmerge },
  ];
}
