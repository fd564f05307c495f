import { Agent } from "undici";
import { H1Client } from "./h1-pool.js";

/** Options of {@link createUpstream}. */
export interface UpstreamOptions {
  /** Connections kept per worker; default 100 (the original's --max-connections). */
  maxConnections?: number;
  /** Idle limit while waiting for a worker's headers or next body bytes; 0 = none. Default 0. */
  timeoutMs?: number;
}

export interface JsonAnswer {
  status: number;
  /** Parsed JSON, or `{raw: text}` when the worker answered something else (its plain-text 500s). */
  body: unknown;
  contentType: string;
}

/**
 * The router's connections to workers: the data plane's own HTTP/1.1 client
 * (proxied requests: streamed, zero-copy, its per-worker cap is
 * --max-connections) and an undici Agent for the router's own small requests
 * (probes, broadcasts, merged lists), whose answers are read whole.
 */
export interface Upstream {
  readonly proxy: H1Client;
  readonly agent: Agent;
  /** A small request whose answer is read whole (probes, broadcasts, merges). */
  requestJson(origin: string, method: string, path: string, options?: { body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal }): Promise<JsonAnswer>;
  close(): Promise<void>;
}

export function createUpstream(options: UpstreamOptions = {}): Upstream {
  const timeoutMs = options.timeoutMs ?? 0;
  const agent = new Agent({
    connections: options.maxConnections ?? 100,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    // Diffusion workers send headers only when the picture is done, which can
    // take minutes: the limit is on idle time, and off unless asked for.
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: 10_000 },
  });
  const proxy = new H1Client({ maxConnections: options.maxConnections ?? 100, timeoutMs });
  return {
    proxy,
    agent,
    async requestJson(origin, method, path, opts = {}) {
      const signals: AbortSignal[] = [];
      if (opts.timeoutMs) signals.push(AbortSignal.timeout(opts.timeoutMs));
      if (opts.signal) signals.push(opts.signal);
      const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
      if (opts.body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
      const res = await agent.request({
        origin,
        path,
        method: method as "GET",
        headers,
        body: opts.body ?? null,
        signal: signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals),
      });
      const text = await res.body.text();
      const ct = String(res.headers["content-type"] ?? "");
      let body: unknown;
      try {
        body = text === "" ? null : JSON.parse(text);
      } catch {
        body = { raw: text };
      }
      return { status: res.statusCode, body, contentType: ct };
    },
    close: async () => {
      await Promise.all([proxy.close(), agent.close()]);
    },
  };
}
