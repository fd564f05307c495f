import { isIPv4, isIPv6 } from "node:net";
import { RouterError } from "../errors.js";

/**
 * Hosts that answer with cloud credentials. A router that lets anyone register
 * a "worker" at one of these would proxy generation traffic (and health
 * probes) to it, so every way a worker gets in goes through
 * {@link normalizeWorkerUrl}.
 */
const blockedHostnames = new Set([
  "metadata.google.internal",
  "metadata.goog",
  "metadata",
  "instance-data",
  "instance-data.ec2.internal",
]);

/** Single IPv4 addresses used as metadata endpoints outside 169.254/16. */
const blockedIPv4 = new Set([
  "100.100.100.200", // Alibaba Cloud
]);

function ipv4ToInt(ip: string): number {
  const p = ip.split(".");
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

function isBlockedIPv4(ip: string): string | undefined {
  const n = ipv4ToInt(ip);
  if (n >>> 16 === 0xa9fe) return "link-local (169.254.0.0/16, cloud metadata) hosts are blocked";
  if (blockedIPv4.has(ip)) return "cloud metadata hosts are blocked";
  return undefined;
}

/** Expands an IPv6 literal (no brackets, no zone) into 8 16-bit groups. */
function ipv6Groups(ip: string): number[] {
  let head = ip;
  let tailV4: number[] = [];
  // A dotted IPv4 tail (::ffff:1.2.3.4) takes the last two groups.
  const lastColon = head.lastIndexOf(":");
  const tail = head.slice(lastColon + 1);
  if (tail.includes(".")) {
    const n = ipv4ToInt(tail);
    tailV4 = [n >>> 16, n & 0xffff];
    head = head.slice(0, lastColon + 1) + "0:0";
  }
  const [left, right] = head.split("::") as [string, string | undefined];
  const l = left ? left.split(":") : [];
  const r = right !== undefined && right !== "" ? right.split(":") : [];
  const fill = right === undefined ? 0 : 8 - l.length - r.length;
  const groups = [...l, ...Array<string>(fill).fill("0"), ...r].map((g) => parseInt(g, 16));
  if (tailV4.length) groups.splice(6, 2, tailV4[0]!, tailV4[1]!);
  return groups;
}

function isBlockedIPv6(ip: string): string | undefined {
  const g = ipv6Groups(ip.split("%")[0]!);
  if ((g[0]! & 0xffc0) === 0xfe80) return "link-local (fe80::/10) hosts are blocked";
  // fd00:ec2::254, the AWS IMDS IPv6 endpoint.
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && g.slice(2, 7).every((x) => x === 0) && g[7] === 0x254) {
    return "cloud metadata hosts are blocked";
  }
  // IPv4 embedded in IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
  // SIIT (::ffff:0:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) all reach the IPv4 host.
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const embedded =
    (zeros(0, 5) && (g[5] === 0xffff || g[5] === 0)) ||
    (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) ||
    (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6));
  if (embedded) {
    const v4 = `${g[6]! >>> 8}.${g[6]! & 0xff}.${g[7]! >>> 8}.${g[7]! & 0xff}`;
    return isBlockedIPv4(v4);
  }
  return undefined;
}

function invalid(message: string, raw: string): RouterError {
  return new RouterError("invalid_worker_url", `${message}: ${JSON.stringify(raw)}`, { details: { param: "url" } });
}

/**
 * Validates a worker URL and returns its canonical form
 * `scheme://host:port` (lower-case host, explicit port, no trailing slash), so
 * that one worker has one id however it was spelled.
 *
 * The WHATWG URL parser already turns decimal, hex, octal and shortened IPv4
 * spellings (`http://2852039166:80`, `http://0xa9.0xfe.0xa9.0xfe:80`) into
 * dotted quads and lower-cases names, so the checks below see one spelling.
 */
export function normalizeWorkerUrl(input: unknown): string {
  if (typeof input !== "string") throw new RouterError("invalid_worker_url", "worker_url must be a string", { details: { param: "url" } });
  const raw = input.trim();
  if (raw === "") throw new RouterError("invalid_worker_url", "worker_url cannot be empty", { details: { param: "url" } });
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(raw);
  if (!m) throw invalid("worker_url must look like http://host:port", raw);
  const scheme = m[1]!.toLowerCase();
  const authority = m[2]!;
  const rest = m[3]!;
  if (scheme !== "http" && scheme !== "https") throw invalid("worker_url must start with http:// or https://", raw);
  if (authority.includes("@")) throw invalid("worker_url must not include user credentials", raw);
  if (rest.includes("?") || rest.includes("#")) throw invalid("worker_url must not include a query or fragment", raw);
  if (rest !== "" && rest !== "/") throw invalid("worker_url must not include a path", raw);
  const portMatch = /:(\d+)$/.exec(authority);
  if (!portMatch || authority.endsWith("]")) throw invalid("worker_url must include a port", raw);
  let url: URL;
  try {
    url = new URL(`${scheme}://${authority}/`);
  } catch {
    throw invalid("worker_url is not a valid URL", raw);
  }
  const port = Number(portMatch[1]);
  if (port < 1 || port > 65535) throw invalid("worker_url port must be 1-65535", raw);
  let host = url.hostname;
  if (host === "") throw invalid("worker_url must include a host", raw);
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  let reason: string | undefined;
  if (isIPv4(bare)) reason = isBlockedIPv4(bare);
  else if (isIPv6(bare)) reason = isBlockedIPv6(bare);
  else {
    host = host.replace(/\.+$/, "");
    if (host === "") throw invalid("worker_url must include a host", raw);
    if (blockedHostnames.has(host)) reason = "cloud metadata hosts are blocked";
  }
  if (reason) throw invalid(`worker_url host is blocked: ${reason}`, raw);
  return `${scheme}://${host}:${port}`;
}

/** The REST id of a worker: its canonical URL, percent-encoded as one path segment. */
export function workerIdOf(url: string): string {
  return encodeURIComponent(url);
}

/** A short human-readable id (`host:port`), as the original router shows. */
export function displayIdOf(url: string): string {
  return url.slice(url.indexOf("://") + 3);
}

/**
 * Turns a REST worker id back into the canonical URL. Accepts the encoded form
 * and, like the original, a raw URL (`/workers/http://h:1`), since some HTTP
 * clients decode `%2F` before sending.
 */
export function decodeWorkerId(id: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(id);
  } catch {
    throw new RouterError("invalid_request", `worker_id is not valid percent-encoding: ${JSON.stringify(id)}`, { details: { param: "worker_id" } });
  }
  if (decoded.trim() === "") throw new RouterError("invalid_request", "worker_id cannot be empty", { details: { param: "worker_id" } });
  return normalizeWorkerUrl(decoded);
}
