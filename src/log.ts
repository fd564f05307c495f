import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default "info". */
  level?: LevelWithSilent;
  /** Name bound to every line (router, sim, launcher). */
  name?: string;
}

/**
 * One JSON logger per process, written synchronously to stdout (pino's default
 * destination). Pretty printing belongs in a pipe (`| npx pino-pretty`), not in
 * the server process.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({
    name: options.name ?? "sglang-d-router",
    level: options.level ?? "info",
    // Never log credentials, even if a caller passes headers by mistake.
    redact: {
      paths: ["authorization", "headers.authorization", "req.headers.authorization", "*.adminApiKey", "*.apiKey"],
      censor: "[redacted]",
    },
  });
}
