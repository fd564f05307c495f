import { RouterError } from "../errors.js";

/**
 * A launcher configuration the router cannot act on: bad YAML, an unknown or
 * mistyped key, or a request the machine cannot satisfy (not enough GPUs).
 * It is a RouterError with code `invalid_request`, so the REST and RPC layers
 * report it as a 400 without knowing about the launcher.
 */
export class LauncherConfigError extends RouterError {
  /** Dotted key the message is about (e.g. `launcher.num_workers`), when there is one. */
  readonly key: string | undefined;
  /** File path, or a label such as "LaunchWorkers request", the config came from. */
  readonly source: string;

  constructor(message: string, options: { source: string; key?: string; cause?: unknown }) {
    super("invalid_request", message, {
      cause: options.cause,
      details: { source: options.source, ...(options.key === undefined ? {} : { param: options.key }) },
    });
    this.key = options.key;
    this.source = options.source;
  }
}

/**
 * A valid configuration that could not be carried out on this machine for a
 * reason outside the request (missing `sglang` binary, unbuilt simulator, no
 * free port). Code `internal`: the operator, not the caller, has to act.
 */
export class LauncherError extends RouterError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("internal", message, { cause: options.cause });
  }
}

/** A worker process ended before it answered `/health` with 200. */
export class WorkerExitedError extends LauncherError {
  /** Exit code, or null when a signal ended it. */
  readonly exitCode: number | null;
  /** Signal that ended it, or null. */
  readonly signal: NodeJS.Signals | null;

  constructor(message: string, exit: { code: number | null; signal: NodeJS.Signals | null }) {
    super(message);
    this.exitCode = exit.code;
    this.signal = exit.signal;
  }
}
