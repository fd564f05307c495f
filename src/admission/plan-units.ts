import type { Worker } from "../registry/worker.js";
import { TIE_MS, type BoardItem } from "../scheduler/board-plan.js";
import type { JoinRound } from "./plan-join.js";
import type { Waiter } from "./queue.js";

/**
 * Plan-level grouping for batching workers (issue 20: "compatible requests
 * are grouped where that finishes the burst sooner"). When a round's queue
 * holds compatible requests (same batch key) whose learned gain says a batch
 * of them is cheaper than its members one by one, the plan places batches,
 * not requests: per key it starts from the split that costs the least GPU
 * time (the largest gainful batches), plans every unit largest first on the
 * worker that finishes it earliest (the workers' free times and per-worker
 * costs, as board-plan.ts), and splits a unit while that lowers the plan's
 * makespan. Each idle worker's first unit is then sent as one Batch.
 *
 * Why not the myopic join alone (plan-join.ts): it compares a join with the
 * request's earliest finish elsewhere *now*, so at a burst's start, with
 * every worker idle, requests spread one per worker and batching barely beat
 * one request at a time (1.32 vs 1.34 of the batching bound). The join stays
 * for requests that arrive while batches are queued (planJoins runs first).
 */

/** A batch the plan sends now: its members (queue order) and their predicted ms (the first alone, each other its marginal cost). */
export interface Unit {
  readonly worker: Worker;
  readonly members: Waiter[];
  readonly predictedMs: number[];
  readonly key: string | null;
}

/** One round's view (plan-dispatch.ts): the join round's, without its candidates. */
export type UnitRound = Pick<JoinRound, "board" | "loads" | "maxSize" | "nowMs" | "live" | "at" | "items" | "view">;

/**
 * A batch is formed only where it saves at least this much of its members'
 * time alone (F(b) <= (1 − this) × b): F is learned from batch times over
 * the cost model's predictions, which scatter by ~10% per worker, and four
 * 1024² requests (no gain in the sim's table) were learned at F(2) = 1.9
 * and batched. The sim's table saves 37% at 512² and 20% at 768² (b = 2).
 */
const MIN_SAVING = 0.1;
/** A split is kept only if the makespan drops by more than this (relative, plus TIE_MS): estimates carry error. */
const MIN_SPLIT_GAIN = 0.002;
/** Rounds of splitting at most (each splits one unit; a burst has a few dozen requests per key at most here). */
const MAX_SPLITS = 256;
/**
 * Unit-worker placements the split search may cost per round (each tried
 * split plans every unit again): a few ms. 48 requests of 6 keys on 8
 * workers need ~30,000; a 512-request queue of many keys would otherwise
 * cost hundreds of millions at every completion. Past it, the best plan
 * found so far is sent.
 */
const SPLIT_BUDGET = 2_000_000;

/** Requests of one key on one pool: `F[b]` is a batch of b's time over one member's (index 0 unused). */
interface Key {
  readonly key: string | null;
  readonly item: BoardItem;
  readonly js: number[];
  readonly F: Float64Array;
  /** No batch of 2 of its class was ever observed, and none runs: one is planned (see leastWork). */
  readonly explore: boolean;
}

/** A planned batch: its key and size; fixed: the exploring batch, never split. */
interface Piece {
  readonly k: Key;
  size: number;
  readonly fixed?: boolean;
}

/**
 * The units to send now, or null when no key gains from batching and none
 * is explored (then the round is planned request by request, as without
 * batching), or when a
 * prompt group's item or a video is among them. Only for a round whose
 * items are the whole queue (the caller checks).
 */
