/**
 * Scheduling quality on virtual fleets (test/helpers/virtual-fleet.ts): the
 * router's real admission, cost model and planner, a fake clock, and GPUs
 * that run one request at a time. Makespan is compared with the bound the
 * fleet allows: max(total work / total speed, largest job / fastest GPU).
 */
import { describe, expect, it } from "vitest";
import { boundMs, mixedBurst, oracleMakespanMs, rng, VirtualFleet, type VirtualGpu } from "./helpers/virtual-fleet.js";

interface FleetCase {
  gpus: VirtualGpu[];
  maxN?: number;
  sizes?: string[];
  /** Required median ratio after the warm-up burst, and on the warm-up burst. */
  steady: number;
  warmup: number;
}

const mixedResolutions = ["512x512", "768x768", "1024x1024", "1536x1024", "1024x1536"];

const fleets: Record<string, FleetCase> = {
  "8 equal": { gpus: Array.from({ length: 8 }, () => ({ speed: 1 })), steady: 1.05, warmup: 1.15 },
  "6 fast + 2 at 0.4": { gpus: [...Array.from({ length: 6 }, () => ({ speed: 1 })), { speed: 0.4 }, { speed: 0.4 }], steady: 1.05, warmup: 1.15 },
  // The kinds of bench/lib/fleets.mjs: the second is slower and its cost grows faster with pixels.
  "4 + 4 of two GPU kinds, mixed resolutions": {
    gpus: [...Array.from({ length: 4 }, () => ({ speed: 1, attention: 0.3 })), ...Array.from({ length: 4 }, () => ({ speed: 0.7, attention: 1.0 }))],
    sizes: mixedResolutions,
    steady: 1.05,
    warmup: 1.15,
  },
  "three speed classes, up to 4 outputs": { gpus: [...Array.from({ length: 3 }, () => ({ speed: 1.5 })), ...Array.from({ length: 3 }, () => ({ speed: 1 })), { speed: 0.5 }, { speed: 0.5 }], maxN: 4, steady: 1.05, warmup: 1.15 },
  // A stress case beyond the fleets: one kind's attention cost is 7.5x the other's.
  "stress: 4 + 4 of very different shapes": {
    gpus: [...Array.from({ length: 4 }, () => ({ speed: 1.6, attention: 0.2 })), ...Array.from({ length: 4 }, () => ({ speed: 0.7, attention: 1.5 }))],
    steady: 1.08,
    warmup: 1.15,
  },
};

async function ratios(c: FleetCase, mode: "earliest-finish" | "policy" | "oracle", seed = 1): Promise<number[]> {
  const gpus = c.gpus;
  const fleet = new VirtualFleet(gpus, mode === "oracle" ? "policy" : mode);
  const random = rng(seed);
  const out: number[] = [];
  for (let b = 0; b < 4; b++) {
    const jobs = mixedBurst(random, 64, { ...(c.maxN ? { maxN: c.maxN } : {}), ...(c.sizes ? { sizes: c.sizes } : {}) });
    const makespanMs = mode === "oracle" ? oracleMakespanMs(gpus, jobs) : (await fleet.burst(jobs)).makespanMs;
    out.push(makespanMs / boundMs(gpus, jobs));
    fleet.nowMs += 1000;
  }
  return out;
}

describe("earliest-finish on virtual fleets", () => {
  for (const [name, c] of Object.entries(fleets)) {
    it(`${name}: warm-up burst <= ${c.warmup}x the bound, later bursts <= ${c.steady}x (median); least-request is far worse`, async () => {
      const ef = await ratios(c, "earliest-finish");
      const lr = await ratios(c, "policy");
      const oracle = await ratios(c, "oracle");
      console.log(name, "earliest-finish", ef.map((r) => r.toFixed(3)).join(" "), "| least-request", lr.map((r) => r.toFixed(3)).join(" "), "| oracle", oracle.map((r) => r.toFixed(3)).join(" "));
      expect(ef[0]).toBeLessThanOrEqual(c.warmup);
      const later = ef.slice(1).sort((a, b) => a - b);
      expect(later[1]).toBeLessThanOrEqual(c.steady);
      // The comparison that makes the figures mean something: the original's policy on the same bursts.
      const lrLater = lr.slice(1).sort((a, b) => a - b);
      if (!name.startsWith("8 equal")) expect(lrLater[1]).toBeGreaterThan(later[1]! * 1.2);
    });
  }
});
