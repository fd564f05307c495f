/**
 * The scheduler's pure parts, table-tested in-process: request facts, worker
 * eligibility, the cost model, the earliest-finish plan and routing keys.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CostModel } from "../src/scheduler/cost-model.js";
import { COLD_SHAPE, fitShape, pointOf } from "../src/scheduler/cost-shape.js";
import { eligibleWorkers, workerKind } from "../src/scheduler/eligibility.js";
import { bestPacking, greedyPack, loadsOf, maxOf, type PackProblem } from "../src/scheduler/pack.js";
import { planDispatch, priorityKey, type PlanWorker } from "../src/scheduler/plan.js";
import { readRequestFacts } from "../src/scheduler/request-facts.js";
import { HashRing } from "../src/scheduler/routing-key.js";

describe("request facts", () => {
  it.each([
    ["defaults: 1024x1024, 50 steps, one output", {}, { megapixels: 1, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 }],
    ["size and n", { size: "512x512", n: 4, num_inference_steps: 20 }, { megapixels: 0.25, steps: 20, outputs: 4 }],
    ["width/height override size", { size: "512x512", width: 1024, height: 2048 }, { megapixels: 2 }],
    ["num_outputs_per_prompt is not read by the image routes", { num_outputs_per_prompt: 8 }, { outputs: 1 }],
    ["num_images is ignored, as the worker ignores it", { num_images: 4 }, { outputs: 1 }],
    ["strings that are numbers", { n: "2", num_inference_steps: "10" }, { outputs: 2, steps: 10 }],
    ["nonsense is treated as missing", { n: -3, num_inference_steps: "lots", size: "big" }, { outputs: 1, steps: 50, megapixels: 1 }],
    ["absurd values are capped (n as the image routes clamp it, to 10)", { num_inference_steps: 1e12, n: 1e6 }, { steps: 1000, outputs: 10 }],
    ["an input image", { image_path: "/x.png" }, { inputImages: 1 }],
  ])("%s", (_name, body, expected) => {
    expect(readRequestFacts("image", body, null).work).toMatchObject(expected);
  });

  it("native routes read num_outputs_per_prompt (up to 64)", () => {
    expect(readRequestFacts("generation", { num_outputs_per_prompt: 8 }, null).work).toMatchObject({ outputs: 8 });
    expect(readRequestFacts("generation", { n: 1e6 }, null).work).toMatchObject({ outputs: 64 });
  });

  it("videos: num_frames, or seconds x fps, in latent frames; 1280x720 by default", () => {
    expect(readRequestFacts("video", { num_frames: 81 }, null).work).toMatchObject({ latentFrames: 21, megapixels: (1280 * 720) / (1 << 20) });
    expect(readRequestFacts("video", { seconds: 4, fps: 24 }, null).work).toMatchObject({ latentFrames: 24 });
    expect(readRequestFacts("video", {}, null).work).toMatchObject({ latentFrames: 24 });
  });

  it("model, routing key (header first, then body) and batch key", () => {
    const a = readRequestFacts("image", { model: "Qwen/Qwen-Image", prompt: "a", seed: 1, size: "512x512", routing_key: "g1" }, null);
    expect(a).toMatchObject({ model: "Qwen/Qwen-Image", routingKey: "g1" });
    expect(readRequestFacts("image", { routing_key: "g1" }, "hdr").routingKey).toBe("hdr");
    // Same parameters but prompt and seed: same batch; another size or negative prompt: another batch.
    const b = readRequestFacts("image", { prompt: "b", seed: 2, size: "512x512", model: "Qwen/Qwen-Image" }, null);
    expect(b.batchKey).toBe(a.batchKey);
    expect(readRequestFacts("image", { prompt: "b", size: "1024x1024" }, null).batchKey).not.toBe(a.batchKey);
    expect(readRequestFacts("image", { prompt: "b", size: "512x512", negative_prompt: "x" }, null).batchKey).not.toBe(a.batchKey);
    // Input images never batch.
    expect(readRequestFacts("image", { prompt: "b", image_path: "/x.png" }, null).batchKey).toBeNull();
  });

  it("property: never throws and always gives positive, finite work", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom("image", "video", "generation", "other" as const), (body, kind) => {
        const f = readRequestFacts(kind, body, null);
        if (f.work === null) return true;
        return [f.work.megapixels, f.work.steps, f.work.latentFrames, f.work.outputs].every((v) => Number.isFinite(v) && v > 0);
      }),
    );
  });
});

describe("eligibility", () => {
  const w = (taskType: string | null, models: string[], videoSupport: boolean | null = null) => ({ capabilities: { taskType, videoSupport, models, instanceFingerprint: null } });
  const qwen1 = w("T2I", ["Qwen/Qwen-Image"], false);
  const qwen2 = w("T2I", ["Qwen/Qwen-Image"], false);
  const flux = w("T2I", ["black-forest-labs/FLUX.1-dev"], false);
  const wan = w("T2V", ["Wan-AI/Wan2.2-T2V-A14B-Diffusers"], true);
  const fresh = w(null, [], null);
  const pool = [qwen1, qwen2, flux, wan];

  it.each([
    ["an image naming a served model goes only to its workers", { kind: "image", model: "Qwen/Qwen-Image" }, [qwen1, qwen2]],
    ["an image naming another served model", { kind: "image", model: "black-forest-labs/FLUX.1-dev" }, [flux]],
    ["an image naming a model nobody serves goes to any image worker", { kind: "image", model: "sora-2" }, [qwen1, qwen2, flux]],
    ["an image naming no model never goes to the video worker", { kind: "image", model: null }, [qwen1, qwen2, flux]],
    ["an image naming the video model still goes to image workers", { kind: "image", model: "Wan-AI/Wan2.2-T2V-A14B-Diffusers" }, [qwen1, qwen2, flux]],
    ["a video goes only to video workers", { kind: "video", model: "sora-2" }, [wan]],
    ["a rollout naming a model", { kind: "generation", model: "black-forest-labs/FLUX.1-dev" }, [flux]],
    ["a rollout naming the video model goes to it, video fields or not", { kind: "generation", model: "Wan-AI/Wan2.2-T2V-A14B-Diffusers" }, [wan]],
    ["a rollout naming nothing and asking for no video goes to image workers", { kind: "generation", model: null }, [qwen1, qwen2, flux]],
    ["a rollout naming nothing and asking for video goes to video workers", { kind: "video_generation", model: null }, [wan]],
    ["a rollout naming a model nobody serves, asking for video", { kind: "video_generation", model: "sora-2" }, [wan]],
  ] as const)("%s", (_name, demand, expected) => {
    expect(eligibleWorkers(pool, demand)).toEqual(expected);
  });

  it("workers not probed yet take images only while no image worker is known; a video-only pool still serves images, a VLA worker never", () => {
    expect(eligibleWorkers([wan, fresh], { kind: "image", model: null })).toEqual([fresh]);
    expect(eligibleWorkers([qwen1, fresh, wan], { kind: "image", model: null })).toEqual([qwen1]);
    expect(eligibleWorkers([wan], { kind: "image", model: null })).toEqual([wan]);
    const vla = w("VLA_ACTION", ["some/vla"], false);
    expect(eligibleWorkers([wan, vla], { kind: "image", model: null })).toEqual([wan]);
    expect(eligibleWorkers([wan, vla], { kind: "generation", model: null })).toEqual([wan]);
    expect(eligibleWorkers([wan, vla], { kind: "video", model: null })).toEqual([wan]);
  });

  it("a native generation body asking for video is a video_generation; one that does not stays a generation", () => {
    expect(readRequestFacts("generation", { prompt: "x", num_frames: 9 }, null).kind).toBe("video_generation");
    expect(readRequestFacts("generation", { prompt: "x", fps: 8 }, null).kind).toBe("video_generation");
    expect(readRequestFacts("generation", { prompt: "x", width: 512 }, null).kind).toBe("generation");
    expect(readRequestFacts("image", { prompt: "x", num_frames: 9 }, null).kind).toBe("image");
  });

  it.each([
    ["T2I", "image"],
    ["ti2i", "image"],
    ["I2V", "video"],
    ["I2M", "mesh"],
    ["V2V", "video"],
    ["F2V", "video"],
    ["VLA_ACTION", "action"],
    ["XYZ", "unknown"],
    [null, "unknown"],
  ] as const)("task type %s is a %s worker", (taskType, kind) => {
    expect(workerKind(taskType)).toBe(kind);
  });
});

describe("cost model", () => {
  const job = (side: number, steps = 50, outputs = 1) => ({ megapixels: (side * side) / (1 << 20), steps, latentFrames: 1, outputs, inputImages: 0 });
  /** A GPU whose cost is superlinear in pixels: 5 + 6·u·(1 + 0.8·mp). */
  const truth = (w: ReturnType<typeof job>) => 5 + 6 * w.megapixels * w.steps * w.outputs * (1 + 0.8 * w.megapixels);

  it("learns a superlinear shape, not only a factor, from mixed sizes", () => {
    const model = new CostModel();
    const sides = [256, 512, 768, 1024, 1536];
    for (let i = 0; i < 40; i++) {
      const w = job(sides[i % sides.length]!, [10, 30, 50][i % 3]);
      model.observe("http://a:1", "m", w, truth(w));
    }
    // Within 10%, or 5% of a default (1024², 50-step) request for small ones, where a few ms do not change a plan.
    const tolerance = (w: ReturnType<typeof job>) => Math.max(0.1 * truth(w), 0.05 * truth(job(1024)));
    for (const side of [384, 1280, 2048]) {
      const w = job(side);
      expect(Math.abs(model.predictMs("http://a:1", "m", w) - truth(w)), `side ${side}`).toBeLessThan(tolerance(w));
    }
  });

  it("stays put under outliers: one stalled request in ten does not move the fit", () => {
    const model = new CostModel();
    const sides = [512, 768, 1024];
    for (let i = 0; i < 60; i++) {
      const w = job(sides[i % 3]!);
      model.observe("http://a:1", "m", w, i % 10 === 5 ? truth(w) * 20 : truth(w));
    }
    const w = job(1024);
    expect(Math.abs(model.predictMs("http://a:1", "m", w) / truth(w) - 1)).toBeLessThan(0.1);
  });

  it("learns relative speed per worker; a new worker starts from the fleet's fit at the speed it shows on its other models", () => {
    const model = new CostModel();
    for (let i = 0; i < 30; i++) {
      const w = job([512, 1024][i % 2]!);
      model.observe("http://fast:1", "m", w, truth(w));
      model.observe("http://slow:1", "m", w, truth(w) * 2.5);
    }
    expect(Math.abs(model.snapshot("http://fast:1", "m").speed / model.snapshot("http://slow:1", "m").speed - 2.5)).toBeLessThan(0.15);
    const w = job(1024);
    expect(Math.abs(model.predictMs("http://slow:1", "m", w) / model.predictMs("http://fast:1", "m", w) - 2.5)).toBeLessThan(0.15);
    // A worker never seen: the fleet's fit.
    const fresh = model.predictMs("http://new:1", "m", w);
    expect(fresh).toBeGreaterThan(model.predictMs("http://fast:1", "m", w) * 0.9);
    expect(fresh).toBeLessThan(model.predictMs("http://slow:1", "m", w) * 1.1);
  });

  it("measures how much a worker's times scatter around its fit: 10% before it has 4 observations, then their robust spread", () => {
    const model = new CostModel();
    expect(model.snapshot("http://steady:1", "m").noise).toBe(0.1);
    for (let i = 0; i < 40; i++) {
      const w = job([512, 1024][i % 2]!);
      model.observe("http://steady:1", "m", w, truth(w));
      // +-20% around the truth, and a few stalls (of either size) that must not count.
      model.observe("http://jittery:1", "m", w, truth(w) * (i % 13 === 5 ? 5 : [0.8, 1, 1.2][i % 3]!));
    }
    expect(model.snapshot("http://steady:1", "m").noise).toBeLessThan(0.01);
    const jittery = model.snapshot("http://jittery:1", "m").noise;
    expect(jittery).toBeGreaterThan(0.1);
    expect(jittery).toBeLessThan(0.35);
  });

  it("ignores times that are not positive and finite; unknown work gets the typical cost", () => {
    const model = new CostModel();
    model.observe("http://a:1", "m", job(1024), Number.NaN);
    model.observe("http://a:1", "m", job(1024), -5);
    expect(model.snapshot("http://a:1", "m").observations).toBe(0);
    model.observe("http://a:1", "m", job(1024), 5000); // the first request: a cold start, not learned from
    expect(model.snapshot("http://a:1", "m").observations).toBe(0);
    model.observe("http://a:1", "m", job(1024), 300);
    expect(model.snapshot("http://a:1", "m").observations).toBe(1);
    expect(model.predictMs("http://a:1", "m", null)).toBeCloseTo(300, 0);
  });

  it("the shape fit keeps every term non-negative", () => {
    // Times that fall with size would need a negative slope.
    const points = [1, 2, 3, 4].map((u) => pointOf({ megapixels: 1, steps: u * 10, latentFrames: 1, outputs: 1, inputImages: 0 }));
    for (const v of fitShape(points, [99, 98, 97, 96], COLD_SHAPE).theta) expect(v).toBeGreaterThanOrEqual(0);
  });
});

