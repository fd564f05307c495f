/** Longest a burst's first plan waits for the rest of the burst on an idle batching fleet (ms). */
const GATHER_MS = 10;
/** Longest a burst's first plan waits for the rest of the burst on an idle fleet with stale workers (ms): a GPU request takes seconds. */
const STALE_GATHER_MS = 25;

/** What the deferred plan knows at the turn it runs. */
export interface GatherState {
  /** Requests running anywhere (LoadBook.active). */
  readonly active: number;
  /** Requests queued. */
  readonly queued: number;
  /** Whether arrivals came since the previous turn of this gather. */
  readonly arrivedSince: boolean;
  /** Turns this gather has waited already. */
  readonly turns: number;
  /** ms since the gather began. */
  readonly waitedMs: number;
  /** A batching fleet (`--worker-batch-size` > 1) that has measured some batch's gain. */
  readonly batchingLearned: boolean;
  /** Whether some worker is stale (LoadBook.staleIdle), asked only when it matters. */
  readonly anyStale: () => boolean;
}

/**
 * Whether a burst's first plan waits one more event-loop turn for the rest
 * of the burst. Only when nothing runs, so never under load.
 *
 * A burst that finds a fleet of batching workers idle is gathered while
 * each turn brings more arrivals (at most GATHER_MS). Through HTTP a burst
 * reaches the router over several turns, and a plan of its first few
 * requests sends them one per idle worker, alone, where the whole burst
 * would have been planned as batches (virtual fleet, 4 arrivals per turn:
 * 1.41 of the bound against 1.18 at once). Only once some batch was
 * measured: a fleet's first burst (no gain known) is planned request by
 * request anyway, and gathering it moved the virtual fleet's warm-ups
 * either way.
 *
 * So is a burst that finds stale workers (idle and silent since before the
 * gap), for at most STALE_GATHER_MS, and always for one more turn (a burst
 * arriving one request per turn is otherwise never seen as one): planned as
 * its requests come, each stale worker's first request was whatever arrived
 * first, and one of them large on a worker that slowed during the gap made
 * the burst 1.5-2.4x offline LPT (issue 20, drift; docs/decisions.md).
 * Gathered, the stale probes (plan-probes.ts) give each stale worker a small
 * request first. A lone request waits one or two turns.
 */
export function keepGathering(s: GatherState): boolean {
  if (s.active !== 0) return false;
  if (s.arrivedSince && s.batchingLearned && s.waitedMs < GATHER_MS) return true;
  return s.queued > 0 && (s.arrivedSince || s.turns === 0) && s.waitedMs < STALE_GATHER_MS && s.anyStale();
}
