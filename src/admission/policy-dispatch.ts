import type { Worker } from "../registry/worker.js";
import { keyOf } from "../scheduler/eligibility.js";
import type { DispatchContext, DispatchStrategy } from "./dispatch.js";
import type { Ticket } from "./ticket.js";

/**
 * `policy` mode: a request goes at once when some worker is under the
 * per-worker cap (the balancer's policy picks among them), else waits first
 * in, first out (the original's behaviour).
 */
export class PolicyDispatch implements DispatchStrategy {
  readonly ordered = false;

  constructor(private readonly ctx: DispatchContext) {}

  answersAtOnce(): boolean {
    return true;
  }

  pick(ticket: Ticket): Worker | null {
    const all = this.ctx.candidates.of(ticket);
    if (all.length === 0) return null;
    const cap = this.ctx.cap;
    if (cap === 0) return this.ctx.policy.pick(all);
    const free = all.filter((w) => w.activeRequests < cap);
    return free.length === 0 ? null : this.ctx.policy.pick(free);
  }

  priority(): number {
    return 0;
  }

  arrived(): void {
    this.ctx.pump();
  }

  freed(): void {
    this.ctx.pump();
  }

  dispatch(): void {
    const { queue } = this.ctx;
    const waiters = queue.live();
    // First-in first-out per demand: once a waiter finds no worker, later
    // waiters of the same demand wait behind it (those with exclusions or a
    // routing key may still go: they look at other workers).
    const exhausted = new Set<string>();
    let live = 0;
    for (const waiter of waiters) {
      if (waiter.settled) continue;
      const t = waiter.ticket;
      const plain = t.exclude === null && t.facts.routingKey === null;
      const demandKey = plain ? keyOf(t.demand) : "";
      const w = plain && exhausted.has(demandKey) ? null : this.pick(t);
      if (w === null) {
        if (plain) exhausted.add(demandKey);
        waiters[live++] = waiter;
        continue;
      }
      queue.hand(waiter, this.ctx.take(w, t, null));
    }
    waiters.length = live;
  }

  aboutToLeave(): number {
    return 0;
  }

  freesSlot(): boolean {
    return true;
  }

  freeSlots(w: Worker): number {
    return this.ctx.cap === 0 ? Number.MAX_SAFE_INTEGER : Math.max(0, this.ctx.cap - this.ctx.loads.runsOn(w));
  }
}
