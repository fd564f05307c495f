/**
 * What the hedged-tails tests over sockets share (test/hedge*.test.ts): a
 * pair of sims the router has learned, requests that name their id, the
 * router's hedge counters, and a pair of requests one of which runs on the
 * slow worker.
 */
import { expect } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./router.js";
import { startSimProcess, type SimProcess } from "./sim.js";

/** About 12 ms of GPU time on a sim at speed 1. */
export const small = { prompt: "a cat", size: "256x256", num_inference_steps: 20, response_format: "url" };
/** About 100 ms at speed 1: a copy of a straggler becomes worth it only ~0.6 s in (overdue from its prediction + 0.5 s, hedge.ts), time enough for a test to act first. */
export const large = { prompt: "a river", size: "512x512", num_inference_steps: 50, response_format: "url" };

export interface Answer {
  status: number;
  worker: string;
  requestId: string;
  version: string | null;
  body: any;
}

export async function image(router: RouterProcess, body: Record<string, unknown>, requestId: string): Promise<Answer> {
  const r = await fetch(`${router.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": requestId }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, worker: r.headers.get("x-sim-worker") ?? "", requestId, version: r.headers.get("x-weight-version"), body: text.startsWith("{") ? JSON.parse(text) : text };
}

export async function simStats(sim: SimProcess): Promise<any> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}

export const GEN = "POST /v1/images/generations";

/** Image generations the sim received. */
export function generations(stats: any): number {
  return stats.requests_by_route[GEN] ?? 0;
}

export async function setSpeed(sim: SimProcess, speed: number): Promise<void> {
  expect((await jsonRequest(`${sim.url}/sim/config`, { method: "POST", json: { speed } })).status).toBe(200);
}

/** The router's hedge counters: copies started, and ended by outcome. */
export async function hedgeMetrics(router: RouterProcess): Promise<{ started: number; won: number; cut: number; failed: number }> {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  const read = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
  return {
    started: read(/^sgl_router_hedge_copies_started_total (\d+)$/m),
    won: read(/^sgl_router_hedge_copies_ended_total\{outcome="won"\} (\d+)$/m),
    cut: read(/^sgl_router_hedge_copies_ended_total\{outcome="cut"\} (\d+)$/m),
    failed: read(/^sgl_router_hedge_copies_ended_total\{outcome="failed"\} (\d+)$/m),
  };
}

/**
 * Two fast sims and a router that learned both (each worker's first answer
 * is not an observation); `others` (sims of other models) are registered
 * too, not warmed up.
 */
export async function learnedPair(extraArgs: string[] = [], others: SimProcess[] = []): Promise<{ sims: SimProcess[]; router: RouterProcess }> {
  const sims = await Promise.all([startSimProcess(), startSimProcess()]);
  const router = await startRouterProcess(["--worker-urls", ...[...sims, ...others].map((s) => s.url), ...extraArgs]);
  await waitFor(async () => (await jsonRequest(`${router.url}/workers`)).body.workers.every((w: any) => w.task_type !== null), 10_000, "model cards probed");
  // Both sizes the tests use, so each worker's predictions of them are learned, not extrapolated;
  // pairs at once, so both workers get work (lone requests all go to the one predicted faster).
  for (let i = 0; i < 20; i++) {
    const body = i % 2 === 0 ? small : large;
    await Promise.all([0, 1].map((k) => image(router, { ...body, seed: 1000 + 2 * i + k }, `warm-${i}-${k}`)));
    const workers = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
    if (i >= 7 && workers.filter((w) => sims.some((s) => s.url === w.url)).every((w) => w.speed_observations >= 6)) break;
  }
  return { sims, router };
}

export async function stopAll(router: RouterProcess | undefined, sims: SimProcess[] | undefined): Promise<void> {
  await router?.stop();
  await Promise.all((sims ?? []).map((s) => s.stop()));
}

/**
 * Sends a pair of `body` requests at once (one per idle worker, as a rule)
 * until one of a pair runs on `slow`: learned speeds scatter on a busy host,
 * and a pair may both go to the other worker. Resolves, once the slow worker
 * has its request, with that pair's pending answers and its request-id prefix.
 */
export async function pairWithSlow(router: RouterProcess, slow: SimProcess, body: Record<string, unknown>, tag: string, seeded = true): Promise<{ pair: Promise<Answer>[]; prefix: string }> {
  for (let i = 0; i < 6; i++) {
    const before = generations(await simStats(slow));
    const prefix = `${tag}-${i}-`;
    const pair = [1, 2].map((k) => image(router, seeded ? { ...body, seed: 100 * i + k } : body, `${prefix}${k}`));
    const both = Promise.all(pair).then(() => "done" as const);
    const seen = await waitFor(async () => (generations(await simStats(slow)) > before ? ("slow" as const) : await Promise.race([both, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5))])), 20_000, "the pair reached the workers");
    if (seen === "slow") return { pair, prefix };
  }
  throw new Error("no pair of 6 put a request on the slow worker");
}

/** The access log's lines of requests whose id starts with `tag`. */
export function lines(router: RouterProcess, tag: string): any[] {
  return router.logs.filter((l) => l.msg === "request" && String(l.requestId).startsWith(tag));
}
