#!/usr/bin/env node
import { settingsFromArgv } from "./config/cli-options.js";
import type { RouterOptions } from "./config/options.js";
import { RouterError } from "./errors.js";
import { createLogger, type LogFormat } from "./log.js";
import { startRouter } from "./router.js";

async function main(): Promise<void> {
  let options: RouterOptions;
  let logFormat: LogFormat | null;
  try {
    ({ options, logFormat } = settingsFromArgv(process.argv.slice(2)));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
    if (typeof code === "string" && code.startsWith("commander.")) process.exit(2);
    process.stderr.write(`sglang-d-router: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: options.logLevel, format: logFormat ?? (process.stdout.isTTY ? "pretty" : "json") });
  let router;
  try {
    router = await startRouter(options, logger);
  } catch (err) {
    const e = RouterError.from(err);
    logger.fatal({ code: e.code }, e.message);
    process.stderr.write(`sglang-d-router: ${e.message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    router.close().then(
      () => {
        logger.info("router stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // Launched workers run in their own process groups: if the router dies
  // without a clean shutdown, they would keep their GPUs.
  process.on("exit", () => router.launcher.killAllSync());
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

void main();