export function planUnits(r: UnitRound): Unit[] | null {
  const keys = keysOf(r);
  // A key being explored is planned as units too: a class whose gain was learned wrong (no gain,
  // F(2) = 2.73 for 512² against a wrong prediction) made every key gainless, the round went request
  // by request, and the exploring batch that would re-measure it was never formed (issue 20, batch6).
  if (keys === null || !keys.some((k) => k.js.length > 1 && (gains(k, 2) || k.explore))) return null;
  let pieces = keys.flatMap(leastWork);
  let best = makespan(r, pieces, null);
  const budget = { left: SPLIT_BUDGET };
  for (let s = 0; s < MAX_SPLITS && budget.left > 0; s++) {
    const next = bestSplit(r, pieces, best, budget);
    if (next === null) break;
    pieces = next.pieces;
    best = next.plan;
  }
  const first = new Map<number, Piece>();
  makespan(r, pieces, first);
  const out: Unit[] = [];
  const used = new Map<Key, number>();
  // Members of a key go in queue order: the units planned first (largest) take the earliest.
  // Only idle workers get a unit: one queued behind a running batch can no longer be moved or
  // re-split when the plan changes at the next completion (median 1.20 and 1.24 of the bound
  // sending to busy workers too, as the cap of two batches allows; 1.14 and 1.12 idle only).
  for (const [w, p] of first) {
    if (r.view.free[w]! <= 0 || r.board.runsOn(w) > 0) continue;
    const from = used.get(p.k) ?? 0;
    used.set(p.k, from + p.size);
    const worker = r.board.worker(w);
    const members = p.k.js.slice(from, from + p.size).map((j) => r.live[r.at[j]!]!);
    const predictedMs = members.map((m, i) => (i === 0 ? r.loads.predictMs(m.ticket.facts.work, worker) : r.loads.marginalMs(worker, m.ticket, i)));
    out.push({ worker, members, predictedMs, key: p.k.key });
  }
  return out;
}

/**
 * Whether the round would be planned as units (some key of more than one
 * request gains from a batch): plan-dispatch.ts then probes no stale worker,
 * since a probe takes a small request alone, and the small requests are the
 * ones that batch best (a burst's 8 smallest, one per worker, were whole
 * signatures of 512² run singly: about 7% of the bench's `signatures` bound).
 */
export function unitsGain(r: UnitRound): boolean {
  const keys = keysOf(r);
  return keys !== null && keys.some((k) => k.js.length > 1 && gains(k, 2));
}

/** The round's plannable items grouped by (pool, batch key); unbatchable items are keys of one. Null: a prompt group's item is among them (groups are planned as units of their own). */
function keysOf(r: UnitRound): Key[] | null {
  const byPool = new Map<Int32Array, Map<string, Key>>();
  const keys: Key[] = [];
  for (let j = 0; j < r.items.length; j++) {
    const item = r.items[j]!;
    if (item.pool.length === 0) continue;
    const ticket = r.live[r.at[j]!]!.ticket;
    if (ticket.group !== undefined || ticket.demand.kind === "video") return null;
    const key = ticket.facts.batchKey;
    if (key === null) {
      keys.push({ key, item, js: [j], F: Float64Array.of(0, 1), explore: false });
      continue;
    }
    let m = byPool.get(item.pool);
    if (m === undefined) byPool.set(item.pool, (m = new Map()));
    let k = m.get(key);
    if (k === undefined) {
      // A batch key names one model and one work (request-facts.ts): F is the gain of the pool's first worker's model.
      const w = r.board.worker(item.pool[0]!);
      const F = new Float64Array(r.maxSize + 1);
      for (let b = 1; b <= r.maxSize; b++) F[b] = r.loads.batchFactor(w, ticket.facts.work, b);
      k = { key, item, js: [], F, explore: r.maxSize >= 2 && r.loads.batchUntried(w, ticket.facts.work) };
      m.set(key, k);
      keys.push(k);
    }
    k.js.push(j);
  }
  return keys;
}

/** Whether a batch of `b` of the key saves enough to be formed (see MIN_SAVING). */
function gains(k: Key, b: number): boolean {
  return b < k.F.length && k.F[b]! <= (1 - MIN_SAVING) * b;
}

/**
 * A key's requests split into batches of the least total time (the largest
 * gainful ones). A key whose class never had a batch of 2 observed (F
 * unknown, so no gain, so never batched here, so never learned) gets one
 * batch of 2, charged as no gain (F(2) = 2: the plan places it as two
 * requests' time on one worker) and never split, so that its gain is
 * measured: which classes a fleet's first bursts happened to batch (the
 * myopic join, plan-join.ts) depends on how their answers fall into
 * event-loop turns, and a class left out then stayed one request at a time
 * for good (768² on scheduler-batching's 8-equal fleet, seed 3: its only
 * warm-up batch ran on a worker not yet measured alone, so it taught nothing).
 */
