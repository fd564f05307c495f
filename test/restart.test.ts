/**
 * A restart forgets nothing (issue 21): workers registered over REST, as RL
 * frameworks do once at start, are served again by a router SIGKILLed and
 * restarted with the same flags and --state-file, at the version of the last
 * refit, with the operator's states, while clients that retry like RL
 * frameworks lose no request.
 */
import { freePort } from "./helpers/ports.js";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";
import { imageRetrying } from "./helpers/clients.js";

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
const started: { stop(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});


async function router(args: string[]): Promise<RouterProcess> {
  const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", ...args]);
  started.push(r);
  return r;
}

async function sims(n: number): Promise<SimProcess[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startSimProcess()));
  started.push(...list);
  return list;
}

/** One client request as RL frameworks send it (helpers/clients.ts). */
const generateRetrying = (base: string) => imageRetrying(base, smallImage);

describe("a router restarted with the same --state-file", () => {
  it("serves the workers registered over REST again, at the refit's version, within 2 s; 16 retrying clients lose no request", async () => {
    const workers = await sims(3);
    const stateFile = join(mkdtempSync(join(tmpdir(), "sgl-restart-")), "state.json");
    const port = await freePort();
    const args = ["--port", String(port), "--state-file", stateFile];
    const first = await router(args);
    for (const w of workers) expect((await jsonRequest(`${first.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    const refit = await jsonRequest(`${first.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/step-7", weight_version: "7" } });
    expect(refit.status).toBe(200);
    // The operator drained one worker: that, too, survives the restart.
    expect((await jsonRequest(`${first.url}/workers/${encodeURIComponent(workers[2]!.url)}`, { method: "PUT", json: { draining: true } })).status).toBe(200);
    const recorded = JSON.parse(readFileSync(stateFile, "utf8"));
    expect(recorded.pool.workers.map((w: { url: string }) => w.url).sort()).toEqual(workers.map((w) => w.url).sort());

    // 16 clients in loops, the router SIGKILLed under them and started again.
    let stop = false;
    const answers: { status: number; version: string | null }[] = [];
    const clients = Array.from({ length: 16 }, async () => {
      while (!stop) answers.push(await generateRetrying(first.url));
    });
    await waitFor(() => answers.length >= 16, 10_000, "answers before the crash");
    first.proc.kill("SIGKILL");
    await new Promise((res) => first.proc.once("exit", res));
    const second = await router(args);
    // From the restarted process's "router listening" (its own start-up time is node's, not the router's).
    const restartedAt = (second.logs.find((l) => l.msg === "router listening")!.time as number);
    const listed = await waitFor(
      async () => {
        const ws = (await jsonRequest(`${second.url}/workers`)).body.workers as { url: string; weight_version: string; state: string }[];
        return ws.length === 3 && ws.every((w) => w.weight_version === "7") ? ws : undefined;
      },
      5_000,
      "the three workers at version 7",
    );
    expect(Date.now() - restartedAt).toBeLessThan(2_000);
    expect(Object.fromEntries(listed.map((w) => [w.url, w.state]))).toEqual({ [workers[0]!.url]: "healthy", [workers[1]!.url]: "healthy", [workers[2]!.url]: "draining" });
    const before = answers.length;
    await waitFor(() => answers.length >= before + 32, 20_000, "answers after the restart");
    stop = true;
    await Promise.all(clients);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.every((a) => a.version === "7")).toBe(true);
  });

  it("a video job and a url-mode image made before the crash are answered after it: the restarted router finds their ids on the workers", async () => {
    const [imageWorker] = await sims(1);
    const videoWorker = await startSimProcess(["--model-path", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]);
    started.push(videoWorker);
    const stateFile = join(mkdtempSync(join(tmpdir(), "sgl-restart-")), "state.json");
    const args = ["--port", String(await freePort()), "--state-file", stateFile];
    const first = await router(args);
    for (const w of [imageWorker!, videoWorker]) expect((await jsonRequest(`${first.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
    await waitFor(async () => ((await jsonRequest(`${first.url}/workers`)).body.workers as { state: string }[]).filter((w) => w.state === "healthy").length === 2, 10_000, "both workers healthy");
    const video = await jsonRequest(`${first.url}/v1/videos`, { method: "POST", json: { prompt: "a river", size: "64x64", num_inference_steps: 2, seconds: 1, fps: 8 } });
    expect(video.status).toBe(200);
    const image = await jsonRequest(`${first.url}/v1/images/generations`, { method: "POST", json: { ...smallImage, response_format: "url" } });
    expect(image.status).toBe(200);
    const imageUrl = (image.body.data as { url: string }[])[0]!.url;
    expect(imageUrl).toMatch(/^\/v1\/images\//);

    first.proc.kill("SIGKILL");
    await new Promise((res) => first.proc.once("exit", res));
    const second = await router(args);
    // The id -> worker maps died with the first process: the restarted router asks the workers.
    const done = await waitFor(async () => {
      const r = await jsonRequest(`${second.url}/v1/videos/${video.body.id as string}`);
      expect(r.status).toBe(200);
      return r.body.status === "completed" ? r.body : undefined;
    }, 20_000, "the video made before the crash completed, polled through the restarted router");
    expect(done.id).toBe(video.body.id);
    const mp4 = await fetch(`${second.url}/v1/videos/${video.body.id as string}/content`);
    expect(mp4.status).toBe(200);
    expect(Buffer.from(await mp4.arrayBuffer()).subarray(4, 8).toString("latin1")).toBe("ftyp");
    const png = await fetch(`${second.url}${imageUrl}`);
    expect(png.status).toBe(200);
    expect(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString("latin1")).toBe("PNG");
  }, 60_000);

  it("a state file from before the worker set (refit state only) still loads, and the pool is recorded from then on", async () => {
    const [w] = await sims(1);
    const stateFile = join(mkdtempSync(join(tmpdir(), "sgl-restart-")), "state.json");
    const first = await router(["--state-file", stateFile, "--worker-urls", w!.url]);
    expect((await jsonRequest(`${first.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "/ckpt/a", weight_version: "a" } })).status).toBe(200);
    await first.stop();
    const second = await router(["--state-file", stateFile]);
    // Registered through --worker-urls by the first router: recorded too, and back without the flag.
    const ws = await waitFor(async () => {
      const list = (await jsonRequest(`${second.url}/workers`)).body.workers as { weight_version: string }[];
      return list.length === 1 && list[0]!.weight_version === "a" ? list : undefined;
    }, 15_000, "the worker back at version a");
    expect(ws).toHaveLength(1);
  });
});
