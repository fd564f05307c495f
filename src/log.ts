import { pino, type Logger, type LevelWithSilent, type LoggerOptions as PinoOptions } from "pino";

export type { Logger };

/** `json`: one JSON object per line (for collectors); `pretty`: a line a person reads, coloured on a terminal. */
export type LogFormat = "json" | "pretty";

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default "info". */
  level?: LevelWithSilent;
  /** Name bound to every line (router, sim, launcher). */
  name?: string;
  /** Default "json". */
  format?: LogFormat;
}

/**
 * One logger per process. JSON lines are written synchronously to stdout
 * (pino's default destination). Pretty lines are formatted by pino-pretty in
 * a pino transport (a worker thread), so the formatting never runs on the
 * thread that proxies requests; colour only when stdout is a terminal and
 * NO_COLOR is unset.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const base: PinoOptions = {
    name: options.name ?? "sglang-d-router",
    level: options.level ?? "info",
    // Never log credentials, even if a caller passes headers by mistake.
    redact: {
      paths: ["authorization", "headers.authorization", "req.headers.authorization", "*.adminApiKey", "*.apiKey"],
      censor: "[redacted]",
    },
  };
  if (options.format !== "pretty") return pino(base);
  const colorize = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  return pino(
    base,
    pino.transport({
      target: "pino-pretty",
      options: { colorize, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", singleLine: true, destination: 1 },
    }),
  );
}
