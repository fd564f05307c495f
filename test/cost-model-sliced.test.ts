/**
 * A large fleet's refit in slices (issue 25: the refit of 1,024 workers was
 * the router's longest turn): the cost model computes the new shape and
 * paces aside, a slice per deferred turn, and replaces the old fit at once
 * when complete. Seeded, against the simulated worker's formula, with the
 * slices run by the test (the router runs them with setImmediate):
 * - a refit in slices ends exactly (bit for bit) where the same refit at
 *   once ends, answer after answer;
 * - until its last slice, every prediction is the old fit's (nothing is
 *   half-updated);
 * - a worker that answers while a refit is under way keeps what its
 *   answers taught (the new fit does not put back the pace it had);
 * - a worker forgotten meanwhile is not brought back.
 */
import { describe, expect, it } from "vitest";
import { CostModel } from "../src/scheduler/cost-model.js";
import type { WorkFeatures } from "../src/scheduler/request-facts.js";
import { generationMs } from "../src/sim/latency.js";
import { prng } from "../src/sim/picture.js";

const MODEL = "Qwen/Qwen-Image";
const SIZES = [256, 512, 768, 1024];
const STEPS = [10, 20, 30, 50];
const work = (px: number, steps: number): WorkFeatures => ({ megapixels: (px * px) / (1 << 20), steps, latentFrames: 1, outputs: 1, inputImages: 0 });
const PROBES = [work(256, 10), work(768, 30), work(1024, 50)];

/** 300 workers (3/4 at speed 1, 1/4 at 0.5): more than the 256 members above which refits are sliced. */
const WORKERS = Array.from({ length: 300 }, (_, i) => ({ url: `http://10.0.${i >> 8}.${i & 255}:8000`, speed: i % 4 === 3 ? 0.5 : 1 }));

interface Answer {
  url: string;
  work: WorkFeatures;
  ms: number;
  at: number;
}

/** `count` answers of random sizes from random workers, 1 ms apart from `fromMs`, times from the sim's formula ±5%. */
function answers(seed: number, count: number, fromMs: number, slow: (url: string) => number = () => 1): Answer[] {
  const random = prng(seed);
  return Array.from({ length: count }, (_, i) => {
    const w = WORKERS[Math.floor(random() * WORKERS.length)]!;
    const px = SIZES[Math.floor(random() * SIZES.length)]!;
    const steps = STEPS[Math.floor(random() * STEPS.length)]!;
    const ms = generationMs({ width: px, height: px, steps, frames: 1, outputs: 1 }, w.speed, 0) * (0.95 + 0.1 * random()) * slow(w.url);
    return { url: w.url, work: work(px, steps), ms, at: fromMs + i };
  });
}

/** A cost model whose deferred slices wait in `slices` for the test to run them. */
function sliced(): { model: CostModel; slices: Array<() => void>; drain: () => number } {
  const slices: Array<() => void> = [];
  // 256 members per slice (the router's is 1,024), so that 300 members take two slices of paces per alternation.
  const model = new CostModel({ defer: (s) => slices.push(s), sliceMembers: 256 });
  const drain = () => {
    let n = 0;
    for (let s = slices.shift(); s !== undefined; s = slices.shift()) {
      s();
      n++;
    }
    return n;
  };
  return { model, slices, drain };
}

const predictions = (m: CostModel) => WORKERS.flatMap((w) => PROBES.map((p) => m.predictMs(w.url, MODEL, p)));
const snapshots = (m: CostModel) => WORKERS.map((w) => m.snapshot(w.url, MODEL));

/** Every worker's first answer (a cold start, not learned from) and a second, so that all 300 are members. */
function warm(m: CostModel, after?: () => void): void {
  WORKERS.forEach((w, i) => {
    for (const k of [0, 1]) {
      m.observe(w.url, MODEL, work(512, 20), generationMs({ width: 512, height: 512, steps: 20, frames: 1, outputs: 1 }, w.speed, 0), 2 * i + k);
      after?.();
    }
  });
}

