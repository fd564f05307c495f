/**
 * A hold that answers its waiters instead of keeping them until the queue
 * timeout: each request it has held `afterMs` (counted from the later of
 * its arrival and the hold) ends with `error()` (a router that lost its
 * state store: a clear 503 of its own soon, not a queue_timeout minutes later).
 */
export interface GiveUp {
  afterMs: number;
  error: () => Error;
}

/**
 * The gate generation requests pass: closed while any hold is taken (a
 * refit, a sleep), and the count of requests that passed and are not done,
 * which a refit drains before it touches weights ({@link Gate.whenIdle}).
 */
export class Gate {
  readonly #holds = new Map<number, string>();
  /** The holds that give up on their waiters, with when each was taken. */
  readonly #failing = new Map<number, GiveUp & { sinceMs: number }>();
  #nextHold = 0;
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];

  /** `onRelease` runs when a hold is let go (the queue may move again). */
  constructor(private readonly onRelease: () => void) {}

  get held(): boolean {
    return this.#holds.size > 0;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Closes the gate until the returned function is called (calling it twice lets go once); `giveUp`: its waiters are answered with an error after a while. */
  hold(reason: string, giveUp?: GiveUp): () => void {
    const id = this.#nextHold++;
    this.#holds.set(id, reason);
    if (giveUp) this.#failing.set(id, { ...giveUp, sinceMs: Date.now() });
    return () => {
      this.#failing.delete(id);
      if (this.#holds.delete(id)) this.onRelease();
    };
  }

  /** The oldest hold that gives up on its waiters, or null. */
  failing(): (GiveUp & { sinceMs: number }) | null {
    return this.#failing.values().next().value ?? null;
  }

  /** Why requests are held, for a client whose wait timed out. */
  reasons(): string {
    return [...new Set(this.#holds.values())].join(", ");
  }

  started(): void {
    this.#inFlight++;
  }

  ended(): void {
    this.#inFlight--;
    if (this.#inFlight !== 0 || this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves true once nothing is in flight, false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.#idleWaiters.push(done);
    });
  }
}
