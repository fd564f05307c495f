import { RouterError } from "../errors.js";

/** Where a `--state-store etcd://...` points: the cluster's endpoints and the key prefix of this pool. */
export interface EtcdLocation {
  /** `http://host:port` of each etcd member given. */
  readonly endpoints: readonly string[];
  /** Key prefix, starting with `/` and without a trailing one: `/sgld/train-a`. */
  readonly prefix: string;
}

function invalid(message: string, raw: string): RouterError {
  return new RouterError("invalid_request", `--state-store ${JSON.stringify(raw)}: ${message} (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX)`, { details: { param: "state-store" } });
}

/**
 * Reads `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. Several hosts are one
 * cluster's members (the client fails over between them); the prefix keeps
 * pools apart in one cluster, so it is required: two pools sharing keys would
 * share weights.
 */
export function parseEtcdUrl(raw: string): EtcdLocation {
  if (!raw.startsWith("etcd://")) throw invalid("only etcd:// is supported", raw);
  const rest = raw.slice("etcd://".length);
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
  return { endpoints, prefix };
}
