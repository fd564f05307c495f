import type { RouteSpec } from "../dispatch/context.js";
import { RouterError } from "../errors.js";
import type { RolloutOptions, RolloutRequest } from "./rollout-job.js";

/** What a client submits, before validation (REST JSON or the RPC's fields). */
export interface RolloutSubmission {
  requests?: unknown;
  min_complete?: unknown;
  deadline_s?: unknown;
  routing_key?: unknown;
  weight_version?: unknown;
  min_complete_groups?: unknown;
}

/** What a submission is checked against. */
export interface SubmissionLimits {
  /** Most items in one job. */
  maxItems: number;
  /** The paths an item may take, and what each is to the dispatch core. */
  routes: ReadonlyMap<string, RouteSpec>;
  /** The router's current weight version. */
  currentVersion: string;
}

const submissionFields = new Set(["requests", "min_complete", "deadline_s", "routing_key", "weight_version", "min_complete_groups"]);

function invalid(message: string, param: string): RouterError {
  return new RouterError("invalid_request", message, { details: { param } });
}

/** `requests[i].group`: a prompt group's name, or null (none; "" is none too, as in the RPC). */
function parseGroup(g: unknown, i: number): string | null {
  if (g === undefined || g === null || g === "") return null;
  if (typeof g !== "string" || g.length > 200) throw invalid(`requests[${i}].group must be a string of at most 200 characters`, `requests[${i}].group`);
  return g;
}

/** `requests[i]`: a `{path, body, group?}` object whose path is a generation route. */
function parseRequest(r: unknown, i: number, routes: ReadonlyMap<string, RouteSpec>): RolloutRequest {
  if (typeof r !== "object" || r === null || Array.isArray(r)) throw invalid(`requests[${i}] must be an object {path, body}`, `requests[${i}]`);
  const { path, body, group, ...rest } = r as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length) throw new RouterError("unknown_field", `requests[${i}] has unsupported fields: ${extra.join(", ")} (supported: path, body, group)`, { details: { param: `requests[${i}].${extra[0]}` } });
  const route = typeof path === "string" ? routes.get(path) : undefined;
  if (route === undefined) throw invalid(`requests[${i}].path must be one of ${[...routes.keys()].join(", ")}, got ${JSON.stringify(path)}`, `requests[${i}].path`);
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid(`requests[${i}].body must be a JSON object`, `requests[${i}].body`);
  return { path: path as string, route, body: Buffer.from(JSON.stringify(body)), group: parseGroup(group, i) };
}

function given(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** min_complete_groups: an integer 1-(the number of groups), and not with min_complete (one stop rule per job). */
function parseMinGroups(s: RolloutSubmission, groups: number): number | null {
  if (!given(s.min_complete_groups) || s.min_complete_groups === 0) return null;
  const k = s.min_complete_groups;
  if (groups === 0) throw invalid("min_complete_groups needs items with a group (requests[i].group)", "min_complete_groups");
  if (typeof k !== "number" || !Number.isInteger(k) || k < 1 || k > groups) throw invalid(`min_complete_groups must be an integer 1-${groups} (the number of groups), got ${JSON.stringify(k)}`, "min_complete_groups");
  if (given(s.min_complete)) throw invalid("min_complete_groups and min_complete cannot both be set", "min_complete_groups");
  return k;
}

/** The job's options; `size` is its number of requests, `groups` its number of distinct groups. */
function parseOptions(s: RolloutSubmission, size: number, groups: number, currentVersion: string): RolloutOptions {
  let minComplete: number | null = null;
  if (given(s.min_complete)) {
    const k = s.min_complete;
    if (typeof k !== "number" || !Number.isInteger(k) || k < 1 || k > size) throw invalid(`min_complete must be an integer 1-${size} (the number of requests), got ${JSON.stringify(k)}`, "min_complete");
    minComplete = k;
  }
  let deadlineMs: number | null = null;
  if (given(s.deadline_s)) {
    const d = s.deadline_s;
    if (typeof d !== "number" || !(d > 0) || d > 2_000_000) throw invalid(`deadline_s must be a number of seconds > 0 (at most 2000000), got ${JSON.stringify(d)}`, "deadline_s");
    deadlineMs = d * 1000;
  }
  let routingKey: string | null = null;
  // "" means none, as in the RPC (a proto string cannot be absent).
  if (given(s.routing_key) && s.routing_key !== "") {
    if (typeof s.routing_key !== "string" || s.routing_key.length > 200) throw invalid("routing_key must be a non-empty string of at most 200 characters", "routing_key");
    routingKey = s.routing_key;
  }
  let weightVersion: string | null = null;
  if (given(s.weight_version) && s.weight_version !== "") {
    if (typeof s.weight_version !== "string" && typeof s.weight_version !== "number") throw invalid("weight_version must be a string or a number", "weight_version");
    weightVersion = String(s.weight_version);
    if (weightVersion !== currentVersion) {
      throw new RouterError("weight_version_mismatch", `weight_version ${JSON.stringify(weightVersion)} is not the router's current weight version ${JSON.stringify(currentVersion)}: no worker will serve it`, { details: { param: "weight_version", current_weight_version: currentVersion } });
    }
  }
  return { minComplete, minCompleteGroups: parseMinGroups(s, groups), deadlineMs, routingKey, weightVersion };
}

/** Checks a submission once, for REST and RPC alike; every problem names its field (and item index). */
export function parseSubmission(s: RolloutSubmission, limits: SubmissionLimits): { requests: RolloutRequest[]; options: RolloutOptions } {
  const unknown = Object.keys(s).filter((k) => !submissionFields.has(k));
  if (unknown.length) throw new RouterError("unknown_field", `Unsupported fields: ${unknown.join(", ")} (supported: ${[...submissionFields].join(", ")})`, { details: { param: unknown[0] } });
  if (!Array.isArray(s.requests) || s.requests.length === 0) throw invalid("requests must be a non-empty array of {path, body}", "requests");
  if (s.requests.length > limits.maxItems) throw invalid(`requests has ${s.requests.length} items; at most ${limits.maxItems} per job`, "requests");
  const requests = s.requests.map((r: unknown, i) => parseRequest(r, i, limits.routes));
  const groups = new Set(requests.map((r) => r.group).filter((g) => g !== null)).size;
  return { requests, options: parseOptions(s, requests.length, groups, limits.currentVersion) };
}
