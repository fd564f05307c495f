import type { WorkFeatures } from "../scheduler/request-facts.js";
import type { Waiter } from "./queue.js";
import type { Ticket } from "./ticket.js";

/** Queued requests of one demand class (same demand and work features): interchangeable for the plan. */
export interface ClassQueue {
  readonly work: WorkFeatures;
  /** Its waiters by priority (the queue's order); those before `head` are answered. */
  waiters: Waiter[];
  head: number;
  /** Its requests still waiting (answers the router gave, counted as they happen). */
  count: number;
}

/** Entries of a class queue answered before it is compacted (they are skipped from the head). */
const COMPACT_AT = 256;

/**
 * The router queue's requests by demand class, kept as requests arrive and
 * leave, so that the direct plan (scheduler/direct-plan.ts) reads a class's
 * first request and its count without walking the queue. `classify` names a
 * request's class, or null for a request the direct plan does not take
 * (prompt groups, videos, retries, routing keys: they are planned request
 * by request). Answers the router does not give through the dispatcher (a
 * queue timeout, a client that left) are not seen: the counts are checked
 * against the queue's own at every round, and all classes recounted from
 * the queue when they differ.
 */
export class ClassQueues {
  readonly #classes = new Map<string, ClassQueue>();
  /** Each tracked request's class (null: a request of no class). */
  readonly #of = new WeakMap<Ticket, ClassQueue | null>();
  /** Requests given a priority (about to be queued) and not yet found in the queue. */
  readonly #arrived: Ticket[] = [];
  readonly #arrivedKeys: number[] = [];
  /** Tracked requests: in classes, and of no class. */
  #counted = 0;
  #others = 0;
  /** Classes with waiting requests, by their first request's priority (reused per round). */
  readonly #order: ClassQueue[] = [];

  constructor(private readonly classify: (t: Ticket) => string | null) {}

  /** Requests waiting that belong to no class (while any, the direct plan is not used). */
  get others(): number {
    return this.#others;
  }

  /** A request is about to be queued with priority `key`. */
  arrived(ticket: Ticket, key: number): void {
    this.#arrived.push(ticket);
    this.#arrivedKeys.push(key);
  }

  /** The dispatcher answered a queued request (sent it to a worker). */
  answered(ticket: Ticket): void {
    const c = this.#of.get(ticket);
    if (c === undefined) return;
    this.#of.delete(ticket);
    this.#counted--;
    if (c === null) this.#others--;
    else c.count--;
  }

  /** Files the requests that arrived since the last round; recounts everything if the counts differ from the queue's (`queued`). */
  sync(live: readonly Waiter[], queued: number): void {
    for (let i = 0; i < this.#arrived.length; i++) {
      const waiter = findWaiter(live, this.#arrived[i]!, this.#arrivedKeys[i]!);
      if (waiter !== null) this.#file(waiter);
    }
    this.#arrived.length = 0;
    this.#arrivedKeys.length = 0;
    if (this.#counted !== queued) this.#recount(live);
  }

  /** The classes with waiting requests, ordered by their first waiting request (highest priority first). */
  heads(): readonly ClassQueue[] {
    const order = this.#order;
    order.length = 0;
    for (const [key, c] of this.#classes) {
      while (c.head < c.waiters.length && c.waiters[c.head]!.settled) c.head++;
      if (c.head >= c.waiters.length) {
        if (c.count <= 0) this.#classes.delete(key);
        continue;
      }
      if (c.head >= COMPACT_AT) {
        c.waiters = c.waiters.slice(c.head);
        c.head = 0;
      }
      order.push(c);
    }
    order.sort((a, b) => b.waiters[b.head]!.key - a.waiters[a.head]!.key);
    return order;
  }

  /** A class's first waiting request, taken off the class (the caller answers it). */
  take(c: ClassQueue): Waiter | null {
    while (c.head < c.waiters.length && c.waiters[c.head]!.settled) c.head++;
    return c.head < c.waiters.length ? c.waiters[c.head++]! : null;
  }

  #file(waiter: Waiter): void {
    const { ticket } = waiter;
    if (waiter.settled || this.#of.has(ticket)) return;
    const key = this.classify(ticket);
    this.#counted++;
    if (key === null || ticket.facts.work === null) {
      this.#others++;
      this.#of.set(ticket, null);
      return;
    }
    let c = this.#classes.get(key);
    if (c === undefined) {
      c = { work: ticket.facts.work, waiters: [], head: 0, count: 0 };
      this.#classes.set(key, c);
    }
    insertByKey(c, waiter);
    c.count++;
    this.#of.set(ticket, c);
  }

  /** Every class made again from the queue (after answers the dispatcher did not give). */
  #recount(live: readonly Waiter[]): void {
    for (const c of this.#classes.values()) {
      for (let i = c.head; i < c.waiters.length; i++) this.#of.delete(c.waiters[i]!.ticket);
    }
    this.#classes.clear();
    this.#counted = 0;
    this.#others = 0;
    for (const waiter of live) {
      this.#of.delete(waiter.ticket);
      if (!waiter.settled) this.#file(waiter);
    }
  }
}

/** The waiter of `ticket` in the queue (ordered by key, largest first; ties in arrival order), or null. */
function findWaiter(live: readonly Waiter[], ticket: Ticket, key: number): Waiter | null {
  let lo = 0;
  let hi = live.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (live[mid]!.key > key) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < live.length && live[i]!.key === key; i++) if (live[i]!.ticket === ticket) return live[i]!;
  return null;
}

/** Keeps a class's waiters in the queue's order (an arrival usually goes last). */
function insertByKey(c: ClassQueue, waiter: Waiter): void {
  const w = c.waiters;
  let i = w.length;
  while (i > c.head && w[i - 1]!.key < waiter.key) i--;
  if (i === w.length) w.push(waiter);
  else w.splice(i, 0, waiter);
}
