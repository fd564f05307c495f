import type { Worker } from "../registry/worker.js";
import { planBoard, type Board, type BoardItem } from "../scheduler/board-plan.js";
import { holdsNoPlanSlot } from "../scheduler/request-facts.js";
import { keepGathering } from "./burst-gather.js";
import type { DispatchContext, DispatchStrategy } from "./dispatch.js";
import type { PromptGroup } from "./groups.js";
import { parallelSlotsOf } from "./loads.js";
import { PlanBoard, type Pool } from "./plan-board.js";
import { lightTraffic, probesStale, probeWorkers } from "./plan-probes.js";
import { ClassQueues } from "./plan-classes.js";
import { DirectRound } from "./plan-direct.js";
import { fillBatch, planJoins, type Join, type JoinRound } from "./plan-join.js";
import { planUnits, unitsGain, type UnitRound } from "./plan-units.js";
import { chooseWindow } from "./plan-window.js";
import type { Waiter } from "./queue.js";
import { QueueKeys } from "./queue-keys.js";
import type { Batch, Ticket } from "./ticket.js";

/** The pool of a request not planned in a round (a group's other items, a probe). */
const NO_WORKERS: readonly Worker[] = [];
/** Re-plans in one dispatch after groups were placed (each places at least one group, so few are needed). */
const MAX_GROUP_ROUNDS = 8;

/** One round's view of the queue and the workers, as scheduler/board-plan.ts takes it. */
interface Round {
  readonly nowMs: number;
  readonly live: Waiter[];
  readonly board: Board;
  /** Live indices of the plan's items, in queue order. */
  readonly at: number[];
  readonly items: BoardItem[];
  /** Whether the items are the whole queue (then it may be packed). */
  readonly whole: boolean;
  /** Prompt groups not placed when the round began (among the items). */
  readonly units: Map<PromptGroup, Waiter[]>;
  /** Live indices below this were looked at (compacted after the round). */
  readonly scanned: number;
  /** Whether traffic is light (plan-probes.ts lightTraffic). */
  readonly light: boolean;
}

/**
 * `earliest-finish` mode, the plan driver: requests wait in the router, not
 * in the workers' queues (which the router cannot take back), and every
 * arrival and completion re-plans the queue largest-first onto the worker
 * that finishes each request earliest (src/scheduler/plan.ts), with speeds
 * learned from observed service times (src/scheduler/cost-model.ts).
 */
export class PlanDispatch implements DispatchStrategy {
  readonly ordered = true;
  /** Where the plan starts looking among equally good workers; moves every round. */
  #rotation = 0;
  #scheduled = false;
  /** Arrivals so far, and the clock when the pending plan was first scheduled (the burst gather, see #plan). */
  #arrivals = 0;
  #gatherFromMs = 0;
  /** Arrivals counted by the last round: the difference is what arrived since (lightTraffic). */
  #arrivalsSeen = 0;
  readonly #board: PlanBoard;
  /** Forwarded routes and video creates that may be waiting (counted at arrival, recounted by a full scan): they are not planned like the rest. */
  #forwarded = 0;
  #videos = 0;
  /** The queue by demand class, and the round that plans per free worker from it (a few free slots, a long queue). */
  readonly #classes: ClassQueues;
  readonly #direct: DirectRound;
  /** The queue's keys, moved when the fleet's learned shape is replaced (a warm-up's wrong shape must not fix the order). */
  readonly #keys: QueueKeys;

  constructor(private readonly ctx: DispatchContext) {
    this.#keys = new QueueKeys(ctx.loads.costs, ctx.clock, ctx.ageing);
    this.#board = new PlanBoard(ctx.registry, ctx.loads, (w) => this.freeSlots(w));
    this.#classes = new ClassQueues((t) => this.#classOf(t));
    this.#direct = new DirectRound(this.#board, this.#classes, ctx.candidates);
  }

