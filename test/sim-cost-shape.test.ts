/**
 * The simulated worker's sim-only cost shape (issue 20's benches): a fixed
 * cost per output (`--output-ms`) and a pixel exponent (`--pixel-exponent`).
 * The formula in process, then the flags on a sim process: its generation
 * takes at least the formula's time and bad values are refused at start.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { generationMs, resolveOptions } from "../src/sim/index.js";
import { simCliPath, startSimProcess } from "./helpers/sim.js";

const work = (side: number, outputs = 1) => ({ width: side, height: side, steps: 20, frames: 1, outputs });

describe("sim cost shape", () => {
  it("the default shape is the plain formula; a cost per output adds outputs x ms; the exponent bends pixels around 1024x1024", () => {
    expect(generationMs(work(1024, 3), 1, 0, {})).toBe(generationMs(work(1024, 3), 1));
    expect(generationMs(work(512, 3), 2, 0, { outputMs: 100 }) - generationMs(work(512, 3), 2)).toBeCloseTo(150, 6);
    // At 1024x1024 the exponent changes nothing; at 2048x2048 the pixel part is 4^1.4 (7.0x) a 1024² one instead of 4x.
    expect(generationMs(work(1024), 1, 0, { pixelExponent: 1.4 })).toBeCloseTo(generationMs(work(1024), 1), 6);
    const pixelPart = (side: number, e: number) => generationMs(work(side), 1, 0, { pixelExponent: e }) - 2;
    expect(pixelPart(2048, 1.4) / pixelPart(1024, 1.4)).toBeCloseTo(Math.pow(4, 1.4), 6);
    expect(pixelPart(2048, 1) / pixelPart(1024, 1)).toBeCloseTo(4, 6);
  });

  it("refuses a negative cost per output and an exponent outside (0, 3]", () => {
    expect(() => resolveOptions({ costShape: { outputMs: -1 } })).toThrow(/outputMs/);
    expect(() => resolveOptions({ costShape: { pixelExponent: 0 } })).toThrow(/pixelExponent/);
    expect(() => resolveOptions({ costShape: { pixelExponent: 4 } })).toThrow(/pixelExponent/);
    const bad = spawnSync(process.execPath, [simCliPath, "--pixel-exponent", "0"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("pixelExponent");
  });

  it("a sim started with --output-ms and --pixel-exponent takes at least the formula's time for a 2048x2048, 2-output image", async () => {
    const sim = await startSimProcess(["--output-ms", "40", "--pixel-exponent", "1.4", "--speed", "4"]);
    try {
      const res = await fetch(`${sim.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "x", size: "2048x2048", num_inference_steps: 5, n: 2 }) });
      expect(res.status).toBe(200);
      const { inference_time_s } = (await res.json()) as { inference_time_s: number };
      const expected = generationMs({ width: 2048, height: 2048, steps: 5, frames: 1, outputs: 2 }, 4, 0, { outputMs: 40, pixelExponent: 1.4 });
      // 20 ms of outputs and 2 x 7.0 x 40 ms of pixels at speed 4: far from the plain formula's 82 ms.
      expect(inference_time_s * 1000).toBeGreaterThanOrEqual(expected - 5);
      expect(expected).toBeGreaterThan(1.5 * generationMs({ width: 2048, height: 2048, steps: 5, frames: 1, outputs: 2 }, 4));
    } finally {
      await sim.stop();
    }
  });
});
