// The bench's \`signatures\` bursts (bench/lib/fleets.mjs, --quick --slowdown 3) in the virtual fleet
// (test/helpers/virtual-fleet.ts: the router's real admission and planner, virtual time, 1 ms of
// router CPU per event), against the bound and the offline batch plan (bench/lib/batch-plan.mjs).
// Needs a build (the sim's formula comes from dist). Per seed: burst 0 (the warm-up) to 3, each
// "ratio to the bound/ratio to the offline plan"; then the medians of burst 1 and of bursts 1-3.
//
//   npx vite-node bench/virtual-signatures.ts        env: SEEDS (6), DELAY (the sims' 20 ms), PERTURN (arrivals per turn; all)
import { FLEETS, lowerBound, rng as brng } from "./lib/fleets.mjs";
import { batchPlan } from "./lib/batch-plan.mjs";
import { VirtualFleet } from "../test/helpers/virtual-fleet.js";
const delay = Number(process.env.DELAY ?? 20);
const perTurn = process.env.PERTURN ? Number(process.env.PERTURN) : undefined;
const slowdown = 3;
const fleet = FLEETS.signatures;
const workers = fleet.workers.map((w: any) => ({ ...w, speed: w.speed / slowdown }));
const rows: string[] = [];
const firsts: number[] = [], laters: number[] = [], firstsRef: number[] = [], latersRef: number[] = [];
for (let seed = 1; seed <= Number(process.env.SEEDS ?? 6); seed++) {
  const vf = new VirtualFleet(workers.map(() => ({ speed: 1 / slowdown, batching: 4, batchingDelayMs: delay })), "earliest-finish", { workerBatchSize: 4, ...(perTurn ? { arrivalsPerTurn: perTurn } : {}) });
  const out: string[] = [];
  for (let b = 0; b < 4; b++) {
    const jobs = fleet.burst(brng(`signatures/${seed * 10 + b}`), 0.5);
    const bound = lowerBound(jobs, workers);
    const ref = batchPlan(jobs, workers).ms;
    const { makespanMs } = await vf.burst(jobs.map((j: any) => ({ body: j.body })));
    vf.nowMs += 2000;
    out.push(`${(makespanMs / bound).toFixed(3)}/${(makespanMs / ref).toFixed(3)}`);
    if (b === 1) { firsts.push(makespanMs / bound); firstsRef.push(makespanMs / ref); }
    if (b >= 1) { laters.push(makespanMs / bound); latersRef.push(makespanMs / ref); }
  }
  rows.push(`seed ${seed}: ${out.join("  ")}`);
}
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
console.log(rows.join("\n"));
console.log(`delay ${delay} perTurn ${perTurn ?? "all"}: first after warm-up median ${med(firsts).toFixed(3)} (ref ${med(firstsRef).toFixed(3)}); bursts 1-3 median ${med(laters).toFixed(3)} (ref ${med(latersRef).toFixed(3)})`);
