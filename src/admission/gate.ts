/**
 * The gate generation requests pass: closed while any hold is taken (a
 * refit, a sleep), and the count of requests that passed and are not done,
 * which a refit drains before it touches weights ({@link Gate.whenIdle}).
 */
export class Gate {
  readonly #holds = new Map<number, string>();
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

  /** Closes the gate until the returned function is called (calling it twice lets go once). */
  hold(reason: string): () => void {
    const id = this.#nextHold++;
    this.#holds.set(id, reason);
    return () => {
      if (this.#holds.delete(id)) this.onRelease();
    };
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
