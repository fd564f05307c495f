import type { Worker } from "../registry/worker.js";
import type { EligibilityCache } from "../scheduler/eligibility.js";
import { groupCandidates } from "./groups.js";
import type { RoutingKeys } from "./keys.js";
import type { Ticket } from "./ticket.js";

/** Which workers may take a ticket now, and whether waiting for one can help. */
export class Candidates {
  constructor(
    private readonly eligibility: EligibilityCache,
    private readonly keys: RoutingKeys,
    /** A registered worker by URL (a prompt group's worker that is gone moves the group). */
    private readonly lookup: (url: string) => Worker | undefined,
  ) {}

  /** Routable workers serving the ticket's demand and weight version, not yet tried; only its key's worker when it has one. */
  of(ticket: Ticket): readonly Worker[] {
    let all = this.eligibility.routable(ticket.demand);
    const version = ticket.weightVersion;
    if (version !== null) all = all.filter((w) => w.weightVersion === version);
    const ex = ticket.exclude;
    // A prompt group is hard affinity (its worker, or wait); a routing key is best effort.
    if (ticket.group !== undefined) return groupCandidates(ticket.group, all, this.lookup, ex);
    const pinned = this.keys.pinned(ticket.facts.routingKey, ticket.demand, all);
    // A key's worker that already failed this request is not waited for: the retry goes elsewhere.
    if (pinned !== null && !ex?.has(pinned.url)) return [pinned];
    return ex === null ? all : all.filter((w) => !ex.has(w.url));
  }

  /**
   * Whether waiting can help: some worker that may serve the request exists
   * and is only temporarily unable to (busy, asleep, syncing, draining,
   * ejected, or held). An empty pool, or one where every such worker is dead,
   * fails at once so that clients' own retries take over.
   */
  mayWait(ticket: Ticket, held: boolean): boolean {
    const ex = ticket.exclude;
    for (const w of this.eligibility.registered(ticket.demand)) {
      if (ex !== null && ex.has(w.url)) continue; // already failed this request
      // An ejection ends with a probe within a minute: waiting for it beats failing.
      if (!w.dead || held || w.deadReason === "ejected") return true;
    }
    return false;
  }

  /** Every worker registered for the ticket's demand, routable or not. */
  registered(ticket: Ticket): readonly Worker[] {
    return this.eligibility.registered(ticket.demand);
  }
}
