/**
 * The router's batch key (`--worker-batch-size`: which requests it sends a
 * batching worker together) against the worker's own rule, as the simulated
 * worker implements SGLang's (managers/scheduler.py: every SamplingParams
 * field but prompt, seed, ids and output names, plus diffusers_kwargs; the
 * shape as resolved by the image route: `size` or `width`/`height`, the
 * model's default for a malformed size, `n` clamped to 1..10). Two bodies
 * must get equal router keys exactly when the worker would put them in one
 * batch: a stricter router loses batches, a looser one plans batches the
 * worker splits.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readRequestFacts } from "../src/scheduler/request-facts.js";
import { imageGenerationBatchKey } from "../src/sim/images.js";

const simOptions = { batchingMaxSize: 4, taskType: "T2I" } as const;

function routerKey(body: Record<string, unknown>): string | null {
  return readRequestFacts("image", body, null).batchKey;
}

/** The worker's key, or undefined for a body it refuses (422: never queued, never batched). */
function workerKey(body: Record<string, unknown>): string | null | undefined {
  try {
    return imageGenerationBatchKey(simOptions, body);
  } catch {
    return undefined;
  }
}

/** Per field, values a client sends: spellings of one thing, and different things. */
const pools: Record<string, unknown[]> = {
  seed: [1, 2, 1024],
  size: ["512x512", "512*512", " 512 x 512 ", "1024x1024", "512x768", "512X768", "bad", "512×512", "", null],
  width: [512, 768, 1024, "512"],
  height: [512, 768, 1024, "768"],
  num_inference_steps: [20, 50, "20", null],
  n: [1, 2, "2", 10, 12, 0, -1, null],
  guidance_scale: [4, 7.5, null],
  true_cfg_scale: [4, 5],
  negative_prompt: ["", "blurry", null],
  response_format: ["url", "b64_json"],
  output_format: ["png", "jpeg"],
  background: ["auto", "transparent"],
  model: ["Qwen/Qwen-Image", "other/model"],
  user: ["u1", "u2"],
  routing_key: ["k1", "k2"],
  request_id: ["r1", "r2"],
  enable_teacache: [true, false],
  generator_device: ["cuda", "cpu"],
  // Fields a model's contract may declare (unknown to the router): kept in both keys.
  flow_shift: [3, 5],
  diffusers_kwargs: [{ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }, { a: 2 }],
  // Fields the image route does not read: one frame, outputs from `n` only.
  num_frames: [1, 5],
  num_outputs_per_prompt: [1, 3],
  fps: [8, 24],
  num_images: [1, 4],
};
const fields = Object.keys(pools);

const bodyArb: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(fc.constantFrom("a cat", "a dog"), fc.subarray(fields), fc.array(fc.nat(), { minLength: fields.length, maxLength: fields.length }))
  .map(([prompt, present, picks]) => {
    const body: Record<string, unknown> = { prompt };
    for (const f of present) body[f] = pools[f]![picks[fields.indexOf(f)]! % pools[f]!.length];
    return body;
  });

/** A second body: the first with a few fields changed, added or removed (so equal keys are common). */
const pairArb = fc.tuple(bodyArb, fc.subarray(fields, { maxLength: 3 }), bodyArb).map(([a, changed, other]) => {
  const b: Record<string, unknown> = { ...a };
  for (const f of changed) {
    if (f in other) b[f] = other[f];
    else delete b[f];
  }
  return [a, b] as const;
});

describe("the router's batch key groups requests as the worker's signature does", () => {
  it("known cases of SGLang's rule", () => {
    const base = { prompt: "a cat", size: "512x512", num_inference_steps: 20 };
    const same = (a: object, b: object) => routerKey(a as Record<string, unknown>) === routerKey(b as Record<string, unknown>);
    // Spellings of one request shape batch together.
    expect(same(base, { prompt: "a dog", width: 512, height: 512, num_inference_steps: 20, seed: 7 })).toBe(true);
    expect(same(base, { ...base, size: "512*512" })).toBe(true);
    expect(same({ prompt: "x", num_inference_steps: 50 }, { prompt: "x", size: "oops" })).toBe(true); // malformed size: default size, default steps
    expect(same({ ...base, n: 12 }, { ...base, n: 10 })).toBe(true); // n clamped to 10
    expect(same({ ...base, n: 0 }, base)).toBe(true);
    // Fields that are not sampling parameters do not split a batch.
    expect(same({ ...base, routing_key: "k", user: "u", model: "m", response_format: "url", output_format: "jpeg" }, base)).toBe(true);
    expect(same({ ...base, guidance_scale: null }, base)).toBe(true); // null is not sent
    expect(same({ ...base, diffusers_kwargs: { a: 1, b: 2 } }, { ...base, diffusers_kwargs: { b: 2, a: 1 } })).toBe(true);
    // Sampling parameters do.
    expect(same({ ...base, guidance_scale: 7 }, base)).toBe(false);
    expect(same({ ...base, negative_prompt: "blurry" }, base)).toBe(false);
    expect(same({ ...base, n: 2 }, base)).toBe(false);
    expect(same({ ...base, size: "512x768" }, base)).toBe(false);
    expect(same({ ...base, flow_shift: 3 }, base)).toBe(false);
  });

  it("random bodies: equal router keys exactly when the simulated worker's signature is equal", () => {
    let equalPairs = 0;
    let comparedPairs = 0;
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const wa = workerKey(a);
        const wb = workerKey(b);
        if (wa === undefined || wb === undefined) return; // a 422: never batched
        expect(wa).not.toBeNull();
        comparedPairs++;
        const workerSame = wa === wb;
        if (workerSame) equalPairs++;
        expect({ a, b, sameBatch: routerKey(a) === routerKey(b) }).toEqual({ a, b, sameBatch: workerSame });
      }),
      { numRuns: 5000 },
    );
    // The property saw both outcomes many times (it could fail either way).
    expect(comparedPairs).toBeGreaterThan(2000);
    expect(equalPairs).toBeGreaterThan(300);
    expect(comparedPairs - equalPairs).toBeGreaterThan(300);
  });
});
