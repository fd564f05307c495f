import { RouterError } from "../errors.js";

/**
 * A refit's `weight_version` as sent: null when not given (the next refit
 * number is used). An empty label is refused: answers would carry an empty
 * X-Weight-Version, and a trainer could not tell steps apart.
 */
export function weightVersionOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" && typeof value !== "number") {
    throw new RouterError("invalid_request", `weight_version must be a string or a number, got ${JSON.stringify(value)}`, { details: { param: "weight_version" } });
  }
  const label = String(value);
  if (label.trim() === "") throw new RouterError("invalid_request", "weight_version must not be empty (leave it out for the next refit number)", { details: { param: "weight_version" } });
  return label;
}

/** `replay` as sent: absent = false. */
export function replayOf(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw new RouterError("invalid_request", `replay must be a boolean, got ${JSON.stringify(value)}`, { details: { param: "replay" } });
  return value;
}

/**
 * Two refits under one label would make answers of different weights
 * indistinguishable: naming the pool's current version is refused unless
 * the caller says it loads the same checkpoint again on purpose (`replay`).
 */
export function checkNewLabel(requested: string | null, current: string, replay: boolean): void {
  if (requested === null || requested !== current || replay) return;
  throw new RouterError(
    "weight_version_unchanged",
    `weight_version ${JSON.stringify(requested)} is the pool's current version: name the new weights differently, leave weight_version out for the next number, or send "replay": true to load the same checkpoint again on purpose`,
    { details: { param: "weight_version" } },
  );
}
