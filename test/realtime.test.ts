import { decode, encode } from "@msgpack/msgpack";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startRouterProcess, waitFor, jsonRequest, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const VIDEO_MODEL = "Wan-AI/Wan2.2-T2V-A14B-Diffusers";
const started: { stop(): Promise<unknown> }[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function sim(args: string[] = []): Promise<SimProcess> {
  const s = await startSimProcess(args);
  started.push(s);
  return s;
}

async function router(workers: SimProcess[], args: string[] = []): Promise<RouterProcess> {
  const r = await startRouterProcess(["--log-format", "json", ...args, "--worker-urls", ...workers.map((w) => w.url)]);
  started.push(r);
  await waitFor(async () => {
    const ws = (await jsonRequest(`${r.url}/workers`)).body.workers as any[];
    return ws.length === workers.length && ws.every((w) => w.video_support !== null);
  }, 10_000, "probed workers");
  return r;
}

interface Session {
  messages: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  ws: WebSocket;
}

/** Opens a realtime session through `base` and sends the generate request once it is open. */
function session(base: string, request: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Session> {
  const ws = new WebSocket(`${base.replace("http", "ws")}/v1/realtime_video/generate`, { headers });
  const messages: Record<string, unknown>[] = [];
  ws.on("message", (data) => messages.push(decode(data as Buffer) as Record<string, unknown>));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.send(encode(request));
      resolve({ messages, closed, ws });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c));
      res.on("end", () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body, code: res.headers["x-router-error-code"] })));
    });
    ws.once("error", (err) => reject(err));
  });
}

describe("realtime video WebSocket through the router", () => {
  it("a ws client gets the video worker's frames and its close; the data-plane key is checked", async () => {
    const image = await sim();
    const video = await sim(["--model-path", VIDEO_MODEL]);
    const r = await router([image, video], ["--api-key", "data-key"]);
    await expect(session(r.url, { prompt: "x" })).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
    const s = await session(r.url, { prompt: "a river", size: "64x32", num_frames: 2, max_chunks: 3 }, { authorization: "Bearer data-key" });
    const { code, reason } = await s.closed;
    expect({ code, reason }).toEqual({ code: 1000, reason: "generation complete" });
    expect(s.messages.map((m) => [m.type, m.chunk_index])).toEqual([
      ["frame_batch", 0],
      ["frame_batch", 1],
      ["frame_batch", 2],
    ]);
    expect(s.messages[0]).toMatchObject({ width: 64, height: 32, num_frames: 2, format: "rgb24" });
    expect((s.messages[0]!.payload as Uint8Array).length).toBe(64 * 32 * 3 * 2);
    // The session ran on the video worker (the image worker would answer "invalid generate request").
    const stats = (await jsonRequest(`${video.url}/sim/stats`)).body;
    expect(JSON.stringify(stats)).toContain("WS /v1/realtime_video/generate");
  });

  it("without a video worker the upgrade is refused with 400 no_video_workers", async () => {
    const image = await sim();
    const r = await router([image]);
    const refused = session(r.url, { prompt: "x" });
    await expect(refused).rejects.toMatchObject({ status: 400, code: "no_video_workers" });
    const body = JSON.parse(((await refused.catch((e: { body: string }) => e)) as { body: string }).body);
    expect(body.error).toContain("video-capable");
  });

  it("SIGTERM: the open session ends cleanly (the worker's close reaches the client) and the router exits 0", async () => {
    const video = await sim(["--model-path", VIDEO_MODEL, "--speed", "0.1"]);
    const r = await router([video]);
    // 0.1x speed: 200 ms per chunk, about a second in all.
    const s = await session(r.url, { prompt: "a river", size: "32x32", num_frames: 1, max_chunks: 5 });
    await waitFor(() => s.messages.length > 0, 10_000, "the first frame");
    const exitCode = r.stop(15_000);
    const { code, reason } = await s.closed;
    expect({ code, reason }).toEqual({ code: 1000, reason: "generation complete" });
    expect(s.messages).toHaveLength(5);
    expect(await exitCode).toBe(0);
  });

  it("SIGTERM with --shutdown-timeout: a session still open at the deadline is ended, not left hanging", async () => {
    const video = await sim(["--model-path", VIDEO_MODEL, "--speed", "0.1"]);
    const r = await router([video], ["--shutdown-timeout", "1"]);
    const s = await session(r.url, { prompt: "a long river", size: "32x32", num_frames: 1, max_chunks: 10_000 });
    await waitFor(() => s.messages.length > 0, 10_000, "the first frame");
    const t0 = Date.now();
    const exitCode = r.stop(15_000);
    const { code } = await s.closed;
    expect(code).not.toBe(1000);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(await exitCode).toBe(0);
  });
});
