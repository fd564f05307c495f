/**
 * A straggler's copy starts once the original is overdue (issue 20, the
 * straggler fleet), over real sockets: two sims at a tenth of the default
 * speed (a ~1 s request, as a small GPU request), learned by the router; then
 * one turns 3.5x slower behind the router's back. The pair's request on it
 * is overdue at max(1.25 x, + 0.5 s) its prediction (~1.5 s); a copy on the
 * idle fast worker then ends at ~2.5 s, before the straggler's ~3.6 s, and
 * is the client's answer. Before, a copy of an equal-speed worker was worth
 * it only at 2 x (its time + 0.5 s) = ~3 s, ended at ~4.1 s and lost: the
 * client waited for the straggler (the bench's 3.4x burst, docs/benchmarks.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generations, hedgeMetrics, image, large, lines, pairWithSlow, setSpeed, simStats, stopAll } from "./helpers/hedge.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

/** ~1 s for the large image (about 100 ms at speed 1). */
const SPEED = 0.1;
/** 3.5x slower: ~3.6 s. */
const SLOW = SPEED / 3.5;

describe("a straggler 3.5x slower than learned, an idle fast worker", () => {
  let sims: SimProcess[];
  let router: RouterProcess;
  beforeAll(async () => {
    sims = await Promise.all([startSimProcess(["--speed", String(SPEED)]), startSimProcess(["--speed", String(SPEED)])]);
    router = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
    await waitFor(async () => (await jsonRequest(`${router.url}/workers`)).body.workers.every((w: any) => w.task_type !== null), 10_000, "model cards probed");
    // Pairs at once, so both workers learn the large image's time (a lone request goes to the one predicted faster).
    for (let i = 0; i < 12; i++) {
      await Promise.all([0, 1].map((k) => image(router, { ...large, seed: 1000 + 2 * i + k }, `warm-${i}-${k}`)));
      const workers = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
      if (i >= 4 && workers.every((w) => w.speed_observations >= 4)) break;
    }
  }, 60_000);
  afterAll(() => stopAll(router, sims));

  it("the overdue straggler's copy on the fast worker is the client's answer, before the straggler's own", async () => {
    const [slow, fast] = sims as [SimProcess, SimProcess];
    const before = await hedgeMetrics(router);
    await setSpeed(slow, SLOW);
    const { pair, prefix } = await pairWithSlow(router, slow, large, "overdue");
    const slowBefore = await simStats(slow);
    const answers = await Promise.all(pair);
    const slowNow = await simStats(slow);

    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    // Both answers from the fast worker: its own, and the copy of the straggler's request.
    expect(answers.map((a) => a.worker)).toEqual([fast.url, fast.url]);
    // The straggler had not finished its request when the client had the copy's answer (and got no other).
    expect(slowNow.generations_run).toBe(slowBefore.generations_run);
    expect(generations(slowNow)).toBe(generations(slowBefore));
    await waitFor(() => lines(router, prefix).length === 2, 15_000, "both access-log lines");
    expect(lines(router, prefix).filter((l) => l.hedge !== undefined).map((l) => [l.hedge, l.hedgeWorker])).toEqual([["copy", fast.url]]);
    const after = await hedgeMetrics(router);
    expect(after.started - before.started).toBe(1);
    expect(after.won - before.won).toBe(1);
    // The cut original still runs to its end on the straggler's GPU (SGLang has no abort).
    await waitFor(async () => (await simStats(slow)).generations_run > slowBefore.generations_run, 20_000, "the cut generation ran to its end");
  }, 60_000);
});
