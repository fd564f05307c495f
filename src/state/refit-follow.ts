import type { Etcd3, Watcher } from "etcd3";
import type { GiveUp } from "../admission/gate.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PersistedState } from "../refit/state-store.js";
import type { EtcdRefitStore } from "./etcd-refit-store.js";
import { refitIdOf, reportDrained } from "./peer-drain.js";
import { settleDeadRefit } from "./refit-recover.js";
import type { RouterPresence } from "./router-presence.js";

/** What following another router's refits needs from this one. */
export interface RefitFollower {
  /** Holds new generation requests here (admission.hold); the returned function releases them. */
  hold(reason: string, giveUp?: GiveUp): () => void;
  /** Takes the committed state (refit coordinator's adopt). */
  adopt(state: PersistedState): void;
  /** Takes the pool's LoRA as the state carries it (absent: never set; the LoRA pool's adopt). */
  adoptLora(shared: PersistedState["lora"]): void;
  /** The worker's process as this router identified it (model-card fingerprint), or null when not yet. */
  fingerprintOf(url: string): string | null | undefined;
  /** Records that a worker holds a version (registry.weightsLoaded). */
  loaded(url: string, version: string): void;
  /** Resolves true once no generation request of this router is in flight (admission.whenIdle). */
  whenIdle(timeoutMs: number): Promise<boolean>;
  /** URLs of the workers registered here. */
  workers(): string[];
  /** The worker's weights are unknown (it may hold uncommitted tensors): out of rotation until updated. */
  distrust(url: string, why: string): void;
  /** The worker was put to sleep through another router: out of rotation here until a wake (registry.markSleeping, not written back to the store). */
  asleep(url: string): void;
}

/** What {@link followRefits} works with. */
export interface FollowParts {
  client: Etcd3;
  prefix: string;
  /** The refit state as read at startup (null: none yet) and the revision of that read. */
  startup: { value: string | null; revision: string };
  store: EtcdRefitStore;
  presence: RouterPresence;
  follower: RefitFollower;
  logger: Logger;
}

/** A router without etcd holds a request this long, then answers 503 state_store_unavailable (RL clients retry; a blip of etcd is absorbed). */
export const STORE_LOST_GIVE_UP_MS = 5_000;
/** How often a held refit's router is checked for being alive. */
const OWNER_CHECK_MS = 1_000;
/** Checks in a row that find a live refit router without the refit lock before its refit is taken as ended without its last write. */
const UNLOCKED_CHECKS = 3;

type Stored = PersistedState & { by?: string };

/**
 * Workers the committing router saw load the version are in rotation here
 * at once: that router broadcast the weights and read each answer a few ms
 * ago. Only a worker whose process both routers identified differently
 * (restarted in between) is left to the coordinator (re-sync or stale).
 */
function trustCommitted(state: PersistedState, follower: RefitFollower): void {
  for (const [url, seen] of Object.entries(state.workers ?? {})) {
    const here = follower.fingerprintOf(url);
    if (here === undefined || seen.version !== state.version) continue;
    if (here !== null && seen.fingerprint !== null && here !== seen.fingerprint) continue;
    follower.loaded(url, state.version);
  }
}

/**
 * After a tensor refit (committed, aborted, or settled after its router
 * died), a worker the state does not list at the pool's version may hold
 * tensors nobody committed: out of rotation here too (the refit router
 * marked it so there; this router still had it on the old version).
 */
function distrustUnlisted(state: PersistedState, follower: RefitFollower): void {
  for (const url of follower.workers()) {
    if (state.workers?.[url]?.version !== state.version) follower.distrust(url, "may hold tensors of a refit through another router that were not committed");
  }
}

/**
 * After a sleep through another router, the workers it put to sleep leave
 * rotation here before the held requests are released: the worker set's
 * own record of it (PREFIX/workers/) comes through another watch, which
 * may deliver it a few ms later, and a request sent meanwhile would fail
 * with "Server is sleeping".
 */
function sleepListed(state: PersistedState, follower: RefitFollower): void {
  const here = new Set(follower.workers());
  for (const [url, seen] of Object.entries(state.workers ?? {})) if (seen.sleeping === true && here.has(url)) follower.asleep(url);
}

