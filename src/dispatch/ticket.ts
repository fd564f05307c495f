import type { Ticket } from "../admission/admission.js";
import { demandOf } from "../scheduler/eligibility.js";
import { factsWithoutBody, readRequestFacts, type RequestFacts, type RouteKind } from "../scheduler/request-facts.js";

/**
 * What the scheduler needs of a request, read from the body the router
 * holds anyway (a retryable JSON body); bodies it streams (multipart,
 * large) are estimated without it.
 */
export function ticketOf(kind: RouteKind, body: Buffer | null, contentType: string | undefined, routingKey: string | null): Ticket {
  let facts: RequestFacts;
  if (body === null || kind === "other" || body.length === 0 || !/json/i.test(contentType ?? "application/json")) {
    facts = factsWithoutBody(kind, routingKey);
  } else {
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      // Not JSON: the worker answers the client's mistake; the router estimates without it.
    }
    facts = readRequestFacts(kind, parsed, routingKey);
  }
  return { demand: demandOf(kind, facts.model), facts, exclude: null, run: null, weightVersion: null };
}
