import type { AuditEvent } from "./audit.js";
import type { Caller } from "./call-context.js";

/**
 * Folds repeated refusals into one audit event. A dashboard tab left open
 * without the key polls three admin routes a second, and a script with a
 * stale key retries; one event per 401 would push every real control action
 * out of the ring within minutes. So the same refusal (same caller host, key
 * class, transport and route) within `windowMs` of the first only counts on
 * that first event (`repeats`); the access log still has a line per call.
 */
export class RefusalWindow {
  readonly #recent = new Map<string, { event: AuditEvent; sinceMs: number }>();

  constructor(readonly windowMs: number) {}

  /** What makes two refusals the same: the caller's host (not its port: a new connection is the same caller), key class, transport and route. */
  static keyOf(caller: Caller, route: string): string {
    return `${caller.remote.replace(/:\d+$/, "")} ${caller.key} ${caller.transport} ${route}`;
  }

  /** The event of the same refusal less than `windowMs` ago, now counting this one; undefined when this one is new. */
  repeat(key: string, nowMs: number): AuditEvent | undefined {
    // Entries are in time order: the expired ones are at the front.
    for (const [k, r] of this.#recent) {
      if (nowMs - r.sinceMs < this.windowMs) break;
      this.#recent.delete(k);
    }
    const seen = this.#recent.get(key);
    if (seen === undefined) return undefined;
    seen.event.repeats = (seen.event.repeats ?? 1) + 1;
    return seen.event;
  }

  remember(key: string, event: AuditEvent, nowMs: number): void {
    this.#recent.set(key, { event, sinceMs: nowMs });
  }
}