  /** Only forwarded routes the router does not know (LoRA...) and mesh creates: they hold no GPU slot of the plan. */
  answersAtOnce(ticket: Ticket): boolean {
    return holdsNoPlanSlot(ticket.demand.kind);
  }

  pick(ticket: Ticket): Worker | null {
    const all = this.ctx.candidates.of(ticket);
    return all.length === 0 ? null : this.ctx.policy.pick(all);
  }

  /** Largest first with ageing; the request's cost on the fleet's average worker, filed under a model a worker serves (never the client's string: it may name nothing). */
  priority(ticket: Ticket): number {
    if (holdsNoPlanSlot(ticket.demand.kind)) this.#forwarded++;
    if (ticket.demand.kind === "video") this.#videos++;
    const model = this.ctx.candidates.registered(ticket)[0]?.capabilities.models[0] ?? "";
    const key = this.#keys.key(ticket, model);
    this.#classes.arrived(ticket, key);
    return key;
  }

  /**
   * A request's demand class for the direct plan (plan-classes.ts), or null
   * for one planned request by request: prompt groups (planned as units),
   * videos and forwarded routes, retries (their pool leaves a worker out),
   * routing keys and weight versions (their pool may be one worker).
   */
  #classOf(t: Ticket): string | null {
    const { demand, facts } = t;
    if (t.group !== undefined || demand.kind === "video" || holdsNoPlanSlot(demand.kind) || t.exclude !== null || t.weightVersion !== null || facts.routingKey !== null) return null;
    return this.#board.classKey(demand.kind, demand.model, facts.work);
  }

  /**
   * Every arrival waits for one plan after the current I/O turn, so the
   * requests of a burst that arrived together are sorted largest-first
   * before the first is sent (a lone request waits one event-loop turn).
   */
  arrived(): void {
    this.#arrivals++;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#gatherFromMs = this.ctx.clock();
    this.#plan(this.#arrivals);
  }

  /** The deferred plan: after this turn, or later while a burst is gathered (burst-gather.ts). */
  #plan(seen: number, turns = 0): void {
    setImmediate(() => {
      const { batchSize, loads, queue, clock } = this.ctx;
      const now = clock();
      const gather = keepGathering({
        active: loads.active,
        queued: queue.queued,
        arrivedSince: this.#arrivals !== seen,
        turns,
        waitedMs: now - this.#gatherFromMs,
        batchingLearned: batchSize > 1 && loads.gains.learned,
        anyStale: () => loads.staleIdle(now).size > 0,
      });
      if (gather) {
        this.#plan(this.#arrivals, turns + 1);
        return;
      }
      this.#scheduled = false;
      this.ctx.pump();
    });
  }

  /**
   * Answers are planned like arrivals: once after the current I/O turn, so
   * the answers of one turn (a busy router on a large fleet sees hundreds
   * at once) make one round with all their free workers, not one round
   * each (a round costs O(workers) on large pools: the board, the sort of
   * free times).
   */
  freed(): void {
    this.#schedule();
  }

  /**
   * One round: the workers' state brought up to date (only what changed,
   * plan-board.ts), the requests that can matter to the free workers
   * (plan-window.ts), new workers probed with small requests, the plan
   * (scheduler/board-plan.ts), then the sends.
   */
  dispatch(depth = 0): void {
    const live = this.ctx.queue.live();
    const arrived = this.#arrivals - this.#arrivalsSeen;
    this.#arrivalsSeen = this.#arrivals;
    if (this.#forwarded > 0) this.#sendForwarded(live);
    this.#classes.sync(live, this.ctx.queue.queued);
    // After the sync: it finds the requests that arrived since the last round by the keys they were queued with.
    if (this.#keys.stale) this.#keys.refresh(live);
    const nowMs = this.ctx.clock();
    const board = this.#board.round(nowMs);
    if (this.#rotation++ > 1e9) this.#rotation = 0;
    // Batching workers are planned request by request (plan-units.ts, plan-join.ts): the per-class
    // round's fluid levels know no batch, and grouped every compatible request up to the batch size.
    const direct = this.#videos > 0 || this.ctx.batchSize > 1 || probesStale(this.ctx, nowMs, (w) => this.freeSlots(w)) ? null : this.#direct.plan(board, nowMs, this.ctx.queue.queued, this.#rotation);
    if (direct !== null) {
      if (direct.length > 0) this.#send(direct, nowMs, live);
      return;
    }
    const round = this.#round(live, nowMs, board, lightTraffic(this.#board.size, this.ctx.loads.active, this.ctx.queue.queued, arrived));
    // A round planned as batch units probes no stale worker (plan-units.ts unitsGain).
    const plan = probeWorkers(this.ctx, this.#board, round, !(this.ctx.batchSize > 1 && round.whole && round.units.size === 0 && unitsGain(this.#unitRound(round))));
    const joins = this.ctx.batchSize > 1 ? this.#joinRound(round) : null;
    const taken = new Set<Waiter>();
    if (joins !== null) for (const j of planJoins(joins, taken)) this.#handJoin(j);
    if (joins !== null && round.whole && round.units.size === 0 && this.#batchUnits(round, plan, taken)) return;
    const planned = planBoard(round.items, round.board, round.nowMs, this.#rotation, round.whole);
    for (const [j, k] of planned) plan.push([live[round.at[j]!]!, this.#board.worker(k)]);
    const sent = plan.length === 0 ? (taken.size > 0 ? taken : null) : this.#send(plan, nowMs, live, joins, taken);
    compactPrefix(live, round.scanned);
    // A group placed in this round: the rest of it may fill its worker's free slots now, not at the next event.
    if (sent !== null && depth < MAX_GROUP_ROUNDS && [...round.units.keys()].some((g) => g.worker !== null)) this.dispatch(depth + 1);
  }

  /**
   * earliest-finish queues every arrival for one event-loop turn before the
   * plan sends it: requests that free workers will take in that plan are not
   * waiting, and must not count against --queue-size (how many a burst lost
   * to queue_full depended on how its arrivals fell into turns).
   */
  aboutToLeave(): number {
    if (this.ctx.gate.held) return 0;
    let free = 0;
    for (const w of this.ctx.registry.routable()) free += this.freeSlots(w);
    return free;
  }

  /** An affinity request (ticket null) uses no GPU slot of the plan. */
  freesSlot(ticket: Ticket | null): boolean {
    return ticket !== null;
  }

  /**
   * Requests the planner may still send a worker now: its slots minus the
   * generations (and video jobs) it runs. Affinity requests (an image's or
   * a video's content) do not count: they use no GPU. A worker with dp_size
   * data-parallel replicas has that many times the default cap (an explicit
   * --max-concurrency-per-worker is the operator's number for the worker).
   */
  freeSlots(w: Worker): number {
    const { cap, capPerSlot, batchSize, loads } = this.ctx;
    if (cap === 0) return Number.MAX_SAFE_INTEGER;
    // A batching worker with a batch queued takes only requests that join it (plan-join.ts):
    // anything else would wait in its queue behind a batch of another signature.
    if (batchSize > 1 && loads.queuedBatch(w) !== null) return 0;
    return Math.max(0, (capPerSlot ? cap * parallelSlotsOf(w) : cap) - loads.runsOn(w));
  }

  /** A round's view for batching workers (plan-join.ts): the free times before the plan places anything. */
  #joinRound({ live, at, items, board, nowMs }: Round): JoinRound {
    const { loads, candidates, batchSize } = this.ctx;
    return { board: this.#board, loads, candidates, maxSize: batchSize, nowMs, live, at, items, view: board, busy: board.busy.slice(), none: this.#board.pool(NO_WORKERS).idx };
  }

  /**
   * The queue planned as batches (plan-units.ts) when some key gains from
   * batching: the probes go first, then each worker's first unit as one
   * Batch. False: no key gains, the round is planned request by request.
   */
  #batchUnits(round: Round, probes: [Waiter, Worker][], taken: Set<Waiter>): boolean {
    const { nowMs, live } = round;
    const units = planUnits(this.#unitRound(round));
    if (units === null) return false;
    for (const [waiter, worker] of probes) this.#hand(waiter, worker, waiter.ticket.facts.batchKey === null ? null : { left: 1, size: 1, key: waiter.ticket.facts.batchKey, startedMs: nowMs, items: [] });
    for (const u of units) {
      if (this.freeSlots(u.worker) < u.members.length || u.members.some((m) => m.settled || taken.has(m))) continue;
      const batch: Batch | null = u.key === null ? null : { left: u.members.length, size: u.members.length, key: u.key, startedMs: nowMs, items: [] };
      u.members.forEach((m, i) => {
        this.#classes.answered(m.ticket);
        this.ctx.queue.hand(m, this.ctx.take(u.worker, m.ticket, batch, u.predictedMs[i]));
      });
    }
    compactPrefix(live, round.scanned);
    return true;
  }

  #unitRound({ live, at, items, board, nowMs }: Round): UnitRound {
    return { board: this.#board, loads: this.ctx.loads, maxSize: this.ctx.batchSize, nowMs, live, at, items, view: board };
  }

  #handJoin(j: Join): void {
    this.#classes.answered(j.waiter.ticket);
    this.ctx.queue.hand(j.waiter, this.ctx.take(j.worker, j.waiter.ticket, j.batch, j.predictedMs));
  }

  /** Forwarded routes that were held (a refit) go at once: they use no GPU slot. */
  #sendForwarded(waiters: readonly Waiter[]): void {
    let left = 0;
    for (const waiter of waiters) {
      if (waiter.settled || !holdsNoPlanSlot(waiter.ticket.demand.kind)) continue;
      const w = this.pick(waiter.ticket);
      if (w !== null) this.#hand(waiter, w, null);
      else left++;
    }
    this.#forwarded = left;
  }

  /** The round's items (queue order) with each one's pool and costs, on the board's state at `nowMs`. */
  #round(live: Waiter[], nowMs: number, board: Board, light: boolean): Round {
    const { candidates, queue } = this.ctx;
    const poolOf = (w: Waiter): Pool => this.#board.pool(candidates.of(w.ticket));
    const all = this.#videos > 0;
    const window = chooseWindow(live, queue.queued, board, poolOf, all ? isVideo : null);
    const waiters = window.at.map((i) => live[i]!);
    const units = unplacedGroups(waiters, (t) => candidates.of(t));
    const none = this.#board.pool(NO_WORKERS);
    let videos = 0;
    const items = waiters.map((waiter): BoardItem => {
      const group = waiter.ticket.group;
      const unit = group === undefined ? undefined : units.get(group);
      // An unplaced group is planned as one unit: its first waiter stands for the whole group, the others wait for its worker.
      const pool = unit !== undefined && unit[0] !== waiter ? none : poolOf(waiter);
      // A held video create is sent as soon as any candidate can take it (video creates never wait for a slot).
      if (waiter.ticket.demand.kind === "video") {
        videos++;
        for (const k of pool.idx) board.free[k] = Math.max(1, board.free[k]!);
      }
      const { cost, floors } = unit === undefined ? this.#board.classCost(waiter.ticket.facts.work, pool) : this.#board.unitCost(unit.map((m) => m.ticket.facts.work), pool);
      return { pool: pool.idx, cost, floors };
    });
    if (all) this.#videos = videos;
    return { nowMs, live, board, at: window.at, items, whole: window.whole, units, scanned: window.scanned, light };
  }

  /**
   * Sends the plan's requests, each with the compatible requests a batching
   * worker takes with it: with a round's view (`joins`), those that finish
   * sooner in its batch than anywhere else (plan-join.ts); without (the
   * per-class round, prompt groups), up to the batch size. Returns the
   * requests sent (joins of the round included).
   */
  #send(plan: [Waiter, Worker][], nowMs: number, live: readonly Waiter[], joins: JoinRound | null = null, sent = new Set<Waiter>()): Set<Waiter> {
    const { candidates, batchSize } = this.ctx;
    for (const [first, worker] of plan) {
      if (sent.has(first) || first.settled) continue; // taken by a batch
      // The worker filled up with a batch meanwhile (video creates never wait for a slot).
      if (first.ticket.demand.kind !== "video" && this.freeSlots(worker) === 0) continue;
      const members = [first];
      sent.add(first);
      const batchKey = first.ticket.facts.batchKey;
      const k = joins === null || first.ticket.group !== undefined ? -1 : this.#board.indexOf(worker);
      if (batchSize > 1 && batchKey !== null && k >= 0) {
        // With batching workers every batchable send is a Batch (even of one): a later compatible request may join it while it is queued.
        const batch: Batch = { left: 1, size: 1, key: batchKey, startedMs: nowMs, items: [] };
        this.#hand(first, worker, batch);
        const endMs = Math.max(joins!.busy[k]!, nowMs) + this.ctx.loads.predictMs(first.ticket.facts.work, worker) * (joins!.view.slow?.[k] ?? 1);
        for (const j of fillBatch(joins!, batch, k, endMs, sent)) this.#handJoin(j);
        continue;
      }
      // A batching worker gets compatible requests with the first one (the
      // planner's slot count already allows them), largest first.
      const room = Math.min(this.freeSlots(worker), batchSize) - 1;
      for (let j = 0; room > 0 && batchKey !== null && j < live.length && members.length <= room; j++) {
        const other = live[j]!;
        // Never another group's item: it would be split from its group.
        if (sent.has(other) || other.settled || other.ticket.facts.batchKey !== batchKey || other.ticket.group !== first.ticket.group || !candidates.of(other.ticket).includes(worker)) continue;
        members.push(other);
        sent.add(other);
      }
      const batch: Batch | null = members.length > 1 || (batchSize > 1 && batchKey !== null) ? { left: members.length, size: members.length, key: batchKey, startedMs: nowMs, items: [] } : null;
      for (const m of members) this.#hand(m, worker, batch);
    }
    return sent;
  }

  /** Answers a waiter with its worker (and takes it off its demand class). */
  #hand(waiter: Waiter, worker: Worker, batch: Batch | null): void {
    this.#classes.answered(waiter.ticket);
    this.ctx.queue.hand(waiter, this.ctx.take(worker, waiter.ticket, batch));
  }
}

/** A video create (never waits for a free slot: see #round). */
function isVideo(w: Waiter): boolean {
  return w.ticket.demand.kind === "video";
}

/**
 * The queued prompt groups not placed on a worker yet, each with its
 * waiters in queue order (the first stands for the group in the plan).
 * `candidates` runs first for every group item: it unplaces a group whose
 * worker failed.
 */
function unplacedGroups(live: readonly Waiter[], candidates: (t: Ticket) => readonly Worker[]): Map<PromptGroup, Waiter[]> {
  const units = new Map<PromptGroup, Waiter[]>();
  for (const waiter of live) {
    const g = waiter.ticket.group;
    if (g === undefined) continue;
    if (!units.has(g)) candidates(waiter.ticket);
    if (g.worker !== null) continue;
    const unit = units.get(g);
    if (unit === undefined) units.set(g, [waiter]);
    else unit.push(waiter);
  }
  return units;
}

/** Drops the answered waiters among the first `end` of the queue's array, in place (the rest go when the queue compacts). */
function compactPrefix(live: Waiter[], end: number): void {
  let k = 0;
  const n = Math.min(end, live.length);
  for (let i = 0; i < n; i++) if (!live[i]!.settled) live[k++] = live[i]!;
  if (k < n) live.splice(k, n - k);
}
