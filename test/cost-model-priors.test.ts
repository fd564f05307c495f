/**
 * The cost model's priors and shared learning (issue 20), in process and
 * seeded, against the simulated worker's own formula (src/sim/latency.ts)
 * with several pixel exponents, fixed costs per output and attention
 * factors: what one worker teaches about a model's shape serves every
 * worker, a size never seen is predicted within 20% once the fleet has seen
 * 8 requests of the model, and a worker's speed is known after 2.
 *
 * "Never seen": the fleet sees 512² to 1024²; it is asked for 256², 1280x720
 * and 1536² (within 20%) and 2048², four times the largest pixels it saw
 * (within 30% with exact times: a power law and attention's u·mp cannot be
 * told apart on 512²-1024² alone, and they part by 15-25% at 4x; with times
 * scattered ±3% it is only printed: 4-40% measured, the worst with 150 ms
 * per output, where pixels are a small share of what the fleet saw).
 */
import { describe, expect, it } from "vitest";
import { CostModel } from "../src/scheduler/cost-model.js";
import type { WorkFeatures } from "../src/scheduler/request-facts.js";
import { generationMs, type CostShape } from "../src/sim/latency.js";
import { prng } from "../src/sim/picture.js";

interface Gpu {
  speed: number;
  attention?: number;
  shape?: CostShape;
}

interface Req {
  width: number;
  height: number;
  steps: number;
  outputs: number;
}

const features = (r: Req): WorkFeatures => ({ megapixels: (r.width * r.height) / (1 << 20), steps: r.steps, latentFrames: 1, outputs: r.outputs, inputImages: 0 });
/** What the sim takes for `r` on `gpu`, with `jitter` relative scatter drawn from `random`. */
const simMs = (gpu: Gpu, r: Req, random?: () => number, jitter = 0) => generationMs({ ...r, frames: 1 }, gpu.speed, gpu.attention ?? 0, gpu.shape ?? {}) * (1 + jitter * (2 * (random?.() ?? 0.5) - 1));

/** Sizes the fleet sees (512² to 1024²) and sizes it never sees (smaller, larger, another aspect). */
const SEEN = [512, 768, 1024];
const UNSEEN: [number, number][] = [
  [256, 256],
  [1536, 1536],
  [1280, 720],
];
const FAR: [number, number][] = [[2048, 2048]];

function drawSeen(random: () => number): Req {
  const side = SEEN[Math.floor(random() * SEEN.length)]!;
  return { width: side, height: side, steps: [20, 30, 50][Math.floor(random() * 3)]!, outputs: 1 + Math.floor(random() * 4) };
}

/** Relative errors of the model's predictions of unseen sizes (1 and 3 outputs, 30 steps) on each worker. */
function unseenErrors(model: CostModel, urls: string[], gpus: Gpu[], sizes = UNSEEN): number[] {
  const errors: number[] = [];
  for (const [width, height] of sizes) {
    for (const outputs of [1, 3]) {
      const r = { width, height, steps: 30, outputs };
      urls.forEach((url, i) => errors.push(Math.abs(model.predictMs(url, "m", features(r)) / simMs(gpus[i]!, r) - 1)));
    }
  }
  return errors;
}

const shapes: [string, Omit<Gpu, "speed">][] = [
  ["pixels^1.1 and 60 ms per output", { shape: { pixelExponent: 1.1, outputMs: 60 } }],
  ["pixels^1.4 and 60 ms per output", { shape: { pixelExponent: 1.4, outputMs: 60 } }],
  ["pixels^1.4, no fixed cost per output", { shape: { pixelExponent: 1.4 } }],
  ["pixels^1.25 and 150 ms per output", { shape: { pixelExponent: 1.25, outputMs: 150 } }],
  ["linear pixels with attention (a = 0.8)", { attention: 0.8 }],
  ["pixels^1.2, attention 0.3 and 30 ms per output", { attention: 0.3, shape: { pixelExponent: 1.2, outputMs: 30 } }],
];