describe("the cost model's fleet refit in slices", () => {
  it("ends bit for bit where the same refits at once end, over 3,000 answers of 300 workers", () => {
    const once = new CostModel();
    const { model, drain } = sliced();
    let slicedRefits = 0;
    warm(once);
    warm(model, () => {
      if (drain() > 0) slicedRefits++;
    });
    for (const a of answers(7, 3000, 1000)) {
      once.observe(a.url, MODEL, a.work, a.ms, a.at);
      model.observe(a.url, MODEL, a.work, a.ms, a.at);
      if (drain() > 0) slicedRefits++;
    }
    // Refits of a fleet this size are spaced (every members / 16 answers at most): dozens here, each in several slices.
    expect(slicedRefits).toBeGreaterThan(20);
    expect(model.shape(MODEL)).toEqual(once.shape(MODEL));
    expect(snapshots(model)).toEqual(snapshots(once));
    expect(predictions(model)).toEqual(predictions(once));
  });

  it("predicts with the old fit until its last slice, then with the new one", () => {
    const { model, slices, drain } = sliced();
    warm(model, drain);
    const feed = answers(11, 3000, 1000);
    let i = 0;
    // Answers until one starts a refit (its slices wait).
    while (slices.length === 0) {
      const a = feed[i++]!;
      model.observe(a.url, MODEL, a.work, a.ms, a.at);
    }
    const old = predictions(model);
    const oldShape = model.shape(MODEL);
    let steps = 0;
    while (slices.length > 0) {
      expect(predictions(model)).toEqual(old);
      expect(model.shape(MODEL)).toEqual(oldShape);
      slices.shift()!();
      steps++;
    }
    // 300 members: a shape fit and two slices of paces per alternation, two alternations.
    expect(steps).toBeGreaterThan(2);
    expect(predictions(model)).not.toEqual(old);
    expect(model.shape(MODEL).theta).not.toEqual(oldShape.theta);
  });

  it("keeps what a worker's answers taught while a refit was under way, and does not bring back a forgotten worker", () => {
    const { model, slices, drain } = sliced();
    warm(model, drain);
    const fast = WORKERS[0]!.url;
    const gone = WORKERS[1]!.url;
    for (const a of answers(13, 1500, 1000)) {
      model.observe(a.url, MODEL, a.work, a.ms, a.at);
      drain();
    }
    expect(model.snapshot(fast, MODEL).speed).toBeGreaterThan(1);
    const feed = answers(17, 3000, 3000);
    let i = 0;
    while (slices.length === 0) {
      const a = feed[i++]!;
      model.observe(a.url, MODEL, a.work, a.ms, a.at);
    }
    const oldTheta = model.shape(MODEL).theta;
    // Every slice but the last (worker 0 is the fleet's first member: its final pace for the new fit is made
    // in the last alternation's first slice of paces; the last slice paces members 256-299 and puts the fit in place).
    let ran = 0;
    while (model.shape(MODEL).theta === oldTheta && ran < 5) {
      slices.shift()!();
      ran++;
    }
    expect(ran).toBe(5);
    expect(slices.length).toBe(1);
    expect(model.shape(MODEL).theta).toBe(oldTheta);
    // Then it runs 3x slower for 12 answers, 25 ms apart (each re-paces it), and another worker is removed.
    const at = feed[i]!.at;
    for (let k = 0; k < 12; k++) model.observe(fast, MODEL, work(1024, 50), 3 * generationMs({ width: 1024, height: 1024, steps: 50, frames: 1, outputs: 1 }, 1, 0), at + 25 * k);
    model.forget(gone);
    drain();
    // Its pace after the new fit counts the slow answers (a speed near a third of the fleet's), not the pace made before them.
    expect(model.snapshot(fast, MODEL).speed).toBeLessThan(0.6);
    expect(model.snapshot(gone, MODEL).observations).toBe(0);
  });
});
