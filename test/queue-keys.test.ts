/**
 * The earliest-finish queue's keys when the fleet's learned shape changes
 * (admission/queue-keys.ts): in process, the real cost model and keys, a
 * fake clock. The virtual-fleet outcome is test/scheduler-warmup-order.test.ts.
 */
import { describe, expect, it } from "vitest";
import { QueueKeys } from "../src/admission/queue-keys.js";
import type { Waiter } from "../src/admission/queue.js";
import type { Ticket } from "../src/admission/ticket.js";
import { CostModel } from "../src/scheduler/cost-model.js";
import { readRequestFacts } from "../src/scheduler/request-facts.js";

const MODEL = "Qwen/Qwen-Image";
const LARGE = { size: "1024x1024", num_inference_steps: 50 };
const SMALL = { size: "256x256", num_inference_steps: 10 };

function ticketOf(body: Record<string, unknown>): Ticket {
  const facts = readRequestFacts("image", { prompt: "p", ...body }, null);
  return { demand: { kind: "image", model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
}

function waiter(ticket: Ticket, key: number): Waiter {
  return { ticket, key, settled: false } as unknown as Waiter;
}

/** Answers as bench:scale's GPUs give them (large 8 s, small 0.14 s), from 8 workers, two each. */
function teach(costs: CostModel): void {
  for (let round = 0; round < 3; round++) {
    for (let w = 0; w < 8; w++) {
      costs.observe(`http://w${w}`, MODEL, ticketOf(LARGE).facts.work, 8_000);
      costs.observe(`http://w${w}`, MODEL, ticketOf(SMALL).facts.work, 140);
    }
  }
}

describe("queue keys follow the learned shape", () => {
  it("a large request keyed as small while the shape was cold goes first once the shape is learned; ageing between two requests is kept", () => {
    const costs = new CostModel();
    let now = 0;
    const keys = new QueueKeys(costs, () => now, 1);
    const small = ticketOf(SMALL);
    const large1 = ticketOf(LARGE);
    const large2 = ticketOf(LARGE);
    const live = [waiter(small, keys.key(small, MODEL))];
    now = 1_000;
    live.push(waiter(large1, keys.key(large1, MODEL)));
    now = 1_500;
    live.push(waiter(large2, keys.key(large2, MODEL)));
    live.sort((a, b) => b.key - a.key);
    // Cold shape: the large requests' predictions (~0.44 s) are below the 1-1.5 s they arrived later.
    expect(live[0]!.ticket).toBe(small);
    expect(keys.stale).toBe(false);
    expect(keys.refresh(live)).toBe(false);

    teach(costs);
    expect(keys.stale).toBe(true);
    expect(keys.refresh(live)).toBe(true);
    expect(keys.stale).toBe(false);
    expect(live.map((w) => w.ticket)).toEqual([large1, large2, small]);
    // The arrival part of a key stays: 500 ms apart in arrival, 500 ms apart in key.
    expect(live[0]!.key - live[1]!.key).toBeCloseTo(500, 6);
    // And each key is what a request keyed now, under the learned shape, would have had at its arrival.
    expect(live[2]!.key).toBeCloseTo(costs.referenceMs(MODEL, small.facts.work), 6);
    expect(live[0]!.key).toBeCloseTo(costs.referenceMs(MODEL, large1.facts.work) - 1_000, 6);
  });

  it("answered waiters leave the array at a refresh, and an unchanged order is not re-sorted", () => {
    const costs = new CostModel();
    const keys = new QueueKeys(costs, () => 0, 1);
    const a = ticketOf(LARGE);
    const b = ticketOf(SMALL);
    const c = ticketOf(SMALL);
    const live = [waiter(a, keys.key(a, MODEL)), waiter(b, keys.key(b, MODEL)), waiter(c, keys.key(c, MODEL))];
    live[1]!.settled = true;
    teach(costs);
    expect(keys.refresh(live)).toBe(false);
    expect(live.map((w) => w.ticket)).toEqual([a, c]);
  });
});