describe("cost model: shared shape, per-worker speed", () => {
  for (const [name, shape] of shapes) {
    for (const jitter of [0, 0.03]) {
      it(`${name}${jitter ? ", times scattered ±3%" : ""}: 8 requests on two workers (speeds 1 and 0.5), 2 on two more (1 and 2): sizes never seen within 20% on all four`, () => {
        const random = prng(name.length * 7 + (jitter ? 1 : 0));
        const gpus: Gpu[] = [1, 0.5, 1, 2].map((speed) => ({ speed, ...shape }));
        const urls = gpus.map((_, i) => `http://w${i}:1`);
        const model = new CostModel();
        const answer = (i: number, cold = 1) => {
          const r = drawSeen(random);
          model.observe(urls[i]!, "m", features(r), cold * simMs(gpus[i]!, r, random, jitter));
        };
        // Every worker's first request is a cold start the model does not learn from (10x the time here).
        urls.forEach((_, i) => answer(i, 10));
        // The fleet's 8 requests of the model, on two workers; then one each on the other two (their 2nd request).
        for (let k = 0; k < 8; k++) answer(k % 2);
        answer(2);
        answer(3);
        const worst = Math.max(...unseenErrors(model, urls, gpus));
        const far = Math.max(...unseenErrors(model, urls, gpus, FAR));
        console.log(`${name}${jitter ? " ±3%" : ""}: worst ${(100 * worst).toFixed(1)}%, 2048² ${(100 * far).toFixed(1)}%, exponent ${model.shape("m").exponent.toFixed(2)}`);
        expect(worst).toBeLessThan(0.2);
        if (jitter === 0) expect(far).toBeLessThan(0.3);
      });
    }
  }

  it("a worker that joins later is predicted within 20% on sizes it never ran after its 2nd request (its speed learned from one, the shape from the fleet)", () => {
    for (const [name, shape] of shapes) {
      const random = prng(3);
      const fleet: Gpu[] = [1, 1, 1].map((speed) => ({ speed, ...shape }));
      const model = new CostModel();
      for (let k = 0; k < 24; k++) {
        const i = k % 3;
        const r = drawSeen(random);
        model.observe(`http://w${i}:1`, "m", features(r), simMs(fleet[i]!, r));
      }
      for (const speed of [0.4, 2.5]) {
        const url = `http://new-${speed}:1`;
        const gpu = { speed, ...shape };
        // Before it answers anything: the fleet's average worker.
        const probe = { width: 512, height: 512, steps: 20, outputs: 1 };
        model.observe(url, "m", features(probe), 5 * simMs(gpu, probe)); // a cold start
        const r = drawSeen(random);
        model.observe(url, "m", features(r), simMs(gpu, r));
        const errors = unseenErrors(model, [url], [gpu]);
        expect(Math.max(...errors), `${name}, speed ${speed}`).toBeLessThan(0.2);
        expect(Math.abs(model.snapshot(url, "m").speed / speed - 1), `${name}, speed ${speed}`).toBeLessThan(0.2);
      }
    }
  });

  it("a worker that slows down 3x is predicted within 25% after 4 slow answers, and again after it recovers; one stall does not move it", () => {
    const random = prng(11);
    const gpu: Gpu = { speed: 1, shape: { pixelExponent: 1.4, outputMs: 60 } };
    const others: Gpu[] = [gpu, gpu, gpu];
    const model = new CostModel();
    const url = "http://drifting:1";
    const feed = (speed: number, count: number, stall = -1) => {
      for (let k = 0; k < count; k++) {
        const r = drawSeen(random);
        for (let i = 0; i < 3; i++) model.observe(`http://w${i}:1`, "m", features(r), simMs(others[i]!, r));
        model.observe(url, "m", features(r), simMs({ ...gpu, speed }, r) * (k === stall ? 20 : 1));
      }
    };
    const error = (speed: number) => {
      const r = { width: 1024, height: 1024, steps: 30, outputs: 2 };
      return Math.abs(model.predictMs(url, "m", features(r)) / simMs({ ...gpu, speed }, r) - 1);
    };
    feed(1, 20, 12);
    expect(error(1)).toBeLessThan(0.05);
    feed(1 / 3, 4);
    expect(error(1 / 3)).toBeLessThan(0.25);
    feed(1, 4);
    expect(error(1)).toBeLessThan(0.25);
    expect(model.snapshot(url, "m").speed).toBeGreaterThan(0.75);
  });
});
