import { create, toBinary } from "@bufbuild/protobuf";
import {
  WatchWorkersResponseSchema,
  WorkerEventType,
  WorkerSchema,
  type WatchWorkersResponse,
  type Worker as PbWorker,
} from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Registry, RegistryEvent } from "../registry/registry.js";
import { workerToPb } from "./convert.js";

/**
 * The WatchWorkers stream: subscribes first (so nothing between the snapshot
 * and the first change is lost), sends every current worker, a SYNCED
 * marker, then each change. Load-only changes of a worker already waiting in
 * the queue replace that entry instead of piling up, so a slow watcher under
 * heavy traffic holds at most one pending load event per worker.
 */
/** Events one watcher may have waiting before its stream is ended. */
const maxQueued = 10_000;

/**
 * What a subscriber sees of a worker, as bytes to compare: an event whose
 * worker looks the same as the last one sent is not sent (a probe that found
 * a healthy worker healthy changes nothing). Without load events, the load
 * count is not part of it.
 */
function seen(worker: PbWorker, excludeLoad: boolean): string {
  const w = excludeLoad ? { ...worker, activeRequests: 0 } : worker;
  return Buffer.from(toBinary(WorkerSchema, w)).toString("latin1");
}

export async function* watchWorkers(registry: Registry, options: { excludeLoad: boolean; signal: AbortSignal }): AsyncGenerator<WatchWorkersResponse> {
  const queue: WatchWorkersResponse[] = [];
  const pendingLoad = new Map<string, number>();
  /** The last state sent of each worker this subscriber knows of; a worker not in it was never announced. */
  const lastSent = new Map<string, string>();
  let wake: (() => void) | null = null;
  let overflowed = false;

  const onChange = (e: RegistryEvent) => {
    const isLoad = e.type === "updated" && e.reason === "load";
    if (isLoad && options.excludeLoad) return;
    const worker = workerToPb(e.worker);
    let type: WorkerEventType;
    if (e.type === "removed") {
      if (!lastSent.delete(e.worker.url)) return; // never announced: nothing to take back
      type = WorkerEventType.REMOVED;
    } else {
      const now = seen(worker, options.excludeLoad);
      const before = lastSent.get(e.worker.url);
      if (before === now) return; // nothing this subscriber asked for changed
      lastSent.set(e.worker.url, now);
      // A worker's first event is always ADDED, whatever change brought it.
      type = before === undefined ? WorkerEventType.ADDED : WorkerEventType.UPDATED;
    }
    const msg = create(WatchWorkersResponseSchema, {
      type,
      worker,
      reason: e.type === "updated" ? e.reason : e.type,
      atUnixMs: BigInt(Date.now()),
    });
    if (queue.length >= maxQueued) {
      // A watcher that stopped reading: end its stream rather than grow
      // without bound; it re-subscribes and gets a fresh snapshot.
      overflowed = true;
      wake?.();
      return;
    }
    const at = isLoad ? pendingLoad.get(e.worker.url) : undefined;
    if (at !== undefined && queue[at]?.worker?.url === e.worker.url) {
      queue[at] = msg;
    } else {
      queue.push(msg);
      if (isLoad) pendingLoad.set(e.worker.url, queue.length - 1);
    }
    wake?.();
  };
  registry.on("change", onChange);
  const onAbort = () => wake?.();
  options.signal.addEventListener("abort", onAbort);
  try {
    for (const w of registry.all()) {
      const worker = workerToPb(w);
      // Changes queued while the snapshot is sent compare against it.
      if (!lastSent.has(w.url)) lastSent.set(w.url, seen(worker, options.excludeLoad));
      yield create(WatchWorkersResponseSchema, { type: WorkerEventType.EXISTING, worker, reason: "existing", atUnixMs: BigInt(Date.now()) });
    }
    yield create(WatchWorkersResponseSchema, { type: WorkerEventType.SYNCED, reason: "synced", atUnixMs: BigInt(Date.now()) });
    while (!options.signal.aborted) {
      if (overflowed) throw new ConnectError(`WatchWorkers: more than ${maxQueued} events waited for this client; watch again`, Code.ResourceExhausted);
      if (queue.length === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
        continue;
      }
      const batch = queue.splice(0);
      pendingLoad.clear();
      for (const msg of batch) yield msg;
    }
  } finally {
    registry.off("change", onChange);
    options.signal.removeEventListener("abort", onAbort);
  }
}
