import type { Etcd3, IRequestOp } from "etcd3";
import { AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AffinityLeases } from "./affinity-lease.js";
import { workerIdOf } from "../registry/worker-url.js";

/** Wait before the second read of an id etcd does not have yet. */
const SECOND_LOOK_MS = 250;
/** Ids deleted from etcd at once when their worker leaves (one transaction each, this many in parallel). */
const CLEANUP_BATCH = 64;

const put = (key: string, value: string, lease: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease } });
const del = (key: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(key) } });

/**
 * An id-affinity map (image, video or mesh id -> the worker that holds it)
 * shared through `PREFIX/affinity/<id>`: every id this router learns is
 * written there (after the answer, never delaying it), and an id this router
 * does not know is read from there before it answers 404. Lookups stay in
 * memory for the ids this router made or has asked about once; a client that
 * alternates routers costs one etcd read per id and router. Each id is also
 * listed under its worker (`PREFIX/affinity-of/<worker_id>/<kind>/<id>`, in
 * the same transaction), so a worker that leaves takes its ids with it
 * without a scan of every id; a job deleted on its worker is no longer shared.
 * Both keys go under a lease that is never kept alive (affinity-lease.ts):
 * etcd drops them `affinity_ttl_s` after they were written.
 */
export class SharedAffinityMap extends AffinityMap {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #ofPrefix: string;
  readonly #kind: string;
  readonly #logger: Logger;
  readonly #leases: AffinityLeases;

  constructor(client: Etcd3, prefix: string, kind: "image" | "video" | "mesh", leases: AffinityLeases, logger: Logger) {
    super();
    this.#client = client;
    this.#leases = leases;
    this.#prefix = `${prefix}/affinity/`;
    this.#ofPrefix = `${prefix}/affinity-of/`;
    this.#kind = kind;
    this.#logger = logger;
  }

  #indexKey(workerUrl: string, id: string): string {
    return `${this.#ofPrefix}${workerIdOf(workerUrl)}/${this.#kind}/${id}`;
  }

  override remember(id: string, workerUrl: string): void {
    // A list of videos re-remembers every job it shows: only new facts are written.
    const known = this.lookup(id) === workerUrl;
    super.remember(id, workerUrl);
    if (known) return;
    const lease = this.#leases.current();
    lease
      .then((l) => this.#all([put(this.#prefix + id, workerUrl, l), put(this.#indexKey(workerUrl, id), "", l)]))
      .catch((err: unknown) => {
        this.#leases.failed(lease);
        this.#logger.error({ err, id }, "state store: could not share an id's worker; other routers ask the workers for it");
      });
  }

  /** Operations applied together (one transaction without conditions), so an id and its index entry exist or go together. */
  async #all(ops: IRequestOp[]): Promise<void> {
    await this.#client.kv.txn({ compare: [], success: ops, failure: [] });
  }

  override deleted(id: string): void {
    const owner = this.lookup(id);
    const ops = [del(this.#prefix + id)];
    if (owner !== undefined) ops.push(del(this.#indexKey(owner, id)));
    this.#all(ops).catch((err: unknown) => this.#logger.warn({ err, id }, "state store: could not remove a deleted job's id; it stays shared until its worker leaves"));
  }

  override forgetWorker(workerUrl: string): void {
    super.forgetWorker(workerUrl);
    // Every router that removes the worker does this (idempotent); the id keys go only while they still name this worker.
    this.#dropShared(workerUrl).catch((err: unknown) => this.#logger.warn({ err, worker: workerUrl }, "state store: could not remove a departed worker's ids; other routers answer 404 for them"));
  }

  async #dropShared(workerUrl: string): Promise<void> {
    const dir = `${this.#ofPrefix}${workerIdOf(workerUrl)}/${this.#kind}/`;
    const ids = (await this.#client.getAll().prefix(dir).keys()).map((k) => k.slice(dir.length));
    for (let i = 0; i < ids.length; i += CLEANUP_BATCH) {
      await Promise.all(
        ids.slice(i, i + CLEANUP_BATCH).map((id) =>
          this.#client
            .if(this.#prefix + id, "Value", "==", workerUrl)
            .then(this.#client.delete().key(this.#prefix + id))
            .commit(),
        ),
      );
    }
    await this.#client.delete().prefix(dir).exec();
  }

  /** The owner of an id this router does not know, as another router wrote it; undefined when nobody did. */
  async resolve(id: string): Promise<string | undefined> {
    const local = this.lookup(id);
    if (local !== undefined) return local;
    try {
      return await this.#read(id);
    } catch (err) {
      // Not a 404: the id may well exist; the client should retry.
      throw new RouterError("state_store_unavailable", `cannot look up id ${id} in the state store (etcd): ${(err as Error).message}`, { cause: err, details: { retryAfterS: 1 } });
    }
  }

  async #read(id: string): Promise<string | undefined> {
    let url = await this.#client.get(this.#prefix + id).string();
    if (url === null) {
      // The router that made the id sends its write as its answer ends, so a
      // client that asks here at once may be a few ms ahead of etcd: one
      // second look before a 404 (an unknown id is rare, and costs this once).
      await new Promise((r) => setTimeout(r, SECOND_LOOK_MS));
      url = await this.#client.get(this.#prefix + id).string();
    }
    if (url === null) return undefined;
    super.remember(id, url);
    return url;
  }
}
