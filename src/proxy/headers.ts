import type { IncomingHttpHeaders } from "node:http";

/**
 * Headers that describe one hop, not the message (RFC 9110 7.6.1), plus the
 * ones HTTP/2 forbids. They never cross the proxy in either direction.
 */
export const hopByHop: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "host",
]);

/** Request-only: the router answers `Expect: 100-continue` itself. */
const requestOnly = new Set(["expect"]);

/**
 * Copies client headers for the upstream request: drops hop-by-hop headers,
 * HTTP/2 pseudo-headers and whatever `Connection:` names, keeps everything
 * else (content-type, accept, content-length, custom headers) untouched.
 */
export function upstreamRequestHeaders(src: IncomingHttpHeaders, requestId: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = src.connection;
  for (const key in src) {
    if (key.charCodeAt(0) === 58 /* ':' */ || hopByHop.has(key) || requestOnly.has(key)) continue;
    const v = src[key];
    if (v !== undefined) out[key] = v;
  }
  if (typeof named === "string" && named !== "keep-alive" && named !== "close") {
    for (const n of named.split(",")) delete out[n.trim().toLowerCase()];
  }
  out["x-request-id"] = requestId;
  return out;
}
