import { randomUUID } from "node:crypto";
import type { Etcd3 } from "etcd3";
import type { Logger } from "../log.js";
import type { PersistedState, StateStore } from "../refit/state-store.js";

/** The refit's part of `--state-store`, plus what the file does not need: waiting for writes in flight. */
export interface EtcdRefitStore extends StateStore {
  /** Resolves when every write issued so far has been answered by etcd (shutdown, tests). */
  flush(): Promise<void>;
  /** Another router wrote the state (seen through the watch): this router's next write builds on it. */
  seen(state: PersistedState, modRevision: string): void;
  /** Tag of this router's writes (`by` in the value), so its own writes seen through the watch are skipped. */
  readonly self: string;
}

/**
 * The refit state (the same JSON as the state file's top level) under
 * `PREFIX/refit`. The coordinator's interface is synchronous (it saves
 * between steps of a refit), so the value read at startup is kept and each
 * save is queued and sent in order. Each write is a Txn that succeeds only if
 * the key's mod_revision is still the one this router last wrote or read:
 * a router never overwrites a refit state it has not seen (another router's
 * write is logged, and this router's is dropped, until the refit lock of
 * docs/multi-router.md step 3 makes one router the only writer).
 */
export function createEtcdRefitStore(client: Etcd3, key: string, initial: { value: string | null; modRevision: string }, logger: Logger): EtcdRefitStore {
  const self = randomUUID();
  let modRevision = initial.modRevision;
  let saved: PersistedState | null = initial.value === null ? null : (JSON.parse(initial.value) as PersistedState);
  let queue: Promise<void> = Promise.resolve();
  const write = async (text: string): Promise<void> => {
    const res = await client.if(key, "Mod", "==", modRevision).then(client.put(key).value(text)).commit();
    if (res.succeeded) {
      modRevision = res.header.revision;
      return;
    }
    const current = await client.get(key).exec();
    modRevision = current.kvs[0]?.mod_revision ?? "0";
    logger.error({ key, revision: modRevision }, "state store: another router wrote the refit state since this one read it; this router's write was not applied");
  };
  return {
    path: key,
    load: () => saved,
    save(state) {
      saved = state;
      const text = JSON.stringify({ ...state, by: self });
      queue = queue.then(() => write(text)).catch((err: unknown) => {
        // etcd away: the state is one write behind, as with a full disk for the file.
        logger.error({ err, key }, "state store: could not write the refit state to etcd");
      });
    },
    flush: () => queue,
    seen(state, revision) {
      saved = state;
      modRevision = revision;
    },
    self,
  };
}
