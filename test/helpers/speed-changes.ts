import { oracleMakespanMs, VirtualFleet, type Job, type VirtualGpu } from "./virtual-fleet.js";

/** A virtual fleet whose workers change speed between bursts, unknown to the router (the bench's drift and straggler fleets). */
export interface SpeedChanges {
  /** Every worker's shape; its speed is multiplied by `factor(burst, worker)`. */
  readonly base: VirtualGpu;
  readonly workers: number;
  readonly factor: (burst: number, worker: number) => number;
  readonly bursts: number;
  /** Idle virtual time after each burst: long enough and every worker is stale at the next (LoadBook.staleIdle). */
  readonly gapMs: number;
  readonly arrivalsPerTurn: number;
  /** Draws burst b's jobs (seeded by the caller). */
  readonly burst: (b: number) => Job[];
}

/** Each burst's makespan over offline LPT knowing that burst's speeds; burst 0 is the warm-up. */
export async function speedChangeRatios({ base, workers, factor, bursts, gapMs, arrivalsPerTurn, burst }: SpeedChanges): Promise<number[]> {
  const fleet = new VirtualFleet(Array.from({ length: workers }, () => base), "earliest-finish", { arrivalsPerTurn });
  const urls = [...fleet.gpus.keys()];
  const ratios: number[] = [];
  for (let b = 0; b < bursts; b++) {
    const gpus = urls.map((w, i) => {
      const gpu = fleet.gpus.get(w)!;
      gpu.speed = base.speed * factor(b, i);
      return { ...base, speed: gpu.speed };
    });
    const jobs = burst(b);
    const { makespanMs } = await fleet.burst(jobs);
    ratios.push(makespanMs / oracleMakespanMs(gpus, jobs));
    fleet.nowMs += gapMs;
  }
  return ratios;
}
