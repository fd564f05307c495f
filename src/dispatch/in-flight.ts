/** One exchange with a worker that can be ended from outside (proxy/forward.ts's Exchange). */
export interface Severable {
  /** Ends the exchange with `error`: its upstream request is aborted, its caller sees `error` as the outcome's. */
  sever(error: Error): void;
}

/**
 * This router's generation exchanges open now, in one place: every exchange
 * of a request admission placed (dispatcher.ts passes this set to forward;
 * a hedged copy is one more exchange) is added when it starts and deleted
 * when it settles, so the hot path pays a Set add and delete and nothing
 * else. Admission's gate already counts these requests (a refit's drain),
 * but a count cannot end them; and its tickets carry no handle on the
 * upstream call. Requests to one given worker (id content, polls, admin
 * passthroughs) are not here: they are not held or drained either.
 *
 * Its one use: a router that can no longer prove the other routers count it
 * (its etcd presence lease lapsing, state/presence-proof.ts) ends them all,
 * so none of its answers can arrive after another router loaded new weights.
 */
export class InFlight {
  readonly #open = new Set<Severable>();

  get size(): number {
    return this.#open.size;
  }

  add(exchange: Severable): void {
    this.#open.add(exchange);
  }

  delete(exchange: Severable): void {
    this.#open.delete(exchange);
  }

  /** Ends every exchange open now with `error`; returns how many there were. */
  severAll(error: Error): number {
    const open = [...this.#open];
    this.#open.clear();
    for (const exchange of open) exchange.sever(error);
    return open.length;
  }
}
