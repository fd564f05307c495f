import { RouterError } from "../errors.js";

/** Where a `--state-store etcd://...` points: the cluster's endpoints and the key prefix of this pool. */
export interface EtcdLocation {
  /** `http://host:port` of each etcd member given. */
  readonly endpoints: readonly string[];
  /** Key prefix, starting with `/` and without a trailing one: `/sgld/train-a`. */
  readonly prefix: string;
  /** Seconds an id's owner stays in etcd after it was learnt (`?affinity_ttl_s=`; shared-affinity.ts). */
  readonly affinityTtlS: number;
}

/** Default of `affinity_ttl_s`: an hour (docs/decisions.md, "Id keys expire"). */
export const AFFINITY_TTL_S = 3_600;

function invalid(message: string, raw: string): RouterError {
  return new RouterError("invalid_request", `--state-store ${JSON.stringify(raw)}: ${message} (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?affinity_ttl_s=SECONDS])`, { details: { param: "state-store" } });
}

/** The URL's query: only `affinity_ttl_s` (whole seconds, >= 1). */
function affinityTtlOf(query: string, raw: string): number {
  const params = new URLSearchParams(query);
  for (const name of params.keys()) if (name !== "affinity_ttl_s") throw invalid(`unknown parameter ${JSON.stringify(name)}`, raw);
  const value = params.get("affinity_ttl_s");
  if (value === null) return AFFINITY_TTL_S;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw invalid(`affinity_ttl_s must be a whole number of seconds >= 1, got ${JSON.stringify(value)}`, raw);
  return Number(value);
}

/**
 * Reads `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?affinity_ttl_s=SECONDS]`.
 * Several hosts are one cluster's members (the client fails over between
 * them); the prefix keeps pools apart in one cluster, so it is required: two
 * pools sharing keys would share weights. The query belongs to the store
 * (how long shared ids live in it), so it is in the store's URL.
 */
export function parseEtcdUrl(raw: string): EtcdLocation {
  if (!raw.startsWith("etcd://")) throw invalid("only etcd:// is supported", raw);
  const q = raw.indexOf("?");
  const affinityTtlS = affinityTtlOf(q < 0 ? "" : raw.slice(q + 1), raw);
  const rest = raw.slice("etcd://".length, q < 0 ? undefined : q);
  const slash = rest.indexOf("/");
  if (slash < 0) throw invalid("a key prefix is required", raw);
  const hosts = rest.slice(0, slash);
  const prefix = `/${rest.slice(slash + 1).replace(/^\/+|\/+$/g, "")}`;
  if (prefix === "/") throw invalid("a key prefix is required", raw);
  const endpoints = hosts.split(",").map((h) => {
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(h.trim());
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw invalid(`${JSON.stringify(h)} is not HOST:PORT`, raw);
    return `http://${m[1]}:${m[2]}`;
  });
  return { endpoints, prefix, affinityTtlS };
}
