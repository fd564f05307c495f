// A batching fleet's bench bursts (bench/lib/fleets.mjs; \`signatures\` at --quick --slowdown 3 by default) in the virtual fleet
// (test/helpers/virtual-fleet.ts: the router's real admission and planner, virtual time, 1 ms of
// router CPU per event), against the bound and the offline batch plan (bench/lib/batch-plan.mjs).
// Needs a build (the sim's formula comes from dist). Per seed: burst 0 (the warm-up) to 3, each
// "ratio to the bound/ratio to the offline plan"; then the medians of burst 1 and of bursts 1-3.
//
//   npx vite-node bench/virtual-signatures.ts        env: SEEDS (6), DELAY (the sims' 20 ms), PERTURN (arrivals per turn; all),
//     FLEET (signatures; or batching), SIZE (burst size factor: 0.5 = --quick), SLOWDOWN (3),
//     TRACE=1 (per burst: how many batches of each size ran per signature, and each GPU's batches: size@start-end, sent)
import { FLEETS, lowerBound, rng as brng } from "./lib/fleets.mjs";
import { batchPlan } from "./lib/batch-plan.mjs";
import { VirtualFleet } from "../test/helpers/virtual-fleet.js";
const delay = Number(process.env.DELAY ?? 20);
const perTurn = process.env.PERTURN ? Number(process.env.PERTURN) : undefined;
const slowdown = Number(process.env.SLOWDOWN ?? 3);
const name = process.env.FLEET ?? "signatures";
const size = Number(process.env.SIZE ?? 0.5);
const fleet = (FLEETS as Record<string, any>)[name];
const workers = fleet.workers.map((w: any) => ({ ...w, speed: w.speed / slowdown }));
const rows: string[] = [];
const firsts: number[] = [], laters: number[] = [], firstsRef: number[] = [], latersRef: number[] = [];
for (let seed = 1; seed <= Number(process.env.SEEDS ?? 6); seed++) {
  const vf = new VirtualFleet(workers.map(() => ({ speed: 1 / slowdown, batching: 4, batchingDelayMs: delay })), "earliest-finish", { workerBatchSize: 4, ...(perTurn ? { arrivalsPerTurn: perTurn } : {}) });
  const out: string[] = [];
  for (let b = 0; b < 4; b++) {
    const jobs = fleet.burst(brng(`${name}/${seed * 10 + b}`), size);
    const bound = lowerBound(jobs, workers);
    const ref = batchPlan(jobs, workers).ms;
    const from = vf.trace.length;
    const t0 = vf.nowMs;
    const { makespanMs } = await vf.burst(jobs.map((j: any) => ({ body: j.body })));
    if (process.env.TRACE) trace(vf.trace.slice(from), t0, `seed ${seed} burst ${b}: ${(makespanMs / bound).toFixed(3)} of the bound ${Math.round(bound)} ms`);
    vf.nowMs += 2000;
    out.push(`${(makespanMs / bound).toFixed(3)}/${(makespanMs / ref).toFixed(3)}`);
    if (b === 1) { firsts.push(makespanMs / bound); firstsRef.push(makespanMs / ref); }
    if (b >= 1) { laters.push(makespanMs / bound); latersRef.push(makespanMs / ref); }
  }
  rows.push(`seed ${seed}: ${out.join("  ")}`);
}
/** Batch sizes run per signature (size of a batch: count of batches), and per GPU its batches (size@start-end, ms from the burst's start). */
function trace(entries: any[], t0: number, title: string): void {
  const sizes = new Map<string, Map<number, number>>();
  const perGpu = new Map<number, Map<number, string>>();
  for (const e of entries) {
    const sig = `${e.body.size}x${e.body.num_inference_steps}x${e.body.n}`;
    const m = sizes.get(sig) ?? new Map<number, number>();
    sizes.set(sig, m);
    const b = e.batch ?? 1;
    m.set(b, (m.get(b) ?? 0) + 1 / b);
    const g = perGpu.get(e.worker) ?? new Map<number, string>();
    perGpu.set(e.worker, g);
    g.set(e.startMs, `${e.body.size}:${b}@${Math.round(e.startMs - t0)}-${Math.round(e.endMs - t0)}(sent ${Math.round(e.sentMs - t0)})`);
  }
  console.log(`  ${title}`);
  for (const [sig, m] of sizes) console.log(`    ${sig}: ${[...m].sort((x, y) => x[0] - y[0]).map(([b, c]) => `${Math.round(c)}x b${b}`).join(", ")}`);
  for (const [w, g] of [...perGpu].sort((x, y) => x[0] - y[0])) console.log(`    gpu ${w}: ${[...g].sort((x, y) => x[0] - y[0]).map((x) => x[1]).join("  ")}`);
}
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
console.log(rows.join("\n"));
console.log(`${name} x${size} slowdown ${slowdown}: delay ${delay} perTurn ${perTurn ?? "all"}: first after warm-up median ${med(firsts).toFixed(3)} (ref ${med(firstsRef).toFixed(3)}); bursts 1-3 median ${med(laters).toFixed(3)} (ref ${med(latersRef).toFixed(3)})`);