describe("earliest-finish plan", () => {
  type W = "fast" | "slow";
  const state = (fast: Partial<PlanWorker>, slow: Partial<PlanWorker>) =>
    new Map<W, PlanWorker>([
      ["fast", { busyUntilMs: 0, freeSlots: 1, ...fast }],
      ["slow", { busyUntilMs: 0, freeSlots: 1, ...slow }],
    ]);
  const item = (ms: number) => ({ candidates: ["fast", "slow"] as W[], predictMs: (w: W) => (w === "fast" ? ms : ms * 2.5) });

  it.each([
    ["both free: the largest goes to the fast worker, the next to the slow one", [item(400), item(100)], state({}, {}), [[0, "fast"], [1, "slow"]]],
    ["a large request waits for a fast worker that frees soon rather than start on a slow free one", [item(400)], state({ busyUntilMs: 100, freeSlots: 0 }, {}), []],
    ["a small one behind it takes the slow worker meanwhile", [item(400), item(40)], state({ busyUntilMs: 100, freeSlots: 0 }, {}), [[1, "slow"]]],
    ["a fast worker busy for long: the slow free one is better", [item(100)], state({ busyUntilMs: 1000, freeSlots: 0 }, {}), [[0, "slow"]]],
    ["no free slot anywhere: nothing is sent", [item(100)], state({ freeSlots: 0 }, { freeSlots: 0 }), []],
  ] as const)("%s", (_name, items, st, expected) => {
    expect(planDispatch(items as never, st as Map<W, PlanWorker>, 0)).toEqual(expected);
  });

  // Two GPU kinds: the slow one is 1.5x slower on items 0, 3, 4 but 2.5x on items 1, 2.
  const kinds = ([fast, slow]: readonly [number, number]) => ({ candidates: ["fast", "slow"] as W[], predictMs: (w: W) => (w === "fast" ? fast : slow) });
  const twoKinds = ([[90, 135], [80, 200], [80, 200], [60, 90], [60, 90]] as const).map(kinds);

  it("two kinds: the queue is packed whole, so the largest request goes where it costs least relative to the other kind (makespan 225 instead of 290)", () => {
    expect(planDispatch(twoKinds as never, state({}, {}) as Map<W, PlanWorker>, 0)).toEqual([
      [0, "slow"],
      [1, "fast"],
    ]);
  });

  it("until every worker's costs are learned, only the first pass decides (largest first, earliest finish)", () => {
    expect(planDispatch(twoKinds as never, state({}, { learned: false }) as Map<W, PlanWorker>, 0)).toEqual([
      [0, "fast"],
      [2, "slow"],
    ]);
  });

  it("two free workers 20% apart: exact predictions pick the faster every time; with times that scatter 30%, both get requests", () => {
    const one = { candidates: ["fast", "slow"] as W[], predictMs: (w: W) => (w === "fast" ? 100 : 120) };
    const picks = (noise: number) => new Set(Array.from({ length: 4 }, (_, rotation) => planDispatch([one], state({ noise }, { noise }), 0, Infinity, rotation)[0]![1]));
    expect(picks(0)).toEqual(new Set(["fast"]));
    expect(picks(0.05)).toEqual(new Set(["fast"]));
    expect(picks(0.3)).toEqual(new Set(["fast", "slow"]));
    // The noisier of the two decides: one measured on a loaded host is enough.
    expect(new Set([0, 1].map((r) => planDispatch([one], state({}, { noise: 0.3 }), 0, Infinity, r)[0]![1]))).toEqual(new Set(["fast", "slow"]));
  });

  it("a worker 2.5x slower is never a tie, however noisy its times (noise is capped at 50%)", () => {
    const model = new CostModel();
    const work = { megapixels: 1, steps: 50, latentFrames: 1, outputs: 1, inputImages: 0 };
    for (let i = 0; i < 20; i++) model.observe("http://a:1", "m", work, [50, 100, 400, 800][i % 4]!);
    const noise = model.snapshot("http://a:1", "m").noise;
    expect(noise).toBe(0.5);
    expect(new Set([0, 1, 2, 3].map((r) => planDispatch([item(100)], state({ noise }, { noise }), 0, Infinity, r)[0]![1]))).toEqual(new Set(["fast"]));
  });

  it("priority: larger first; a request that waited long enough goes before a larger newer one", () => {
    expect(priorityKey(400, 0, 1)).toBeGreaterThan(priorityKey(100, 0, 1));
    expect(priorityKey(100, 0, 1)).toBeGreaterThan(priorityKey(400, 301, 1));
    expect(priorityKey(100, 0, 1)).toBeLessThan(priorityKey(400, 299, 1));
  });
});