/** What a held operation is called in logs and hold reasons. */
const whatOf = (kind: string): string => (kind === "sleep" ? "memory release (sleep)" : kind === "lora" ? "LoRA change" : "refit");

/** Following other routers' refits, as etcd-state.ts holds it. */
export interface Following {
  /**
   * Reads `PREFIX/refit` and applies it at once when it is newer than what
   * the watch delivered: a router coming back to etcd must know of a refit
   * committed (or begun) meanwhile before it lets a request go, and a
   * resumed watch delivers the missed events only after it reports itself
   * connected.
   */
  catchUp(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Follows refits (and sleeps, LoRA changes) run through other routers on the same store, from a watch
 * on `PREFIX/refit` (resumed from the revision read at startup): while the
 * state says a refit is in progress, this router holds new generation
 * requests (so none is sent to a worker loading weights) and reports under
 * `PREFIX/refit/drain/<router>` once its own requests in flight are done
 * (the refit router waits for that before it loads: peer-drain.ts). When
 * the refit ends it takes the new version and releases them. If the refit's
 * router dies (its presence lease expires), this router settles the refit
 * (refit-recover.ts) rather than hold forever. A router that loses etcd
 * holds generation (fails closed) and answers 503 state_store_unavailable.
 */
export async function followRefits(parts: FollowParts): Promise<Following> {
  const { client, prefix, store, presence, follower, logger } = parts;
  const key = `${prefix}/refit`;
  let held: Held | null = null;
  const owner = everySecond(() => checkOwner(), (err) => logger.warn({ err }, "state store: could not check whether the router running a refit is alive"));

  const ended = (state: PersistedState, why: string): void => {
    const wasTensor = held?.kind === "tensor";
    if (held?.kind === "sleep") sleepListed(state, follower);
    trustCommitted(state, follower);
    if (wasTensor) distrustUnlisted(state, follower);
    follower.adopt(state);
    // Before the held requests go: they must carry the adapter the other router just set.
    follower.adoptLora(state.lora);
    logger.info({ version: state.version }, why);
    held?.unhold();
    held = null;
    owner.stop();
  };
  const checkOwner = ownerCheck(parts, () => held, (h, settled) => {
    if (held === h) ended(settled, "state store: an unfinished refit of another router is settled; generation requests flow");
  });
  const onState = (state: Stored): void => {
    if (state.by === store.self) return;
    if (state.inProgress === null) {
      const why = { sleep: "state store: a memory release (sleep) through another router ended; its workers are asleep here too", lora: "state store: a LoRA change through another router ended; this router takes the pool's LoRA" }[held?.kind ?? ""];
      ended(state, why ?? "state store: weights committed through another router");
      return;
    }
    const id = refitIdOf(state.by ?? "unknown", state.inProgress);
    if (held?.id === id) return;
    const previous = held;
    const what = whatOf(state.inProgress.kind);
    held = { id, kind: state.inProgress.kind, unhold: follower.hold(`a ${what} through another router`) };
    previous?.unhold();
    logger.info({ refit: id, kind: state.inProgress.kind }, `state store: a ${what} started through another router; holding new generation requests and draining this router's own`);
    reportDrained(presence, prefix, id, (ms) => follower.whenIdle(ms), () => held?.id ?? null).catch((err: unknown) =>
      logger.error({ err, refit: id }, "state store: could not report this router drained; the refit router will time out and change nothing"),
    );
    owner.start();
  };

  // The mod_revision of the last state applied: the watch and a catch-up read may bring the same one.
  let applied = BigInt(parts.startup.revision);
  const apply = (kv: { value: Buffer; mod_revision: string }): void => {
    const revision = BigInt(kv.mod_revision);
    if (revision <= applied) return;
    applied = revision;
    let state: Stored;
    try {
      state = JSON.parse(kv.value.toString("utf8")) as Stored;
    } catch {
      return;
    }
    if (state.by !== store.self) store.seen(state, kv.mod_revision);
    onState(state);
  };
  const watcher = await client.watch().key(key).startRevision(String(applied + 1n)).create();
  watcher.on("put", apply);
  watcher.on("error", (err) => logger.error({ err }, "state store: refit watch failed; the client reconnects and resumes from the last revision"));
  // A refit already in progress at startup: hold and report drained (nothing is in flight yet) like any other router.
  if (parts.startup.value !== null) {
    const state = JSON.parse(parts.startup.value) as Stored;
    if (state.inProgress !== null && state.by !== store.self) onState(state);
  }
  const catchUp = async (): Promise<void> => {
    const kv = (await client.get(key).exec()).kvs[0];
    if (kv !== undefined) apply(kv);
  };
  const stopLost = failClosed(watcher, follower, catchUp, logger);
  return {
    catchUp,
    async stop() {
      await watcher.cancel();
      owner.stop();
      held?.unhold();
      stopLost();
    },
  };
}

interface Held {
  id: string;
  kind: string;
  unhold: () => void;
}

/**
 * The check, every second while a refit through another router is held,
 * whether its router is gone (its presence lease expired), or alive but no
 * longer holding the refit lock for {@link UNLOCKED_CHECKS} checks in a row
 * (its last write of the refit state was lost, etcd away): then the refit is
 * settled here (refit-recover.ts), unless another router does it. This
 * router settles only once nothing of its own is in flight (its re-sync's
 * load must not overlap its own answers).
 */
function ownerCheck(parts: FollowParts, current: () => Held | null, settled: (h: Held, state: PersistedState) => void): () => Promise<void> {
  const { client, prefix, store, presence, follower, logger } = parts;
  const key = `${prefix}/refit`;
  let unlocked = 0;
  let last: Held | null = null;
  return async () => {
    const h = current();
    if (h === null) return;
    if (h !== last) unlocked = 0;
    last = h;
    const [live, lock] = await Promise.all([presence.live(), client.get(`${key}/lock`).exec()]);
    if (live.includes(h.id.slice(0, h.id.lastIndexOf(":")))) {
      // Its final write may trail the lock's release by a few ms: only a lasting gap counts.
      unlocked = lock.kvs.length > 0 ? 0 : unlocked + 1;
      if (unlocked < UNLOCKED_CHECKS) return;
    }
    if (!(await follower.whenIdle(0))) return;
    const state = await settleDeadRefit(client, key, h.id, store, logger);
    if (state !== null) settled(h, state);
  };
}

/** Runs `check` every {@link OWNER_CHECK_MS} while started, one at a time. */
function everySecond(check: () => Promise<void>, failed: (err: unknown) => void): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let busy = false;
  return {
    start() {
      if (timer) return;
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        check()
          .catch(failed)
          .finally(() => (busy = false));
      }, OWNER_CHECK_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

/**
 * Fail closed: without etcd this router cannot see another router's refit,
 * so it holds generation until the watch is back and the refit state read
 * again (catchUp: a commit missed meanwhile is taken before a request
 * goes), and each held request ends after {@link STORE_LOST_GIVE_UP_MS} as
 * 503 state_store_unavailable with Retry-After (a clear answer a retrying
 * client acts on, not a queue_timeout minutes later).
 */
function failClosed(watcher: Watcher, follower: RefitFollower, catchUp: () => Promise<void>, logger: Logger): () => void {
  let lost: (() => void) | null = null;
  let connected = true;
  let since = 0;
  const error = (): Error =>
    new RouterError("state_store_unavailable", `this router cannot reach its state store (etcd) since ${Math.round((Date.now() - since) / 1000)} s and holds generation requests, since it could not see another router's refit; held ${STORE_LOST_GIVE_UP_MS / 1000} s, retry later or through another router`, { details: { retryAfterS: 2 } });
  watcher.on("disconnected", (err) => {
    connected = false;
    if (lost !== null) return;
    since = Date.now();
    lost = follower.hold("the state store (etcd) being unreachable", { afterMs: STORE_LOST_GIVE_UP_MS, error });
    logger.error({ err }, "state store: etcd unreachable; holding generation requests until it is back");
  });
  const release = (): void => {
    if (lost === null || !connected) return;
    const held = lost;
    catchUp().then(
      () => {
        if (lost !== held || !connected) return;
        held();
        lost = null;
        logger.info("state store: etcd reachable again; generation requests flow");
      },
      (err: unknown) => {
        logger.warn({ err }, "state store: could not read the refit state again after reconnecting; still holding, retrying in 1 s");
        setTimeout(release, 1_000).unref();
      },
    );
  };
  watcher.on("connected", () => {
    connected = true;
    release();
  });
  return () => lost?.();
}
