import type { Ticket } from "../admission/admission.js";
import { demandOf } from "../scheduler/eligibility.js";
import { factsWithoutBody, readRequestFacts, type RequestFacts, type RouteKind } from "../scheduler/request-facts.js";
import { limitViolation, type RequestLimits } from "../scheduler/request-limits.js";

/** Reads a request's ticket; made once with the router's request limits. */
export type TicketReader = (kind: RouteKind, body: Buffer | null, contentType: string | undefined, routingKey: string | null) => Ticket;

export function ticketReader(limits: RequestLimits | null): TicketReader {
  return (kind, body, contentType, routingKey) => ticketOf(kind, body, contentType, routingKey, limits);
}

/**
 * What the scheduler needs of a request, read from the body the router
 * holds anyway (a retryable JSON body); bodies it streams (multipart,
 * large) are estimated without it. A body over the request limits is a
 * 400 here, before any worker is chosen.
 */
export function ticketOf(kind: RouteKind, body: Buffer | null, contentType: string | undefined, routingKey: string | null, limits: RequestLimits | null = null): Ticket {
  let facts: RequestFacts;
  let seeded = false;
  if (body === null || kind === "other" || body.length === 0 || !/json/i.test(contentType ?? "application/json")) {
    facts = factsWithoutBody(kind, routingKey);
  } else {
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      // Not JSON: the worker answers the client's mistake; the router estimates without it.
    }
    if (limits !== null && typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      const refused = limitViolation(parsed as Record<string, unknown>, limits);
      if (refused !== null) throw refused;
    }
    facts = readRequestFacts(kind, parsed, routingKey);
    seeded = typeof parsed === "object" && parsed !== null && Number.isInteger((parsed as { seed?: unknown }).seed);
  }
  // facts.kind, not kind: a native generation whose body asks for video goes to video workers.
  return { demand: demandOf(facts.kind, facts.model), facts, exclude: null, run: null, weightVersion: null, seeded };
}
