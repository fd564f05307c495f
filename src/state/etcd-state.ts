import type { Logger } from "../log.js";
import { connectEtcd } from "./etcd-connect.js";
import { loadEtcdPool, shareEtcdPool } from "./etcd-pool.js";
import { createEtcdRefitStore } from "./etcd-refit-store.js";
import { parseEtcdUrl } from "./etcd-url.js";
import { restorePool, type PoolRecord } from "./pool-record.js";
import { createPeerDrain } from "./peer-drain.js";
import { severOnLapse } from "./lapse-sever.js";
import { followRefits, type Following } from "./refit-follow.js";
import { lockedRefit, type RefitLockView } from "./refit-lock.js";
import { announceRouter } from "./router-presence.js";
import type { RouterState } from "./router-state.js";
import { SharedAffinityMap } from "./shared-affinity.js";
import { AffinityLeases } from "./affinity-lease.js";

/** `--state-store etcd://...`: the router's state in etcd, shared with every router on the same prefix (docs/multi-router.md). */
export async function openEtcdState(raw: string, logger: Logger): Promise<RouterState> {
  const location = parseEtcdUrl(raw);
  const client = await connectEtcd(location, raw);
  const refitKey = `${location.prefix}/refit`;
  const current = await client.get(refitKey).exec();
  const kv = current.kvs[0];
  const refit = createEtcdRefitStore(client, refitKey, { value: kv ? kv.value.toString("utf8") : null, modRevision: kv?.mod_revision ?? "0" }, logger);
  // One namespace of ids for the three kinds, as the workers make them (img_, video ids, mesh ids do not collide).
  const leases = new AffinityLeases(client, location.affinityTtlS);
  const images = new SharedAffinityMap(client, location.prefix, "image", leases, logger);
  const videos = new SharedAffinityMap(client, location.prefix, "video", leases, logger);
  const meshes = new SharedAffinityMap(client, location.prefix, "mesh", leases, logger);
  // Present from now on: a refit through another router waits for this one's drain report.
  const presence = await announceRouter(client, location.prefix, refit.self, logger);
  const startup = { value: kv ? kv.value.toString("utf8") : null, revision: current.header.revision };
  let sharing: { stop(): Promise<void>; quietly(run: () => void): void } | null = null;
  let lock: RefitLockView | null = null;
  let following: Following | null = null;
  logger.info({ endpoints: location.endpoints, prefix: location.prefix }, "state store: etcd");
  return {
    kind: "etcd",
    refit,
    images,
    videos,
    meshes,
    resolveOwner: (what, id) => ({ image: images, video: videos, mesh: meshes })[what].resolve(id),
    drainPeers: createPeerDrain(client, location.prefix, refit, presence),
    async start({ registry, control, restorer, follower, severInFlight }) {
      // A sleep's workers taken from the refit state are the other router's change, not this one's: not written back.
      const quietFollower = { ...follower, asleep: (url: string) => (sharing ? sharing.quietly(() => follower.asleep(url)) : follower.asleep(url)) };
      const follows = await followRefits({ client, prefix: location.prefix, startup, store: refit, presence, follower: quietFollower, logger });
      following = follows;
      // Requests flow from here on: from now, a lapse of this router's presence severs them (lapse-sever.ts).
      presence.listen(severOnLapse({ hold: (reason, giveUp) => follower.hold(reason, giveUp), severInFlight, catchUp: () => follows.catchUp(), logger }));
      const loaded: { record: PoolRecord; revision: string } = await loadEtcdPool(client, location.prefix);
      await restorePool(loaded.record, restorer, logger);
      sharing = await shareEtcdPool(client, location.prefix, loaded, registry, {
        get: (url) => registry.get(url),
        addWorker: (url) => control.addWorker(url),
        remove: (url) => {
          if (registry.get(url)?.managed === false) control.removeWorker(url);
        },
        setQuarantined: (url, q) => registry.setQuarantined(url, q),
        setDraining: (url, d) => registry.setDraining(url, d),
        setSleeping: (url, s) => (s ? registry.markSleeping(url) : registry.markAwake(url)),
      }, logger);
    },
    lockRefit(coordinator) {
      const wrapped = lockedRefit(coordinator, client, `${location.prefix}/refit/lock`, logger);
      lock = wrapped;
      return wrapped;
    },
    holdsRefitLock: () => lock?.held() ?? false,
    async close() {
      await sharing?.stop();
      await following?.stop();
      await refit.flush();
      await presence.stop();
      client.close();
    },
  };
}
