import type { Etcd3 } from "etcd3";

/** Buckets per TTL: each key lives between the TTL and 1/12 more (an hour: 60 to 65 min). */
const BUCKETS_PER_TTL = 12;

/**
 * The leases shared id keys (`PREFIX/affinity/<id>` and their index entries)
 * are written under, so that etcd drops them by itself some time after they
 * were learnt: image ids are never deleted through the API, and the routers'
 * clean-up only runs when a worker leaves. One lease per time bucket, never
 * kept alive (a lease per id would be a grant per image; one lease kept
 * alive by a router would die with that router, or never). A key written
 * under the bucket's lease expires between `ttlS` and `ttlS` plus a bucket
 * after it was written. An id whose key expired is still found: a router
 * that does not know it asks the workers (http/owner-lookup.ts) before a
 * 404, so a short TTL costs a lookup, never a wrong answer.
 */
export class AffinityLeases {
  readonly #client: Etcd3;
  readonly #bucketMs: number;
  readonly #leaseS: number;
  #current: { id: Promise<string>; untilMs: number } | null = null;

  constructor(client: Etcd3, ttlS: number) {
    this.#client = client;
    this.#bucketMs = Math.max(1_000, Math.round((ttlS * 1_000) / BUCKETS_PER_TTL));
    this.#leaseS = ttlS + Math.ceil(this.#bucketMs / 1_000);
  }

  /** The id of the lease a key written now goes under (granted once per bucket). */
  current(): Promise<string> {
    const now = Date.now();
    if (this.#current !== null && now < this.#current.untilMs) return this.#current.id;
    const id = this.#client.lease(this.#leaseS, { autoKeepAlive: false }).grant();
    const entry = { id, untilMs: now + this.#bucketMs };
    this.#current = entry;
    // A failed grant is not kept: the next write asks again.
    id.catch(() => this.failed(entry.id));
    return id;
  }

  /** A write under `id` failed (etcd away, or the lease gone): the next write gets a new lease. */
  failed(id: Promise<string>): void {
    if (this.#current?.id === id) this.#current = null;
  }
}
