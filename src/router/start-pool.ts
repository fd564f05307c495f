import type { RouterOptions } from "../config/options.js";
import type { Logger } from "../log.js";
import { recordPool, restorePool } from "../state/pool-record.js";
import type { Core } from "./core.js";
import type { Doors } from "./doors.js";

/**
 * The pool the router starts with: a restarted router first serves the
 * workers its state file recorded (RL frameworks register once, at start),
 * then what the command line adds; from then on, the state file follows
 * the registry.
 */
export async function registerStartingPool(core: Core, doors: Doors, options: RouterOptions, logger: Logger): Promise<void> {
  const { registry, stateFile } = core;
  const recorded = stateFile?.pool.load() ?? null;
  if (recorded !== null) {
    await restorePool(
      recorded,
      {
        addWorker: (url) => doors.control.addWorker(url),
        quarantine: (url) => registry.setQuarantined(url, true),
        drain: (url) => registry.setDraining(url, true),
        markSleeping: (url) => registry.markSleeping(url),
      },
      logger,
    );
  }
  // Recorded from here on (not during the restore: a crash then must not leave half the pool on disk).
  if (stateFile !== null) recordPool(registry, stateFile.pool, logger);
  await Promise.all(options.workerUrls.map((u) => doors.control.addWorker(u)));
}
