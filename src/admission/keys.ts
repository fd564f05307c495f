import type { Worker } from "../registry/worker.js";
import { keyOf, type Demand } from "../scheduler/eligibility.js";
import { HashRing } from "../scheduler/routing-key.js";

/**
 * Where requests with a routing key go: a key with requests queued or
 * running stays on its worker; a new key goes where the hash ring with
 * bounded loads puts it (src/scheduler/routing-key.ts), its load being the
 * keys each worker holds.
 */
export class RoutingKeys {
  /** Keys with requests running: key -> worker and count. */
  readonly #sticky = new Map<string, { worker: Worker; count: number }>();
  /** Hash rings per demand (kind, model), rebuilt after a registry change. */
  readonly #rings = new Map<string, HashRing<Worker>>();

  /** A worker came, went or changed: the rings are rebuilt on next use. */
  forgetRings(): void {
    this.#rings.clear();
  }

  /** The worker `key` sends a request of `demand` to among `all`, or null without a key or candidates. */
  pinned(key: string | null, demand: Demand, all: readonly Worker[]): Worker | null {
    if (key === null || all.length === 0) return null;
    const sticky = this.#sticky.get(key);
    if (sticky && all.includes(sticky.worker)) return sticky.worker;
    const demandKey = keyOf(demand);
    let ring = this.#rings.get(demandKey);
    if (ring === undefined) {
      ring = new HashRing(all);
      if (this.#rings.size > 1000) this.#rings.clear(); // bounded: model names come from clients
      this.#rings.set(demandKey, ring);
    }
    const keysOn = new Map<Worker, number>();
    for (const s of this.#sticky.values()) keysOn.set(s.worker, (keysOn.get(s.worker) ?? 0) + 1);
    const picked = ring.pick(key, (w) => keysOn.get(w) ?? 0);
    return picked !== null && all.includes(picked) ? picked : all[0]!;
  }

  /** A request of `key` started on `worker`. */
  stick(key: string | null, worker: Worker): void {
    if (key === null) return;
    const s = this.#sticky.get(key);
    if (s && s.worker === worker) s.count++;
    else this.#sticky.set(key, { worker, count: 1 });
  }

  /** One request of `key` on `worker` ended; requests of a key that moved to another worker no longer count. */
  unstick(key: string | null, worker: Worker): void {
    if (key === null) return;
    const s = this.#sticky.get(key);
    if (s && s.worker === worker && --s.count <= 0) this.#sticky.delete(key);
  }

  /** Keys with requests running (for tests and the bound). */
  get size(): number {
    return this.#sticky.size;
  }
}
