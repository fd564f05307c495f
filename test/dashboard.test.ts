/**
 * The live dashboard in a real headless browser (Debian's chromium driven by
 * playwright-core): the page loads from the router, shows the workers, and
 * changes within 2 s when a worker is removed or a refit runs, each action
 * with its arguments; with an admin key and none typed it is read-only from
 * /metrics and asks for the key only when the operator clicks for it; a
 * launched worker past max_restarts stays on it as failed. Skipped, naming the package, where chromium
 * is not installed (.ci/run installs it).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { binaryTool, needTools } from "./helpers/tools.js";

const browserTool = binaryTool("chromium", "chromium");
let browser: Browser | undefined;
let sims: SimProcess[] = [];
let cleanup: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  if (browserTool.path === undefined) return;
  browser = await chromium.launch({ executablePath: browserTool.path, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  sims = await Promise.all([startSimProcess(["--model-path", "Qwen/Qwen-Image"]), startSimProcess(["--model-path", "black-forest-labs/FLUX.1-dev"])]);
}, 60_000);
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});
afterAll(async () => {
  await browser?.close();
  await Promise.all(sims.map((s) => s.stop()));
});

async function open(r: RouterProcess): Promise<Page> {
  const page = await browser!.newPage();
  cleanup.push(() => page.close());
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  cleanup.push(() => expect(errors, "no script errors in the page").toEqual([]));
  await page.goto(`${r.url}/dashboard`);
  return page;
}

const rowOf = (page: Page, url: string) => page.locator(`#workers tbody tr[data-url="${url}"]`);

describe("GET /dashboard in headless chromium", () => {
  it("shows every worker with state, model and weight version; a removal and a refit show within 2 s", async (ctx) => {
    needTools(ctx, browserTool);
    const r = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
    cleanup.push(() => r.stop());
    const page = await open(r);

    // The page's own security header: only its own scripts.
    const res = await fetch(`${r.url}/dashboard`);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");

    await expect.poll(() => page.locator("#workers tbody tr").count(), { timeout: 5000 }).toBe(2);
    await expect.poll(() => page.locator("#live").textContent(), { timeout: 5000 }).toBe("live");
    const first = rowOf(page, sims[0]!.url);
    expect(await first.locator('td[data-field="state"]').textContent()).toBe("healthy");
    expect(await first.textContent()).toContain("Qwen/Qwen-Image");
    // Nothing observed yet: the fleet's speed, with the scatter assumed before 4 observations.
    expect(await first.locator('td[data-field="speed"]').textContent()).toBe("1.00 ±10%");
    expect(await rowOf(page, sims[1]!.url).textContent()).toContain("black-forest-labs/FLUX.1-dev");
    expect(await page.locator("#pool-version").textContent()).toBe("0");

    // A worker removed through REST disappears from the page within 2 s.
    let t0 = Date.now();
    expect((await jsonRequest(`${r.url}/workers/${encodeURIComponent(sims[1]!.url)}`, { method: "DELETE" })).status).toBe(200);
    await expect.poll(() => rowOf(page, sims[1]!.url).count(), { timeout: 2000, interval: 50 }).toBe(0);
    const removalMs = Date.now() - t0;

    // A refit: the new version on the worker row and the pool card, and the action in the list, within 2 s.
    t0 = Date.now();
    const refit = await jsonRequest(`${r.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "ckpt/step-9", weight_version: "step-9" } });
    expect(refit.status).toBe(200);
    await expect.poll(() => first.locator('td[data-field="weight_version"]').textContent(), { timeout: 2000, interval: 50 }).toBe("step-9");
    await expect.poll(() => page.locator("#pool-version").textContent(), { timeout: 2000, interval: 50 }).toBe("step-9");
    await expect.poll(() => page.locator('#actions tbody tr[data-action="refit.from_disk"]').count(), { timeout: 2000, interval: 50 }).toBe(1);
    const refitMs = Date.now() - t0;
    expect(await page.locator('#actions tbody tr[data-action="refit.from_disk"]').textContent()).toContain("ok");
    // Each action says what it acted on: which worker, which weights.
    expect(await page.locator('#actions tbody tr[data-action="worker.remove"] td[data-field="args"]').textContent()).toContain(`url=${sims[1]!.url}`);
    expect(await page.locator('#actions tbody tr[data-action="refit.from_disk"] td[data-field="args"]').textContent()).toContain("ckpt/step-9");
    console.log(`dashboard: removal shown after ${removalMs} ms, refit after ${refitMs} ms`);

    // Re-register it for the next test.
    await jsonRequest(`${r.url}/workers`, { method: "POST", json: { url: sims[1]!.url } });
  }, 60_000);

  it("a two-phase refit shows open within 2 s of its begin and idle within 2 s of its abort, with both actions", async (ctx) => {
    needTools(ctx, browserTool);
    const r = await startRouterProcess(["--worker-urls", sims[0]!.url]);
    cleanup.push(() => r.stop());
    const page = await open(r);
    await expect.poll(() => page.locator("#workers tbody tr").count(), { timeout: 5000 }).toBe(1);
    await expect.poll(() => page.locator("#refit-phase").textContent(), { timeout: 5000 }).toBe("idle");

    // Begin and abort change no worker (no WatchWorkers event): the page's poll must show them.
    let t0 = Date.now();
    const begin = await jsonRequest(`${r.url}/refit/begin`, { method: "POST", json: {} });
    expect(begin.status).toBe(200);
    await expect.poll(() => page.locator("#refit-phase").textContent(), { timeout: 2000, interval: 50 }).toBe("tensor refit: open");
    const beginMs = Date.now() - t0;
    expect(await page.locator("#refit-detail").textContent()).toMatch(/started \d+ s ago/);
    await expect.poll(() => page.locator('#actions tbody tr[data-action="refit.begin"]').count(), { timeout: 2000, interval: 50 }).toBe(1);

    t0 = Date.now();
    expect((await jsonRequest(`${r.url}/refit/abort`, { method: "POST", json: {} })).status).toBe(200);
    await expect.poll(() => page.locator("#refit-phase").textContent(), { timeout: 2000, interval: 50 }).toBe("idle");
    await expect.poll(() => page.locator('#actions tbody tr[data-action="refit.abort"]').count(), { timeout: 2000, interval: 50 }).toBe(1);
    console.log(`dashboard: refit begin shown after ${beginMs} ms, abort after ${Date.now() - t0} ms`);
  }, 60_000);

  it("the rollout panel shows a running job (items done, groups complete) within 2 s, and drops it within 2 s of its end", async (ctx) => {
    needTools(ctx, browserTool);
    const r = await startRouterProcess(["--admin-api-key", "dash-secret", "--worker-urls", sims[0]!.url]);
    cleanup.push(() => r.stop());
    const page = await browser!.newPage();
    cleanup.push(() => page.close());
    // The key as app.js keeps it once typed (its form is tested below).
    await page.addInitScript({ content: 'sessionStorage.setItem("sgl-d-router-admin-key", "dash-secret")' });
    await page.goto(`${r.url}/dashboard`);
    await expect.poll(() => page.locator("#no-rollouts").isVisible(), { timeout: 5000 }).toBe(true);
    expect(await page.locator("#rollout-count").textContent()).toBe("0");

    const slow = (speed: number) => jsonRequest(`${sims[0]!.url}/sim/config`, { method: "POST", json: { speed } });
    await slow(0.005); // ~400 ms per item: the job runs for seconds
    cleanup.push(() => slow(1));
    const requests = Array.from({ length: 16 }, (_, i) => ({ path: "/v1/images/generations", group: `prompt-${i % 2}`, body: { model: "Qwen/Qwen-Image", prompt: "a cat", seed: i, size: "64x64", num_inference_steps: 2 } }));
    const job = fetch(`${r.url}/v1/rollouts`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ requests }) }).then((res) => res.text());
    const listed = await waitFor(async () => (await jsonRequest(`${r.url}/rollouts`, { headers: { authorization: "Bearer dash-secret" } })).body.rollouts[0], 15_000, "the job running");
    const t0 = Date.now();
    const row = page.locator(`#rollouts tbody tr[data-id="${listed.id}"]`);
    await expect.poll(() => row.count(), { timeout: 2000, interval: 50 }).toBe(1);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await row.locator('td[data-field="groups"]').textContent()).toMatch(/^[0-2] \/ 2$/);
    expect(await row.locator('td[data-field="items"]').textContent()).toMatch(/^\d+ \/ 16$/);
    expect(await page.locator("#rollout-count").textContent()).toBe("1");

    await jsonRequest(`${r.url}/v1/rollouts/${listed.id}/cancel`, { method: "POST" });
    await job;
    const t1 = Date.now();
    await expect.poll(() => row.count(), { timeout: 2000, interval: 50 }).toBe(0);
    expect(Date.now() - t1).toBeLessThan(2000);
    expect(await page.locator("#no-rollouts").isVisible()).toBe(true);
  }, 60_000);

  it("with --admin-api-key and no key the page is read-only (workers, requests, refusals), asks for the key only when clicked, says when one is refused", async (ctx) => {
    needTools(ctx, browserTool);
    const r = await startRouterProcess(["--admin-api-key", "dash-secret", "--worker-urls", sims[0]!.url]);
    cleanup.push(() => r.stop());
    // A script with a stale key: one refusal the operator should see.
    expect((await jsonRequest(`${r.url}/workers`, { headers: { authorization: "Bearer stale" } })).status).toBe(401);
    const page = await open(r);
    await expect.poll(() => page.locator("#readonly").isVisible(), { timeout: 5000 }).toBe(true);
    const host = sims[0]!.url.replace("http://", "");
    await expect.poll(() => page.locator("#workers tbody tr").count(), { timeout: 5000 }).toBe(1);
    expect(await page.locator(`#workers tbody tr[data-url="${host}"] td[data-field="state"]`).textContent()).toBe("healthy");
    expect(Number(await page.locator("#refusals").textContent())).toBeGreaterThanOrEqual(1);
    expect(await page.locator("#request-counts").textContent()).toBe("0 / 0");
    // No form until asked, and the page's own reads were not refused (only /metrics, open).
    expect(await page.locator("#auth").isVisible()).toBe(false);
    expect(r.logs.filter((l) => l.audit === "refused" && (l as any).args?.route !== "GET /workers").map((l) => (l as any).args)).toEqual([]);
    await page.click("#want-key");
    expect(await page.locator("#auth").isVisible()).toBe(true);
    expect(await page.locator("#key-refused").isVisible()).toBe(false);

    await page.fill("#key", "wrong-key");
    await page.click("#auth button");
    await expect.poll(() => page.locator("#key-refused").isVisible(), { timeout: 5000 }).toBe(true);
    expect(await page.locator("#auth").isVisible()).toBe(true);

    await page.fill("#key", "dash-secret");
    await page.click("#auth button");
    // The full view: the worker by its URL (the admin /workers), live.
    await expect.poll(() => page.locator(`#workers tbody tr[data-url="${sims[0]!.url}"]`).count(), { timeout: 5000 }).toBe(1);
    await expect.poll(() => page.locator("#live").textContent(), { timeout: 5000 }).toBe("live");
    expect(await page.locator("#auth").isVisible()).toBe(false);
    expect(await page.locator("#readonly").isVisible()).toBe(false);
    // Worker data is text, never markup: the page has no element the data could have made.
    expect(await page.locator("#workers script, #actions script").count()).toBe(0);
  }, 60_000);

  it("a launched worker past max_restarts stays on the page as failed, with or without the key", async (ctx) => {
    needTools(ctx, browserTool);
    const tmp = mkdtempSync(join(tmpdir(), "sgl-dash-"));
    cleanup.push(() => rmSync(tmp, { recursive: true, force: true }));
    const base = 40000 + 2 * Math.floor(Math.random() * 2000);
    const file = join(tmp, "launcher.yaml");
    writeFileSync(file, ["launcher:", "  backend: sim", "  model: Qwen/Qwen-Image", "  worker_host: 127.0.0.1", `  worker_base_port: ${base}`, "  max_restarts: 0", ""].join("\n"));
    const r = await startRouterProcess(["--admin-api-key", "dash-secret", "--health-check-interval", "3600", "--launcher-config", file]);
    cleanup.push(() => r.stop());
    const admin = { authorization: "Bearer dash-secret" };
    const w = await waitFor(async () => (await jsonRequest(`${r.url}/managed_workers`, { headers: admin })).body.workers.find((m: any) => m.state === "ready"), 20_000, "worker ready");
    process.kill(w.pid, "SIGKILL");
    await waitFor(async () => (await jsonRequest(`${r.url}/health`)).body.failed_workers === 1, 10_000, "worker failed");

    // Read-only (no key): the state from /metrics.
    const page = await open(r);
    const host = w.url.replace("http://", "");
    await expect.poll(() => page.locator(`#workers tbody tr[data-url="${host}"] td[data-field="state"]`).textContent(), { timeout: 5000 }).toBe("failed");
    // With the key: the admin view, which says why.
    await page.click("#want-key");
    await page.fill("#key", "dash-secret");
    await page.click("#auth button");
    const state = page.locator(`#workers tbody tr[data-url="${w.url}"] td[data-field="state"]`);
    await expect.poll(() => state.textContent(), { timeout: 5000 }).toBe("failed");
    expect(await state.getAttribute("title")).toMatch(/max_restarts 0/);
  }, 60_000);
});
