/**
 * Slow clients: a client that stops sending its request body is cut off
 * after --client-body-timeout, and nothing it held (a worker slot, a load
 * counter) stays taken; a client that waits a long time for its answer is not.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

let router: RouterProcess;
let worker: SimProcess;

beforeAll(async () => {
  worker = await startSimProcess();
  router = await startRouterProcess(["--worker-urls", worker.url, "--client-body-timeout", "0.5", "--access-log-exclude-prefixes", "/"]);
});

afterAll(async () => {
  await router?.stop();
  await worker?.stop();
});

/** Sends the head and a few body bytes of a multipart upload, then nothing. */
function stalledUpload(contentLength: number): { socket: Socket; closed: Promise<number> } {
  const url = new URL(router.url);
  const socket = connect(Number(url.port), url.hostname);
  const boundary = "stall";
  const started = Date.now();
  socket.write(
    `POST /v1/images/edits HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${contentLength}\r\n\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n` +
      "x".repeat(1000),
  );
  socket.on("error", () => undefined);
  socket.resume();
  return { socket, closed: new Promise((resolve) => socket.once("close", () => resolve(Date.now() - started))) };
}

async function activeRequests(): Promise<number> {
  return (await jsonRequest(`${router.url}/workers`)).body.workers[0].active_requests;
}

describe("client body timeout", () => {
  it("cuts off a client that stalls mid-body before the router dispatched it (small, retryable body)", async () => {
    const { closed } = stalledUpload(4096);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(5000);
    expect(await activeRequests()).toBe(0);
  });

  it("cuts off a client that stalls mid-body while the body streams to a worker, and frees the worker", async () => {
    const { closed } = stalledUpload(8 << 20); // above the 1 MiB retry buffer: streamed
    await waitFor(async () => (await activeRequests()) === 1, 15_000, "upload dispatched to the worker");
    const ms = await closed;
    expect(ms).toBeLessThan(5000);
    await waitFor(async () => (await activeRequests()) === 0, 15_000, "router load counter released");
    await waitFor(async () => (await jsonRequest(`${worker.url}/sim/stats`)).body.in_flight === 0, 15_000, "worker request ended");
    // The router keeps serving.
    const ok = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "ok", size: "64x64", num_inference_steps: 2 } });
    expect(ok.status).toBe(200);
  });

  it("does not limit a client waiting for a slow answer once its body is in", async () => {
    await jsonRequest(`${worker.url}/sim/config`, { method: "POST", json: { speed: 0.0015 } }); // ~1.5 s per small image
    try {
      const started = Date.now();
      const slow = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "slow", size: "64x64", num_inference_steps: 2 } });
      expect(slow.status).toBe(200);
      expect(Date.now() - started).toBeGreaterThan(1000);
    } finally {
      await jsonRequest(`${worker.url}/sim/config`, { method: "POST", json: { speed: 1 } });
    }
  });
});
