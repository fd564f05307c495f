import type { Gate } from "./gate.js";
import type { WaitQueue } from "./queue.js";

/** How often held waiters are checked against a hold that gives up (a quarter second late at most, on a wait of seconds). */
const SWEEP_MS = 250;

/**
 * Ends the waits a giving-up hold (gate.ts `GiveUp`) has kept long enough,
 * with the hold's error. Runs only while such a hold is taken, so the hot
 * path pays nothing. A rollout item (`fromJob`) keeps waiting: its job has
 * its own deadline and would only fail the item.
 */
export class GiveUpSweep {
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly gate: Gate,
    private readonly queue: WaitQueue,
  ) {}

  /** A giving-up hold was taken: sweep until none is left. */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  #sweep(): void {
    const hold = this.gate.failing();
    if (hold === null) {
      clearInterval(this.#timer!);
      this.#timer = null;
      return;
    }
    const now = Date.now();
    this.queue.failWhere((w) => w.ticket.fromJob !== true && now - Math.max(w.addedAtMs, hold.sinceMs) >= hold.afterMs, hold.error);
  }
}
