/**
 * Shutdown loses no video silently: a video create answers at once, so
 * "nothing in flight" says nothing of the job still rendering on a worker
 * the router launched and is about to stop. SIGTERM waits for such jobs
 * (within --shutdown-timeout) so the video can be fetched, and names every
 * job it could not wait for in a warn line.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { isAlive, jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-shutdown-videos-"));
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.splice(0).map((f) => f()));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A router launching one sim video worker; resolves once the worker is registered. */
async function start(shutdownTimeoutS: number): Promise<{ r: RouterProcess; worker: string; pid: number }> {
  const base = 36000 + 2 * Math.floor(Math.random() * 2000);
  const file = join(tmp, `launcher-${base}.yaml`);
  writeFileSync(file, ["launcher:", "  backend: sim", "  model: Wan-AI/Wan2.2-T2V-A14B-Diffusers", "  worker_host: 127.0.0.1", `  worker_base_port: ${base}`, "  wait_timeout: 30", ""].join("\n"));
  const r = await startRouterProcess(["--health-check-interval", "3600", "--shutdown-timeout", String(shutdownTimeoutS), "--launcher-config", file]);
  cleanup.push(() => r.stop(1000));
  const worker = await waitFor(async () => {
    const ws = (await jsonRequest(`${r.url}/workers`)).body.workers as any[];
    return ws.length === 1 && ws[0].state === "healthy" ? (ws[0].url as string) : undefined;
  }, 20_000, "video worker registered");
  const pid = Number((await jsonRequest(`${r.url}/managed_workers`)).body.workers[0].pid);
  return { r, worker, pid };
}

async function createVideo(r: RouterProcess, body: Record<string, unknown>): Promise<string> {
  const created = await jsonRequest(`${r.url}/v1/videos`, { method: "POST", json: { prompt: "a river at dusk", ...body } });
  expect(created.status).toBe(200);
  expect(created.body.status).toBe("queued");
  return created.body.id as string;
}

describe("SIGTERM with a video job in flight on a launched worker", () => {
  it("waits for the job, so the video can still be downloaded from its worker", async () => {
    const { r, worker, pid } = await start(30);
    // 1280x720, 50 steps, 32 frames: about 3 s on the sim.
    const id = await createVideo(r, { size: "1280x720", num_inference_steps: 50, seconds: 2, fps: 16 });
    const exit = r.stop(60_000);
    // A client that polls the job on its worker (the router no longer takes requests) gets its video.
    const job = await waitFor(async () => {
      const j = await jsonRequest(`${worker}/v1/videos/${id}`).catch(() => undefined);
      return j?.body.status === "completed" ? j.body : undefined;
    }, 20_000, "video completed on its worker");
    expect(job.id).toBe(id);
    const content = await fetch(`${worker}/v1/videos/${id}/content`);
    const bytes = Buffer.from(await content.arrayBuffer());
    expect(content.status).toBe(200);
    expect(bytes.subarray(4, 8).toString("latin1")).toBe("ftyp"); // an MP4
    expect(await exit).toBe(0);
    expect(r.logs.some((l) => l.msg === "shutdown: video job finished before its worker stopped" && l.videoId === id && l.worker === worker)).toBe(true);
    // The router still stopped the worker it launched.
    await waitFor(() => !isAlive(pid), 15_000, "video worker stopped");
  }, 60_000);

  it("names every job it could not wait for, by id and worker, at warn", async () => {
    const { r, worker, pid } = await start(1);
    // 1280x720, 50 steps, 96 frames: about 9 s, far past the 1 s shutdown timeout.
    const id = await createVideo(r, { size: "1280x720", num_inference_steps: 50, seconds: 4, fps: 24 });
    expect(await r.stop(30_000)).toBe(0);
    const lost = r.logs.find((l) => l.level === 40 && l.videoId === id);
    expect(lost).toMatchObject({ worker, msg: expect.stringMatching(/lost/) });
    await waitFor(() => !isAlive(pid), 15_000, "video worker stopped");
  }, 60_000);
});
