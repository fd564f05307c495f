import { LauncherConfigError } from "./errors.js";

/** Where a launcher mapping came from, so every error names the file and the dotted key. */
export interface ConfigContext {
  /** File path, or a label such as "LaunchWorkers request". */
  readonly source: string;
  /** How errors name the mapping: `launcher`, `launcher[i]`, `launcher.slurm`. */
  readonly path: string;
}

export type Mapping = Record<string, unknown>;

export function isMapping(value: unknown): value is Mapping {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The error for `<path>.<key>` holding a value that is not `expectation`. */
export function badValue(ctx: ConfigContext, key: string, expectation: string, value: unknown): LauncherConfigError {
  return new LauncherConfigError(`${ctx.path}.${key} in ${ctx.source} must be ${expectation}, got ${describe(value)}`, {
    source: ctx.source,
    key: `${ctx.path}.${key}`,
  });
}

/** Renders a bad value for an error message, short and unambiguous. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return `a list ${truncate(safeJson(value))}`;
  if (isMapping(value)) return `a mapping ${truncate(safeJson(value))}`;
  return truncate(safeJson(value));
}

/** JSON for messages; YAML aliases can make a value refer to itself. */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === "object" && v !== null) {
          if (seen.has(v)) return "[circular]";
          seen.add(v);
        }
        return typeof v === "bigint" || typeof v === "symbol" ? String(v) : v;
      }) ?? String(value)
    );
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The candidate within edit distance 2 of `key` (or sharing its first 6+ characters), if any. */
export function closestKey(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (bestDistance <= 2) return best;
  return candidates.find((k) => key.length >= 6 && (k.startsWith(key) || key.startsWith(k)));
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
