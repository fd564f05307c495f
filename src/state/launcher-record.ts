import type { ManagedRecord } from "../launcher/managed-record.js";
import type { Logger } from "../log.js";
import type { LauncherStore } from "./state-file.js";

/**
 * Keeps the launcher's part of the state file as its workers change
 * (started, adopted, restarted, located, stopped): `sync` writes the given
 * records when they differ from what was last written, so a restarted
 * router finds every worker its previous process left running.
 */
export function launcherRecorder(store: LauncherStore, logger: Logger): (records: readonly ManagedRecord[]) => void {
  let last = JSON.stringify(store.load() ?? []);
  return (records) => {
    const text = JSON.stringify(records);
    if (text === last) return;
    try {
      store.save(records);
      last = text;
    } catch (err) {
      // A full disk must not take the router down; the record is one write behind.
      logger.error({ err, path: store.path }, "could not write the launcher's workers to the state file");
    }
  };
}
