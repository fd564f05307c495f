import type { Etcd3 } from "etcd3";
import { RouterError } from "../errors.js";
import type { PersistedState } from "../refit/state-store.js";
import type { PeerDrain } from "../refit/operations.js";
import type { EtcdRefitStore } from "./etcd-refit-store.js";
import type { RouterPresence } from "./router-presence.js";

/** How often the refit router reads the drain reports: a few reads a second cost nothing next to a weight load. */
const POLL_MS = 50;

/** The id of a refit in progress, as every router names it: the writing router and when it started. */
export function refitIdOf(by: string, inProgress: NonNullable<PersistedState["inProgress"]>): string {
  return `${by}:${inProgress.startedAtMs}`;
}

/** `PREFIX/refit/drain/`: one key per router, holding the id of the last refit it drained for. */
export const drainDir = (prefix: string): string => `${prefix}/refit/drain/`;

/**
 * The refit router's side of the distributed drain (docs/multi-router.md,
 * "Refit across routers", step 3): once its own requests are drained, it
 * waits until every other router present (`PREFIX/routers/`) has reported,
 * under `PREFIX/refit/drain/<router>`, that it holds new generation and has
 * nothing of its own in flight for this refit; only then do weights move. A
 * router that dies meanwhile leaves the list with its lease. Past the
 * deadline the refit ends with drain_timeout and nothing changed (the others
 * see it end and serve the old weights again): never mix weights, rather
 * than load under another router's answers. A sleep (memory release) is
 * announced and waited for the same way; a wake is not (nothing is routed
 * to sleeping workers, so there is nothing to drain).
 */
export function createPeerDrain(client: Etcd3, prefix: string, store: EtcdRefitStore, presence: RouterPresence): PeerDrain {
  return async (deadlineMs) => {
    const inProgress = store.load()?.inProgress;
    if (!inProgress) return;
    const refitId = refitIdOf(store.self, inProgress);
    // The others learn of the refit from etcd: its state must be there before waiting for them.
    await store.flush();
    for (;;) {
      const waiting = await undrained(client, prefix, presence, refitId);
      if (waiting.length === 0) return;
      if (Date.now() >= deadlineMs) {
        throw new RouterError("drain_timeout", `${waiting.length} other router(s) (${waiting.join(", ")}) still had generation requests in flight when the drain timed out: nothing was changed (raise drain_timeout_s or --drain-timeout)`, { details: { routers: waiting } });
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
}

async function undrained(client: Etcd3, prefix: string, presence: RouterPresence, refitId: string): Promise<string[]> {
  let live: string[];
  let reports: Record<string, string>;
  try {
    [live, reports] = await Promise.all([presence.live(), client.getAll().prefix(drainDir(prefix)).strings()]);
  } catch (err) {
    // Fail closed: the others cannot be known drained.
    throw new RouterError("state_store_unavailable", `could not read the other routers' drain reports from etcd: ${(err as Error).message}; nothing was changed`, { cause: err, details: { retryAfterS: 1 } });
  }
  return live.filter((id) => id !== presence.id && reports[drainDir(prefix) + id] !== refitId);
}

/**
 * A following router's side: it holds new generation already (refit-follow.ts);
 * once its own requests in flight are done, it reports so for `refitId`.
 * Stops when `current()` says the refit ended (committed, aborted, or
 * settled after its router died) before this router drained.
 */
export async function reportDrained(presence: RouterPresence, prefix: string, refitId: string, whenIdle: (ms: number) => Promise<boolean>, current: () => string | null): Promise<void> {
  while (current() === refitId) {
    if (!(await whenIdle(1_000))) continue;
    if (current() !== refitId) return;
    await presence.put(drainDir(prefix) + presence.id, refitId);
    return;
  }
}
