import { secondsToMs } from "../config/durations.js";
import { answerJson } from "./refit-json.js";
import { RouterError } from "../errors.js";
import type { LoraChangeResult, LoraPool } from "../lora/lora-action.js";
import type { LoraKind } from "../lora/pool-lora.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import { readJsonObject, type Req } from "./body.js";
import { sendJson, type Res } from "./respond.js";

export interface LoraRoutesOptions {
  lora: LoraPool;
  registry: Registry;
  upstream: Upstream;
  maxBodyBytes: number;
  /** Limit of one worker's list_loras answer (it waits behind the worker's queued generations). */
  listTimeoutMs: number;
}

/**
 * A LoRA change's answer in the worker's own success shape
 * (`{"status":"ok","message"}`) plus every worker's answer; 502
 * `upstream_failed` with the same results when some worker failed.
 */
function sendChange(res: Res, r: LoraChangeResult): void {
  const results = r.results.map(answerJson);
  if (r.failure !== null) {
    sendJson(res, 502, { status: "error", error: r.failure, code: "upstream_failed", results, pool: r.pool }, { "x-router-error-code": "upstream_failed" });
    return;
  }
  const first = r.results[0]?.body as { message?: unknown } | undefined;
  const message = `${typeof first?.message === "string" ? first.message : `LoRA ${r.kind} done`} (on ${r.results.length} worker(s))`;
  sendJson(res, 200, { status: "ok", message, results, pool: r.pool });
}

/** Active adapters of one list_loras answer, as a comparable string (order-free per module). */
function activeKey(body: unknown): string {
  const active = (body as { active?: Record<string, unknown[]> } | null)?.active ?? {};
  return JSON.stringify(Object.keys(active).sort().map((m) => [m, active[m]]));
}

/** The REST door of the pool's LoRA: the three changes, and the pool's list. */
export function createLoraRoutes(options: LoraRoutesOptions) {
  const { lora, registry, upstream, maxBodyBytes } = options;

  async function change(kind: LoraKind, req: Req, res: Res, query: URLSearchParams): Promise<void> {
    const drainMs = secondsToMs(query.get("drain_timeout_s"), "drain_timeout_s");
    const { raw, json } = await readJsonObject(req, maxBodyBytes);
    if (kind === "set" && (json.lora_nickname === undefined || json.lora_nickname === null || json.lora_nickname === "")) {
      throw new RouterError("invalid_request", "lora_nickname is required (a string or a list of strings)", { details: { param: "lora_nickname" } });
    }
    if (json.model !== undefined && typeof json.model !== "string") throw new RouterError("invalid_request", "model must be a string", { details: { param: "model" } });
    sendChange(res, await lora.change(kind, raw, json, drainMs));
  }

  return {
    setLora: (req: Req, res: Res, query: URLSearchParams) => change("set", req, res, query),
    mergeLora: (req: Req, res: Res, query: URLSearchParams) => change("merge", req, res, query),
    unmergeLora: (req: Req, res: Res, query: URLSearchParams) => change("unmerge", req, res, query),

    /**
     * `GET /v1/list_loras`: every live worker's list, the union of loaded
     * adapters, the active ones when all agree (`consistent`), the pool's
     * recorded LoRA and each worker's own answer.
     */
    async listLoras(res: Res): Promise<void> {
      const targets = registry.all().filter((w) => !w.dead && !w.sleeping);
      if (targets.length === 0) throw new RouterError("no_healthy_workers", "No healthy workers available in the pool");
      const workers = await Promise.all(
        targets.map(async (w) => {
          try {
            const a = await upstream.requestJson(w.url, "GET", "/v1/list_loras", { timeoutMs: options.listTimeoutMs });
            return { worker_url: w.url, status_code: a.status, body: a.body };
          } catch (err) {
            return { worker_url: w.url, status_code: 502, body: { error: `worker request failed: ${err instanceof Error ? err.message : String(err)}` } };
          }
        }),
      );
      const answered = workers.filter((w) => w.status_code === 200);
      const loaded = new Map<string, unknown>();
      for (const w of answered) for (const a of (w.body as { loaded_adapters?: { nickname: string }[] }).loaded_adapters ?? []) loaded.set(a.nickname, a);
      const keys = new Set(answered.map((w) => activeKey(w.body)));
      const consistent = answered.length === workers.length && keys.size <= 1;
      const active = consistent && answered[0] ? (answered[0].body as { active?: unknown }).active ?? {} : null;
      sendJson(res, 200, { loaded_adapters: [...loaded.values()], active, consistent, pool: lora.state.describe(), workers });
    },
  };
}

export type LoraRoutes = ReturnType<typeof createLoraRoutes>;