describe("routing keys: consistent hashing with bounded load", () => {
  const workers = Array.from({ length: 8 }, (_, i) => ({ url: `http://10.0.0.${i}:8000` }));

  it("a key maps to one worker; a removed worker moves only its own keys", () => {
    const ring = new HashRing(workers);
    const keys = Array.from({ length: 400 }, (_, i) => `group-${i}`);
    const before = new Map(keys.map((k) => [k, ring.pick(k, () => 0)!.url]));
    const smaller = new HashRing(workers.slice(1));
    let moved = 0;
    for (const k of keys) {
      const now = smaller.pick(k, () => 0)!.url;
      if (now !== before.get(k)) {
        moved++;
        expect(before.get(k)).toBe(workers[0]!.url);
      }
    }
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(keys.length / 4);
  });

  it("no worker holds more than (1 + ε) × the average of keys, however they hash", () => {
    const ring = new HashRing(workers);
    const load = new Map<string, number>();
    for (let i = 0; i < 800; i++) {
      const w = ring.pick(`k${i}`, (x) => load.get(x.url) ?? 0, 0.25)!;
      load.set(w.url, (load.get(w.url) ?? 0) + 1);
    }
    expect(Math.max(...load.values())).toBeLessThanOrEqual(Math.ceil((1.25 * 800) / 8));
  });
});

