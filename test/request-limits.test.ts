/** The request limits as a table: which field, which value, which flag the 400 names. */
import { describe, expect, it } from "vitest";
import { defaultRequestLimits, limitViolation } from "../src/scheduler/request-limits.js";

describe("request limits", () => {
  it.each([
    [{ num_outputs_per_prompt: 1_000_000 }, "num_outputs_per_prompt", /num_outputs_per_prompt is 1000000, over the router's limit of 64 \(--max-outputs-per-request\)/],
    [{ n: 65 }, "n", /n is 65, over the router's limit of 64/],
    [{ width: 9000, height: 512 }, "width", /width is 9000, over the router's limit of 8192 \(--max-image-side\)/],
    [{ size: "1024x9000" }, "size", /size is 1024x9000/],
    [{ num_inference_steps: "5000" }, "num_inference_steps", /--max-inference-steps/],
    [{ num_frames: 5000 }, "num_frames", /num_frames is 5000, over the router's limit of 1024 \(--max-frames\)/],
    [{ seconds: 60, fps: 24 }, "seconds", /1440 frames, over the router's limit of 1024/],
  ])("%j is refused naming %s", (body, param, message) => {
    const err = limitViolation(body, defaultRequestLimits);
    expect(err?.status).toBe(400);
    expect(err?.code).toBe("invalid_request");
    expect(err?.details.param).toBe(param);
    expect(err?.message).toMatch(message);
  });

  it.each([
    [{}],
    [{ n: 64, num_outputs_per_prompt: 8, width: 8192, height: 8192, num_inference_steps: 1000, num_frames: 1024 }],
    [{ size: "1024x1024", seconds: 4, fps: 24 }],
    [{ size: "not a size", n: "many", width: -5 }],
  ])("%j passes", (body) => {
    expect(limitViolation(body, defaultRequestLimits)).toBeNull();
  });

  it("0 means no limit", () => {
    expect(limitViolation({ num_outputs_per_prompt: 1_000_000, width: 99_999, num_frames: 1e6 }, { maxOutputs: 0, maxSide: 0, maxSteps: 0, maxFrames: 0 })).toBeNull();
  });
});
