import { Etcd3 } from "etcd3";
import { RouterError } from "../errors.js";
import type { EtcdLocation } from "./etcd-url.js";

/** Longest wait for etcd at startup before the router refuses to start. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Longest wait for one etcd call once running. */
const CALL_TIMEOUT_MS = 10_000;

/**
 * A client of the cluster (the maintained `etcd3` package: gRPC through
 * @grpc/grpc-js, leases, transactions, watches that resume from a revision).
 * One read proves the cluster answers: a router told to share its state
 * must not start with none and later disagree with the others.
 */
export async function connectEtcd(location: EtcdLocation, raw: string): Promise<Etcd3> {
  const client = new Etcd3({
    hosts: [...location.endpoints],
    dialTimeout: CONNECT_TIMEOUT_MS,
    // A call never hangs forever (a write stuck behind a dead member would hold every later one); watches are streams and stay open.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
  try {
    await client.get(`${location.prefix}/refit`).options({ deadline: Date.now() + CONNECT_TIMEOUT_MS }).exec();
  } catch (err) {
    client.close();
    throw new RouterError("state_store_unavailable", `--state-store ${raw}: etcd did not answer within ${CONNECT_TIMEOUT_MS / 1000} s: ${(err as Error).message}`, { cause: err });
  }
  return client;
}