describe("packing a queue (pack.ts)", () => {
  /** Random small problems: up to 7 items on up to 3 workers, some pairs not allowed, some work already there. */
  const problems = fc
    .record({ n: fc.integer({ min: 1, max: 7 }), w: fc.integer({ min: 1, max: 3 }) })
    .chain(({ n, w }) =>
      fc.record({
        n: fc.constant(n),
        w: fc.constant(w),
        base: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: w, maxLength: w }),
        cost: fc.array(fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 500 }) }, { weight: 1, arbitrary: fc.constant(Infinity) }), { minLength: n * w, maxLength: n * w }),
      }),
    )
    .map((r): PackProblem => ({ n: r.n, w: r.w, base: Float64Array.from(r.base), cost: Float64Array.from(r.cost) }));

  /** The optimum by trying every assignment. */
  function optimum(p: PackProblem): number {
    let best = Infinity;
    const assign = new Int32Array(p.n).fill(-1);
    const go = (i: number): void => {
      if (i === p.n) {
        best = Math.min(best, maxOf(loadsOf(p, assign)));
        return;
      }
      let any = false;
      for (let w = 0; w < p.w; w++) {
        if (p.cost[i * p.w + w] === Infinity) continue;
        any = true;
        assign[i] = w;
        go(i + 1);
      }
      if (!any) {
        assign[i] = -1;
        go(i + 1);
      }
    };
    go(0);
    return best;
  }

  it("never ends later than the plan it starts from, never uses a worker that may not serve an item, leaves no servable item out, and is never below the optimum", () => {
    fc.assert(
      fc.property(problems, (p) => {
        const order = Array.from({ length: p.n }, (_, i) => i);
        const start = greedyPack(p, order, 0);
        const packed = bestPacking(p, start, order, 100_000, 0);
        const ms = maxOf(loadsOf(p, packed));
        expect(ms).toBeLessThanOrEqual(maxOf(loadsOf(p, start)) + 1e-9);
        expect(ms).toBeGreaterThanOrEqual(optimum(p) - 1e-9);
        for (let i = 0; i < p.n; i++) {
          const servable = Array.from({ length: p.w }, (_, w) => p.cost[i * p.w + w]!).some((c) => c !== Infinity);
          if (!servable) expect(packed[i]).toBe(-1);
          else expect(p.cost[i * p.w + packed[i]!]).not.toBe(Infinity);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("plans sends no worker more requests than its free slots, and only requests it may serve", () => {
    fc.assert(
      fc.property(problems, fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 3 }), (p, free) => {
        const workers = Array.from({ length: p.w }, (_, w) => `w${w}`);
        const items = Array.from({ length: p.n }, (_, i) => ({
          candidates: workers.filter((_, w) => p.cost[i * p.w + w] !== Infinity),
          predictMs: (x: string) => p.cost[i * p.w + workers.indexOf(x)]!,
        }));
        const st = new Map(workers.map((x, w) => [x, { busyUntilMs: p.base[w]!, freeSlots: free[w]! }]));
        const sent = planDispatch(items, st, 0);
        const per = new Map<string, number>();
        for (const [i, x] of sent) {
          expect(items[i]!.candidates).toContain(x);
          per.set(x, (per.get(x) ?? 0) + 1);
        }
        for (const [x, k] of per) expect(k).toBeLessThanOrEqual(free[workers.indexOf(x)]!);
        expect(new Set(sent.map(([i]) => i)).size).toBe(sent.length);
      }),
      { numRuns: 300 },
    );
  });
});