function leastWork(k: Key): Piece[] {
  if (k.explore && k.js.length >= 2 && !gains(k, 2)) return [{ k, size: 2, fixed: true }, ...k.js.slice(2).map(() => ({ k, size: 1 }))];
  const n = k.js.length;
  const max = k.F.length - 1;
  const best = [0];
  const size = [0];
  for (let m = 1; m <= n; m++) {
    let t = Infinity;
    let s = 1;
    // A larger batch only where it saves time: with no gain (F(b) = b) the requests stay apart.
    for (let b = 1; b <= Math.min(max, m); b++) {
      if (b > 1 && !gains(k, b)) continue;
      const c = best[m - b]! + k.F[b]!;
      if (c < t) {
        t = c;
        s = b;
      }
    }
    best.push(t);
    size.push(s);
  }
  const out: Piece[] = [];
  for (let m = n; m > 0; m -= size[m]!) out.push({ k, size: size[m]! });
  return out;
}

/**
 * The split (one unit into two) that lowers the plan's makespan most, or
 * null. A split that keeps the makespan but ends fewer workers at it counts
 * too: several equal units end together at the makespan, and splitting one
 * of them alone cannot lower it (the search stopped there, with four
 * 1024² requests in one batch).
 */
function bestSplit(r: UnitRound, pieces: Piece[], now: Makespan, budget: { left: number }): { pieces: Piece[]; plan: Makespan } | null {
  let best: { pieces: Piece[]; plan: Makespan } | null = null;
  const limit = now.end - TIE_MS - MIN_SPLIT_GAIN * (now.end - r.nowMs);
  const better = (m: Makespan, than: Makespan) => m.end < than.end - 1e-6 || (m.end <= than.end + 1e-6 && m.top < than.top);
  // Units of one key and size are interchangeable: each split is tried once.
  const tried = new Map<Key, Set<number>>();
  pieces.forEach((p, i) => {
    if (p.size < 2 || p.fixed === true) return;
    let seen = tried.get(p.k);
    if (seen === undefined) tried.set(p.k, (seen = new Set()));
    // Every way to cut it in two (a batch has at most --worker-batch-size members).
    for (let a = 1; a <= p.size / 2; a++) {
      if (seen.has(p.size * 1000 + a) || budget.left <= 0) continue;
      seen.add(p.size * 1000 + a);
      const next = [...pieces.slice(0, i), { k: p.k, size: p.size - a }, { k: p.k, size: a }, ...pieces.slice(i + 1)];
      const m = makespan(r, next, null);
      budget.left -= next.length * p.k.item.pool.length;
      if ((m.end < limit || (m.end <= now.end + 1e-6 && m.top < now.top)) && (best === null || better(m, best.plan))) best = { pieces: next, plan: m };
    }
  });
  return best;
}

/** A plan's last finish, and how many workers end within TIE_MS of it. */
interface Makespan {
  readonly end: number;
  readonly top: number;
}

/**
 * Largest first (a unit's time on its pool's fastest worker), each unit on
 * the worker of its pool that finishes it earliest. Fills `first` with each
 * worker's first unit.
 */
function makespan(r: UnitRound, pieces: Piece[], first: Map<number, Piece> | null): Makespan {
  const { view, nowMs } = r;
  const busy = view.busy.slice();
  const order = pieces.map((p) => ({ p, t: leastTime(r, p) })).sort((x, y) => y.t - x.t);
  let end = nowMs;
  for (const { p } of order) {
    const { pool, cost } = p.k.item;
    let bestW = -1;
    let bestEnd = Infinity;
    for (let i = 0; i < pool.length; i++) {
      const w = pool[i]!;
      const e = Math.max(busy[w]!, nowMs) + cost[w]! * p.k.F[p.size]! * (view.slow?.[w] ?? 1);
      if (e < bestEnd) {
        bestEnd = e;
        bestW = w;
      }
    }
    if (first !== null && !first.has(bestW)) first.set(bestW, p);
    busy[bestW] = bestEnd;
    if (bestEnd > end) end = bestEnd;
  }
  // Workers of any unit's pool (one pool, or a few: one loop each) that end at the makespan.
  let top = 0;
  const counted = new Set<Int32Array>();
  const seen = new Uint8Array(busy.length);
  for (const { p } of order) {
    if (counted.has(p.k.item.pool)) continue;
    counted.add(p.k.item.pool);
    for (const w of p.k.item.pool) {
      if (seen[w] === 0 && busy[w]! >= end - TIE_MS) top++;
      seen[w] = 1;
    }
  }
  return { end, top };
}

function leastTime(r: UnitRound, p: Piece): number {
  let t = Infinity;
  for (const w of p.k.item.pool) t = Math.min(t, p.k.item.cost[w]! * (r.view.slow?.[w] ?? 1));
  return t * p.k.F[p.size]!;
}
