import type { Control } from "../admin/control.js";
import { AffinityMap } from "../admission/affinity.js";
import type { RouterOptions } from "../config/options.js";
import type { Logger } from "../log.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import type { PeerDrain } from "../refit/operations.js";
import type { StateStore } from "../refit/state-store.js";
import type { Registry } from "../registry/registry.js";
import type { RefitFollower } from "./refit-follow.js";
import { recordPool, restorePool, type PoolRestorer } from "./pool-record.js";
import { openStateFile, type LauncherStore } from "./state-file.js";

/** Where the router keeps what outlives it: `--state-file`, `--state-store etcd://...`, or nowhere. */
export type StateKind = "file" | "etcd" | "none";

/** The router's durable state, whichever store holds it, as router.ts wires it. */
export interface RouterState {
  readonly kind: StateKind;
  /** The refit coordinator's store. */
  readonly refit: StateStore | null;
  /**
   * The launcher's workers, for restart recovery (`--state-file` only: on
   * etcd several routers share one prefix, and whose launched workers are
   * whose needs the launcher leader of docs/multi-router.md step 4).
   */
  readonly launcher?: LauncherStore;
  readonly images: AffinityMap;
  readonly videos: AffinityMap;
  readonly meshes: AffinityMap;
  /** The owner of an id another router made (etcd only). */
  readonly resolveOwner?: (what: "image" | "video" | "mesh", id: string) => Promise<string | undefined>;
  /** Waits for the other routers' drain before a refit loads weights (etcd only). */
  readonly drainPeers?: PeerDrain;
  /** Registers the recorded workers again (through `restorer`: audited), then records (file) or shares (etcd) the worker set and follows other routers' refits. */
  start(parts: StartParts): Promise<void>;
  /** The coordinator as admin callers use it: under the cluster-wide refit lock with etcd, as is otherwise. */
  lockRefit(refit: RefitCoordinator): RefitCoordinator;
  /** True while this router holds the cluster-wide refit lock (always false without etcd). */
  holdsRefitLock(): boolean;
  /** Waits for writes in flight and closes the connection. */
  close(): Promise<void>;
}

/** What the store needs of the running router. */
export interface StartParts {
  registry: Registry;
  /** Plain control: applying another router's change is no action of an operator here. */
  control: Control;
  restorer: PoolRestorer;
  follower: RefitFollower;
  /** Ends this router's generation exchanges open now with `error` (dispatch/in-flight.ts); returns how many. */
  severInFlight(error: Error): number;
}

/** Opens the store the options name; an etcd that does not answer fails the start (state_store_unavailable). */
export async function openRouterState(options: RouterOptions, logger: Logger): Promise<RouterState> {
  // Loaded only when asked for: the etcd client (gRPC, its protos) costs every router's start-up otherwise.
  if (options.stateStore !== null) return (await import("./etcd-state.js")).openEtcdState(options.stateStore, logger);
  const file = options.stateFile === null ? null : openStateFile(options.stateFile);
  return {
    kind: file === null ? "none" : "file",
    refit: file?.refit ?? null,
    ...(file === null ? {} : { launcher: file.launcher }),
    images: new AffinityMap(),
    videos: new AffinityMap(),
    meshes: new AffinityMap(),
    async start({ registry, restorer }) {
      if (file === null) return;
      const recorded = file.pool.load();
      if (recorded !== null) await restorePool(recorded, restorer, logger);
      // Recorded from here on (not during the restore: a crash then must not leave half the pool on disk).
      recordPool(registry, file.pool, logger);
    },
    lockRefit: (refit) => refit,
    holdsRefitLock: () => false,
    close: async () => undefined,
  };
}
