import type { Worker } from "../registry/worker.js";
import { occupy, planDispatch, priorityKey, type PlanItem, type PlanWorker } from "../scheduler/plan.js";
import { holdsNoPlanSlot } from "../scheduler/request-facts.js";
import type { DispatchContext, DispatchStrategy } from "./dispatch.js";
import type { PromptGroup } from "./groups.js";
import { parallelSlotsOf } from "./loads.js";
import type { Waiter } from "./queue.js";
import type { Batch, Ticket } from "./ticket.js";

/** Observations of a worker (per model) before the planner packs whole queues on its estimates (see plan.ts). */
const LEARNED_OBSERVATIONS = 3;
/** Re-plans in one dispatch after groups were placed (each places at least one group, so few are needed). */
const MAX_GROUP_ROUNDS = 8;

/** One round's view of the queue and the workers, as scheduler/plan.ts takes it. */
interface Round {
  readonly nowMs: number;
  readonly live: Waiter[];
  readonly items: PlanItem<Worker>[];
  readonly state: Map<Worker, PlanWorker>;
  /** Prompt groups not placed when the round began. */
  readonly units: Map<PromptGroup, Waiter[]>;
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

  constructor(private readonly ctx: DispatchContext) {}

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
    const model = this.ctx.candidates.registered(ticket)[0]?.capabilities.models[0] ?? "";
    return priorityKey(this.ctx.loads.costs.referenceMs(model, ticket.facts.work), this.ctx.clock(), this.ctx.ageing);
  }

  /**
   * Every arrival waits for one plan after the current I/O turn, so the
   * requests of a burst that arrived together are sorted largest-first
   * before the first is sent (a lone request waits one event-loop turn).
   */
  arrived(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.ctx.pump();
    });
  }

  dispatch(depth = 0): void {
    const { queue } = this.ctx;
    this.#sendForwarded(queue.live());
    const round = this.#round(queue.live().filter((w) => !w.settled));
    const plan = this.#probeNewWorkers(round);
    const probed = new Set(plan.map(([i]) => i));
    const rest = probed.size === 0 ? round.items : round.items.map((it, i) => (probed.has(i) ? { candidates: [], predictMs: it.predictMs } : it));
    plan.push(...planDispatch(rest, round.state, round.nowMs, Infinity, this.#rotation++));
    if (this.#rotation > 1e9) this.#rotation = 0;
    const sent = plan.length === 0 ? null : this.#send(plan, round);
    queue.keep(sent === null ? round.live : round.live.filter((_, i) => !sent.has(i)));
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
    const { cap, capPerSlot } = this.ctx;
    if (cap === 0) return Number.MAX_SAFE_INTEGER;
    return Math.max(0, (capPerSlot ? cap * parallelSlotsOf(w) : cap) - this.ctx.loads.runsOn(w));
  }

  /** Forwarded routes that were held (a refit) go at once: they use no GPU slot. */
  #sendForwarded(waiters: readonly Waiter[]): void {
    for (const waiter of waiters) {
      if (waiter.settled || !holdsNoPlanSlot(waiter.ticket.demand.kind)) continue;
      const w = this.pick(waiter.ticket);
      if (w !== null) this.ctx.queue.hand(waiter, this.ctx.take(w, waiter.ticket, null));
    }
  }

  /** The plan's items (queue order) and each candidate's state: when it is free, its slots, how well it is known. */
  #round(live: Waiter[]): Round {
    const { candidates, loads } = this.ctx;
    const nowMs = this.ctx.clock();
    const state = new Map<Worker, PlanWorker>();
    const slow = new Map<Worker, number>();
    const items: PlanItem<Worker>[] = [];
    const units = unplacedGroups(live, (t) => candidates.of(t));
    for (const waiter of live) {
      const group = waiter.ticket.group;
      const unit = group === undefined ? undefined : units.get(group);
      // An unplaced group is planned as one unit: its first waiter stands for the whole group, the others wait for its worker.
      const cands = unit !== undefined && unit[0] !== waiter ? [] : candidates.of(waiter.ticket);
      for (const w of cands) {
        if (state.has(w)) continue;
        const s = loads.slowdown(w, nowMs);
        slow.set(w, s);
        const snap = loads.snapshot(w);
        const [busyUntilMs, ...otherSlotsMs] = loads.slotsFreeAt(w, nowMs, s);
        state.set(w, { busyUntilMs: busyUntilMs!, otherSlotsMs, freeSlots: this.freeSlots(w), learned: snap.observations >= LEARNED_OBSERVATIONS, noise: snap.noise });
      }
      const works = (unit ?? [waiter]).map((m) => m.ticket.facts.work);
      items.push({ candidates: cands, predictMs: (w) => works.reduce((sum, work) => sum + loads.predictMs(work, w), 0) * slow.get(w)! });
      // A held video create is sent as soon as any candidate can take it (video creates never wait for a slot).
      if (waiter.ticket.demand.kind === "video") for (const w of cands) state.get(w)!.freeSlots = Math.max(1, state.get(w)!.freeSlots);
    }
    return { nowMs, live, items, state, units };
  }

  /**
   * A worker the cost model knows nothing of yet (just registered, or a new
   * model) first gets the smallest request it may serve (not the only one
   * queued): its speed is
   * learned from a cheap request, instead of a large one landing on a GPU
   * that may turn out several times slower.
   */
  #probeNewWorkers({ nowMs, live, items, state }: Round): [number, Worker][] {
    const plan: [number, Worker][] = [];
    const probed = new Set<number>();
    for (const [w, st] of state) {
      if (st.freeSlots === 0 || this.ctx.loads.runsOn(w) > 0 || this.ctx.loads.snapshot(w).observations > 0) continue;
      // Never the queue's head (its largest request): through HTTP a burst arrives over several
      // event-loop turns, and a probe with the only request queued put a burst's largest on a
      // half-speed worker (2.0x; issue 20). The head goes where the plan finishes it earliest.
      for (let i = live.length - 1; i >= 1; i--) {
        if (probed.has(i) || !items[i]!.candidates.includes(w)) continue;
        probed.add(i);
        plan.push([i, w]);
        st.freeSlots--;
        occupy(st, Math.max(st.busyUntilMs, nowMs) + items[i]!.predictMs(w));
        break;
      }
    }
    return plan;
  }

  /** Sends the plan's requests, each with the compatible requests a batching worker takes with it. Returns the indexes sent. */
  #send(plan: [number, Worker][], { nowMs, live }: Round): Set<number> {
    const { queue, candidates, batchSize } = this.ctx;
    const sent = new Set<number>();
    for (const [i, worker] of plan) {
      if (sent.has(i)) continue; // taken by a batch
      const first = live[i]!;
      // The worker filled up with a batch meanwhile (video creates never wait for a slot).
      if (first.ticket.demand.kind !== "video" && this.freeSlots(worker) === 0) continue;
      const members = [first];
      sent.add(i);
      // A batching worker gets compatible requests with the first one (the
      // planner's slot count already allows them), largest first.
      const room = Math.min(this.freeSlots(worker), batchSize) - 1;
      const batchKey = first.ticket.facts.batchKey;
      for (let j = 0; room > 0 && batchKey !== null && j < live.length && members.length <= room; j++) {
        const other = live[j]!;
        // Never another group's item: it would be split from its group.
        if (sent.has(j) || other.ticket.facts.batchKey !== batchKey || other.ticket.group !== first.ticket.group || !candidates.of(other.ticket).includes(worker)) continue;
        members.push(other);
        sent.add(j);
      }
      const batch: Batch | null = members.length > 1 ? { left: members.length, size: members.length, startedMs: nowMs, items: [] } : null;
      for (const m of members) queue.hand(m, this.ctx.take(worker, m.ticket, batch));
    }
    return sent;
  }
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
