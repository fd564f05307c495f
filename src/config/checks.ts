/**
 * The value checks the router's options, the launcher YAML and the simulated
 * worker's flags share, so a port or a duration means the same in all three.
 * Each module words its own error (a flag, a YAML key); these only decide.
 */

export function isIntBetween(v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** A TCP port; 0 ("pick a free one") only where a listener may choose. */
export function isPort(v: unknown, allowZero = true): v is number {
  return isIntBetween(v, allowZero ? 0 : 1, 65535);
}

export function isPositiveNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v > 0;
}

export function isNonNegativeNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}
