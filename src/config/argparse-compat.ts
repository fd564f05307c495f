/**
 * What the original router's command line (Python argparse + uvicorn)
 * accepts, so that start scripts written for it run unchanged here:
 * Python's `int()` and `float()` spellings, uvicorn's log-level names, and
 * argparse's unique-prefix abbreviations of long flags.
 */
import type { LevelWithSilent } from "pino";

/** Python's `int()` on a command-line string: surrounding spaces, a sign, and `_` between digits are allowed. */
const pythonIntPattern = /^[+-]?\d+(?:_\d+)*$/;
/** Python's `float()`: decimal or exponent forms with `_` between digits, and inf/infinity/nan in any case. */
const pythonFloatPattern = /^[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d+(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|\d+(?:_\d+)*\.(?:[eE][+-]?\d+(?:_\d+)*)?)$/;
const pythonSpecialFloat = /^[+-]?(?:inf|infinity|nan)$/i;

/** The number Python's `int(text)` gives, or null where Python raises ValueError. */
export function parsePythonInt(text: string): number | null {
  const t = text.trim();
  if (!pythonIntPattern.test(t)) return null;
  const n = Number(t.replaceAll("_", ""));
  return Number.isSafeInteger(n) ? n : null;
}

/** The number Python's `float(text)` gives (Infinity and NaN included), or null where Python raises ValueError. */
export function parsePythonFloat(text: string): number | null {
  const t = text.trim();
  if (pythonSpecialFloat.test(t)) {
    const negative = t.startsWith("-");
    if (/nan/i.test(t)) return Number.NaN;
    return negative ? -Infinity : Infinity;
  }
  if (!pythonFloatPattern.test(t)) return null;
  return Number(t.replaceAll("_", ""));
}

/**
 * Log levels by name: uvicorn's (which the original handed `--log-level` to)
 * and pino's, in any case. uvicorn's `critical` and `warning` are pino's
 * `fatal` and `warn`.
 */
const logLevelNames: Readonly<Record<string, LevelWithSilent>> = Object.freeze({
  critical: "fatal",
  fatal: "fatal",
  error: "error",
  warning: "warn",
  warn: "warn",
  info: "info",
  debug: "debug",
  trace: "trace",
  silent: "silent",
});

export const logLevelSpellings: readonly string[] = Object.freeze(Object.keys(logLevelNames));

/** pino's level for a uvicorn or pino level name (any case), or null. */
export function normalizeLogLevel(name: string): LevelWithSilent | null {
  return logLevelNames[name.trim().toLowerCase()] ?? null;
}

/**
 * argparse (allow_abbrev, its default) takes any unique prefix of a long
 * flag: `--verb` is `--verbose`, `--rout round-robin` is
 * `--routing-algorithm round-robin`. Rewrites such prefixes to the full flag
 * (also in the `--flag=value` form) and leaves everything else alone; an
 * exact flag always wins, an ambiguous prefix is an error naming the
 * candidates, as argparse says it.
 */
export function expandAbbreviations(argv: readonly string[], longFlags: readonly string[]): string[] {
  const known = new Set(longFlags);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith("--") || arg.length < 3) {
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    if (known.has(flag)) {
      out.push(arg);
      continue;
    }
    const matches = longFlags.filter((f) => f.startsWith(flag));
    if (matches.length === 1) out.push(eq < 0 ? matches[0]! : matches[0]! + arg.slice(eq));
    else if (matches.length > 1) throw new AmbiguousOptionError(flag, matches);
    else out.push(arg);
  }
  return out;
}

export class AmbiguousOptionError extends Error {
  override readonly name = "AmbiguousOptionError";
  constructor(flag: string, candidates: readonly string[]) {
    super(`ambiguous option: ${flag} could match ${candidates.join(", ")}`);
  }
}
