import { performance } from "node:perf_hooks";
import type { Lease } from "etcd3";

/**
 * How long before etcd could expire this router's presence lease it stops
 * counting itself present (3 s of the 10 s lease). It covers what lies
 * between this router's timer and the refit router's load: this process's
 * event loop running late (two cores shared with workers and other routers:
 * GC pauses and busy loops of a few hundred ms were seen under load), the
 * refit router's 50 ms reads of the presence keys, and the severed
 * requests' aborts reaching the workers. Larger would sever requests on a
 * short etcd blip (keep-alives go every 3.3 s: one lost keep-alive must not
 * sever; two do, 7 s after the last renewal).
 */
export const PRESENCE_MARGIN_MS = 3_000;

/** Told when this router stops (and starts again) being provably counted by the other routers. */
export interface PresenceListener {
  /** Its lease may expire on etcd within the margin, or has: the others may count it gone. */
  lapsed(why: string): void;
  /** A keep-alive (or a new lease and presence key) went through: the others count it again. */
  proven(): void;
}

/**
 * Whether the other routers still count this one present, known without
 * asking etcd (which may be out of reach): etcd expires the lease TTL after
 * the last keep-alive it received, and that was no earlier than when this
 * router sent it. Keep-alives go out on one stream and are answered in
 * order, so each answer is matched to the oldest unanswered send; the lease
 * is then known alive until that send plus the TTL. {@link PRESENCE_MARGIN_MS}
 * before that, with no newer answer, the listener hears `lapsed`. The
 * etcd3 client's own `lost` fires only 2 TTLs after the last keep-alive, or
 * when etcd answers that the lease is gone: far too late to sever anything.
 */
export class PresenceProof {
  #lease: Lease | null = null;
  /** performance.now() of the keep-alives sent on the current stream and not answered yet, oldest first. */
  #sent: number[] = [];
  /** The latest moment etcd is known to have (re)started the lease's TTL after. */
  #renewedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #lapsed = false;
  #why = "";
  #listener: PresenceListener | null = null;

  constructor(
    private readonly ttlMs: number,
    private readonly marginMs: number = PRESENCE_MARGIN_MS,
  ) {}

  /** `lease` was granted and this router's presence key put under it; `askedAt`: performance.now() before the grant was asked. */
  granted(lease: Lease, askedAt: number): void {
    this.#lease = lease;
    this.#sent = [];
    const mine = (): boolean => this.#lease === lease;
    lease.on("keepaliveEstablished", () => mine() && (this.#sent = []));
    lease.on("keepaliveFailed", () => mine() && (this.#sent = []));
    lease.on("keepaliveFired", () => mine() && this.#sent.push(performance.now()));
    lease.on("keepaliveSucceeded", () => {
      const sent = mine() ? this.#sent.shift() : undefined;
      if (sent !== undefined) this.#renewed(Math.max(this.#renewedAt, sent));
    });
    this.#renewed(askedAt);
  }

  /** etcd said the lease is gone (or the client gave up on it): lapsed now, until a new one is granted. */
  lost(): void {
    this.#lease = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#lapse("its presence lease was lost (etcd expired it, or did not answer for 2 lease TTLs)");
  }

  /** One listener (etcd-state.ts); a lapse before it was set is told at once. */
  listen(listener: PresenceListener): void {
    this.#listener = listener;
    if (this.#lapsed) listener.lapsed(this.#why);
  }

  stop(): void {
    this.#lease = null;
    this.#listener = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #renewed(at: number): void {
    this.#renewedAt = at;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const left = at + this.ttlMs - this.marginMs - performance.now();
    const why = `no keep-alive of its presence lease answered for ${Math.round((this.ttlMs - this.marginMs) / 1000)} s (etcd expires it ${Math.round(this.ttlMs / 1000)} s after the last)`;
    if (left <= 0) {
      this.#timer = null;
      this.#lapse(why);
      return;
    }
    this.#timer = setTimeout(() => this.#lapse(why), left);
    this.#timer.unref();
    if (!this.#lapsed) return;
    this.#lapsed = false;
    this.#listener?.proven();
  }

  #lapse(why: string): void {
    this.#timer = null;
    if (this.#lapsed) return;
    this.#lapsed = true;
    this.#why = why;
    this.#listener?.lapsed(why);
  }
}
