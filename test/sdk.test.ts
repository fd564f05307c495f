// The SDK (sdk/src) end to end: routers and simulated workers run as child
// processes; every call goes over real sockets.
import { decode as msgpackDecode } from "@msgpack/msgpack";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as sdkIndex from "../sdk/src/index.js";
import * as adminPb from "../sdk/src/gen/sgl/diffusion/router/v1/admin_pb.js";
import * as rolloutPb from "../sdk/src/gen/sgl/diffusion/router/v1/rollout_pb.js";
import { errorFromAnswer } from "../sdk/src/errors.js";
import {
  Code,
  ConnectError,
  RouterClientError,
  createRouterClient,
  routerErrorCode,
  toPlain,
  valueToJson,
  WorkerEventType,
  type Health,
  type ImageData,
  type ImagesRequest,
  type ImagesResponse,
  type ModelCard,
  type ModelsList,
  type RouterClient,
  type VideoJob,
  type VideoList,
} from "../sdk/src/index.js";
import { startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { holdsFor } from "./helpers/idle.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE_MODEL = "Qwen/Qwen-Image";
const VIDEO_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const small = { size: "64x64", num_inference_steps: 2 } as const;
const smallVideo = { ...small, seconds: 1, fps: 8 };
/** About 800 ms of simulated work: long enough to time out or abort. */
const slowImage: ImagesRequest = { prompt: "slow", size: "1024x1024", num_inference_steps: 100 };

const clients: RouterClient[] = [];
function client(options: Parameters<typeof createRouterClient>[0]): RouterClient {
  const c = createRouterClient(options);
  clients.push(c);
  return c;
}

async function caught(p: Promise<unknown>): Promise<RouterClientError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RouterClientError);
    return err as RouterClientError;
  }
  throw new Error("expected the call to fail");
}


/** The named keys of a type, without its index signature (`[field: string]: unknown`). */
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : K]: T[K] };
/**
 * Every named key of T, once: `satisfies` makes tsc (npm run typecheck) fail
 * when a key is missing or unknown, so these lists are the types' keys.
 */
type KeyList<T> = Record<KnownKeys<T>, true>;
const typeKeys = {
  Health: { status: true, healthy_workers: true, total_workers: true, dead_workers: true, failed_workers: true, sleeping_workers: true, routable_workers: true, weight_version: true, refit_phase: true, weight_versions: true, state_store: true, holds_refit_lock: true } satisfies KeyList<Health>,
  ImagesResponse: { id: true, created: true, data: true, peak_memory_mb: true, inference_time_s: true } satisfies KeyList<ImagesResponse>,
  ImageData: { b64_json: true, url: true, revised_prompt: true, file_path: true } satisfies KeyList<ImageData>,
  ModelsList: { object: true, data: true } satisfies KeyList<ModelsList>,
  ModelCard: {
    id: true, object: true, created: true, owned_by: true, root: true, parent: true, max_model_len: true, num_gpus: true,
    task_type: true, dit_precision: true, vae_precision: true, pipeline_name: true, pipeline_class: true,
  } satisfies KeyList<ModelCard>,
  VideoJob: {
    id: true, object: true, model: true, status: true, progress: true, created_at: true, size: true, seconds: true, quality: true, url: true,
    remixed_from_video_id: true, completed_at: true, expires_at: true, error: true, file_path: true, file_paths: true, num_outputs: true, peak_memory_mb: true, inference_time_s: true,
  } satisfies KeyList<VideoJob>,
  VideoList: { object: true, data: true, first_id: true, last_id: true, has_more: true } satisfies KeyList<VideoList>,
};
function keysOf(name: keyof typeof typeKeys): string[] {
  return Object.keys(typeKeys[name]).sort();
}
function answerKeys(answer: object): string[] {
  return Object.keys(answer).sort();
}

function accessLogCount(router: RouterProcess, path: string): number {
  return router.logs.filter((l) => l.msg === "request" && l.path === path).length;
}

// Every router and worker starts at once (a router takes ~1 s to start):
// the main router has one image worker and one video worker; `guarded`
// requires keys and has only the image worker; `failRouter` has a video
// worker that fails every generation; `r3` has one worker that the retry
// tests kill; `metaRouter` has one worker of its own, refitted by the
// answer-metadata tests.
let imageSim: SimProcess;
let videoSim: SimProcess;
let failing: SimProcess;
let doomed: SimProcess;
let metaSim: SimProcess;
let router: RouterProcess;
let metaRouter: RouterProcess;
let guarded: RouterProcess;
let failRouter: RouterProcess;
let r3: RouterProcess;
let sdk: RouterClient;

beforeAll(async () => {
  [imageSim, videoSim, failing, doomed, metaSim] = await Promise.all([
    startSimProcess(["--scheduler-concurrency", "4"]),
    startSimProcess(["--scheduler-concurrency", "4", "--model-path", VIDEO_MODEL, "--task-type", "T2V"]),
    startSimProcess(["--model-path", VIDEO_MODEL, "--failure-rate", "1"]),
    startSimProcess([]),
    startSimProcess([]),
  ]);
  [router, guarded, failRouter, r3, metaRouter] = await Promise.all([
    startRouterProcess(["--worker-urls", imageSim.url, videoSim.url]),
    startRouterProcess(["--worker-urls", imageSim.url, "--admin-api-key", "K", "--api-key", "K2"]),
    startRouterProcess(["--worker-urls", failing.url]),
    // Fast health checks; the access log (info) counts attempts.
    startRouterProcess(["--worker-urls", doomed.url, "--health-check-interval", "0.2", "--health-check-failure-threshold", "1", "--health-check-timeout", "0.5"]),
    startRouterProcess(["--worker-urls", metaSim.url]),
  ]);
  sdk = client({ baseUrl: router.url });
}, 30_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([router, guarded, failRouter, r3, metaRouter].map((r) => r?.stop()));
  await Promise.all([imageSim, videoSim, failing, doomed, metaSim].map((s) => s?.stop()));
}, 30_000);

describe("data plane", () => {
  it("generateImages returns b64 PNGs", async () => {
    const r = await sdk.generateImages({ prompt: "a cat", ...small, n: 2, response_format: "b64_json" });
    expect(typeof r.id).toBe("string");
    expect(r.data).toHaveLength(2);
    for (const item of r.data) {
      const png = Buffer.from(item.b64_json!, "base64");
      expect(png.subarray(0, 8).equals(PNG)).toBe(true);
    }
  });

  it("listModels merges the workers' cards", async () => {
    const models = await sdk.listModels();
    expect(models.object).toBe("list");
    const byId = Object.fromEntries(models.data.map((m) => [m.id, m.task_type]));
    expect(byId).toEqual({ [IMAGE_MODEL]: "T2I", [VIDEO_MODEL]: "T2V" });
  });

  it("health", async () => {
    const h = await sdk.health();
    expect(h).toMatchObject({ status: "healthy", healthy_workers: 2, total_workers: 2 });
  });

  it("video: create, wait, list, download as a stream, delete", async () => {
    const job = await sdk.createVideo({ prompt: "a dog running", ...smallVideo });
    expect(job).toMatchObject({ object: "video", status: "queued" });
    const done = await sdk.waitForVideo(job.id, { pollIntervalMs: 50, timeoutMs: 15_000 });
    expect(done).toMatchObject({ id: job.id, status: "completed", progress: 100 });

    const list = await sdk.listVideos({ limit: 100 });
    expect(list.data.map((j) => j.id)).toContain(job.id);

    const content = await sdk.downloadVideoContent(job.id);
    expect(content.status).toBe(200);
    expect(content.contentType).toBe("video/mp4");
    let head = Buffer.alloc(0);
    let total = 0;
    for await (const chunk of content.body as AsyncIterable<Buffer>) {
      if (head.length < 16) head = Buffer.concat([head, chunk.subarray(0, 16)]);
      total += chunk.length;
    }
    // An ISO BMFF file starts with a box: 4-byte size, then "ftyp".
    expect(head.subarray(4, 8).toString("latin1")).toBe("ftyp");
    expect(total).toBe(content.contentLength);

    const deleted = await sdk.deleteVideo(job.id);
    expect(deleted).toMatchObject({ id: job.id, status: "deleted" });
    const gone = await caught(sdk.getVideo(job.id));
    // The router's own 404 (code video_not_found) or the worker's FastAPI one (http_404).
    expect(gone.status).toBe(404);
    expect(["video_not_found", "http_404"]).toContain(gone.code);
    expect(gone.message).toMatch(/not found/i);
  }, 20_000);

  it("waitForVideo stops at its own timeoutMs with code timeout", async () => {
    const job = await sdk.createVideo({ prompt: "a long video", size: "1280x720", seconds: 4, num_inference_steps: 50 });
    const started = performance.now();
    const err = await caught(sdk.waitForVideo(job.id, { pollIntervalMs: 50, timeoutMs: 300 }));
    expect(err).toMatchObject({ status: 0, code: "timeout" });
    expect(performance.now() - started).toBeLessThan(2000);
    await sdk.deleteVideo(job.id); // cancels it
  });

  it("rolloutGenerate streams a ~200 MB answer without growing the heap", async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    const started = performance.now();
    const answer = await sdk.rolloutGenerate(
      { prompt: "big", seed: 7, num_outputs_per_prompt: 4, width: 64, height: 64, num_inference_steps: 2, sim_bytes_per_sample: 37_500_000 },
      { as: "stream" },
    );
    // The worker answers MessagePack whatever Accept says.
    expect(answer.contentType).toBe("application/msgpack");
    let bytes = 0;
    let chunks = 0;
    let head = "";
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      if (head.length < 64) head += chunk.subarray(0, 64).toString("latin1");
      bytes += chunk.length;
      if (++chunks % 32 === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    }
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    const mb = (n: number) => Math.round(n / 1e6);
    console.log(`rollout stream: ${mb(bytes)} MB in ${Math.round(performance.now() - started)} ms, ${chunks} chunks, heap growth ${mb(heapPeak - heapBefore)} MB`);
    expect(head.charCodeAt(0)).toBe(0x94); // a MessagePack array of the 4 samples
    expect(head).toContain("request_id");
    expect(bytes).toBe(answer.contentLength);
    // 4 x 37.5 MB of float32 data, base64 (x4/3) plus a little MessagePack: ~200 MB.
    expect(bytes).toBeGreaterThan(195e6);
    expect(bytes).toBeLessThan(215e6);
    expect(heapPeak - heapBefore).toBeLessThan(100e6);
  }, 60_000);

  it("rolloutGenerate passes the msgpack content type through, bytes untouched", async () => {
    const answer = await sdk.rolloutGenerate({ prompt: "group", seed: 100, num_outputs_per_prompt: 4, width: 64, height: 64, num_inference_steps: 2 }, { accept: "application/msgpack" });
    expect(answer.contentType).toBe("application/msgpack");
    expect(Buffer.isBuffer(answer.bytes)).toBe(true);
    const samples = msgpackDecode(answer.bytes) as { seed: number; generated_output: { __tensor__: boolean } }[];
    expect(samples.map((s) => s.seed)).toEqual([100, 100, 100, 100]);
    expect(samples[0]!.generated_output.__tensor__).toBe(true);
  });

  it("an abort mid-stream ends the body with code aborted", async () => {
    const ac = new AbortController();
    const answer = await sdk.rolloutGenerate(
      { prompt: "cut", num_outputs_per_prompt: 2, width: 64, height: 64, num_inference_steps: 2, sim_bytes_per_sample: 50_000_000 },
      { as: "stream", signal: ac.signal },
    );
    const err = await caught(
      (async () => {
        for await (const _ of answer.body) ac.abort(new Error("enough"));
      })(),
    );
    expect(err).toMatchObject({ status: 0, code: "aborted" });
    expect((err.cause as Error).message).toBe("enough");
  });
});

describe("the SDK's types are the answers' shapes", () => {
  it("health, images, models and video answers have exactly the keys their types declare", async () => {
    // weight_versions appears only once a refit named a model; this pool serves one.
    expect(answerKeys(await sdk.health())).toEqual(keysOf("Health").filter((k) => k !== "weight_versions"));
    const images = await sdk.generateImages({ prompt: "keys", ...small });
    expect(answerKeys(images)).toEqual(keysOf("ImagesResponse"));
    expect(answerKeys(images.data[0]!)).toEqual(keysOf("ImageData"));
    const models = await sdk.listModels();
    expect(answerKeys(models)).toEqual(keysOf("ModelsList"));
    for (const card of models.data) expect(answerKeys(card)).toEqual(keysOf("ModelCard"));
    const job = await sdk.createVideo({ prompt: "keys", ...smallVideo });
    expect(answerKeys(job)).toEqual(keysOf("VideoJob"));
    expect(answerKeys(await sdk.waitForVideo(job.id, { pollIntervalMs: 50, timeoutMs: 10_000 }))).toEqual(keysOf("VideoJob"));
    const list = await sdk.listVideos();
    expect(answerKeys(list)).toEqual(keysOf("VideoList"));
    expect(answerKeys(await sdk.deleteVideo(job.id))).toEqual(keysOf("VideoJob"));
  }, 20_000);

  it("health carries the pool's weight version and refit phase", async () => {
    expect(await sdk.health()).toMatchObject({ weight_version: "0", refit_phase: "idle", dead_workers: 0, sleeping_workers: 0, routable_workers: 2 });
  });
});

describe("routerErrorCode", () => {
  it("reads the router's code of either error body, with or without the X-Router-Error-Code header; a worker's error has none", () => {
    const original = JSON.stringify({ error: "API key required", code: "unauthenticated" });
    const openai = JSON.stringify({ error: { message: "API key required", type: "authentication_error", code: "unauthenticated", param: null } });
    for (const body of [original, openai]) {
      for (const headers of [{ "x-router-error-code": "unauthenticated" }, {}]) {
        const err = errorFromAnswer(401, "application/json", body, headers);
        expect(err).toMatchObject({ status: 401, code: "unauthenticated", message: "API key required" });
        expect(routerErrorCode(err)).toBe("unauthenticated");
      }
    }
    const worker = errorFromAnswer(422, "application/json", JSON.stringify({ detail: [{ loc: ["body", "prompt"], msg: "Field required" }] }));
    expect(worker).toMatchObject({ code: "http_422", routerCode: null });
    expect(routerErrorCode(worker)).toBeUndefined();
    expect(routerErrorCode(new Error("x"))).toBeUndefined();
  });
});

describe("answer metadata: withResponse()", () => {
  const meta = () => client({ baseUrl: metaRouter.url });

  it("shows the refit's weight version, the GET /workers worker_id and the caller's request id; awaiting gives the plain answer; one exchange each", async () => {
    const c = meta();
    const refit = await c.admin.updateWeightsFromDisk({ modelPath: "Qwen/Qwen-Image-step-7", weightVersion: "step-7" });
    expect(refit.weightVersion).toBe("step-7");
    const path = "/v1/images/generations";
    const before = accessLogCount(metaRouter, path);

    const { data, meta: m } = await c.generateImages({ prompt: "a fox", ...small, response_format: "b64_json" }, { headers: { "x-request-id": "trace-sdk-1" } }).withResponse();
    expect(Buffer.from(data.data[0]!.b64_json!, "base64").subarray(0, 8).equals(PNG)).toBe(true);
    expect(m).toMatchObject({ status: 200, requestId: "trace-sdk-1", weightVersion: "step-7" });
    expect(m.headers["content-type"]).toMatch(/application\/json/);
    const workers = (await (await fetch(`${metaRouter.url}/workers`)).json()) as { workers: { worker_id: string; url: string }[] };
    expect(workers.workers.map((w) => w.worker_id)).toEqual([m.workerId]);
    expect(workers.workers[0]!.url).toBe(metaSim.url);

    // Awaited directly: the answer itself, no meta mixed in.
    const plain = await c.generateImages({ prompt: "a fox", ...small, response_format: "b64_json" });
    expect(Object.keys(plain).sort()).toEqual(Object.keys(data).sort());
    await waitFor(() => accessLogCount(metaRouter, path) === before + 2, 15_000, "two access log lines");
    expect(metaRouter.logs.filter((l) => l.msg === "request" && l.path === path && l.requestId === "trace-sdk-1")).toHaveLength(1);
  });

  it("a failed call rejects withResponse() and the plain await alike with the RouterClientError", async () => {
    const bad = { size: "64x64" } as unknown as ImagesRequest;
    const viaMeta = await caught(meta().generateImages(bad).withResponse());
    expect(viaMeta).toMatchObject({ status: 422, code: "http_422" });
    expect(viaMeta.requestId).toMatch(/.+/);
    expect(await caught(meta().generateImages(bad))).toMatchObject({ status: 422 });
  });

  it("createVideo and getVideo name the video worker; rollout bytes and streams carry the three facts", async () => {
    const videoWorkerId = encodeURIComponent(videoSim.url);
    const created = await sdk.createVideo({ prompt: "waves", ...smallVideo }).withResponse();
    expect(created.meta).toMatchObject({ status: 200, workerId: videoWorkerId });
    expect(created.meta.weightVersion).toMatch(/.+/);
    const polled = await sdk.getVideo(created.data.id, { headers: { "x-request-id": "poll-1" } }).withResponse();
    expect(polled.data.id).toBe(created.data.id);
    expect(polled.meta).toMatchObject({ workerId: videoWorkerId, requestId: "poll-1" });
    await sdk.deleteVideo(created.data.id);

    const c = meta();
    const req = { prompt: "group", seed: 1, num_outputs_per_prompt: 2, width: 64, height: 64, num_inference_steps: 2 };
    const { data: bytes, meta: m } = await c.rolloutGenerate(req, { headers: { "x-request-id": "roll-1" } }).withResponse();
    expect(m).toMatchObject({ status: 200, requestId: "roll-1", weightVersion: "step-7", workerId: encodeURIComponent(metaSim.url) });
    expect(bytes).toMatchObject({ requestId: "roll-1", weightVersion: "step-7", workerId: encodeURIComponent(metaSim.url) });
    expect(msgpackDecode(bytes.bytes)).toHaveLength(2);
    const stream = await c.rolloutGenerate(req, { as: "stream" });
    expect(stream).toMatchObject({ weightVersion: "step-7", workerId: encodeURIComponent(metaSim.url) });
    expect(stream.requestId).toMatch(/.+/);
    stream.body.resume();
    await new Promise((r) => stream.body.once("close", r));
  });
});

describe("admin results as plain JSON: toPlain", () => {
  it("JSON.stringify works on toPlain of any admin result: enum names, int64 as strings, zero fields shown", async () => {
    const c = client({ baseUrl: router.url });
    const status = await c.admin.getRouterStatus({});
    expect(() => JSON.stringify(status)).toThrow(/BigInt/);
    const plainStatus = JSON.parse(JSON.stringify(toPlain(status)));
    expect(plainStatus).toMatchObject({ totalWorkers: 2, healthyWorkers: 2, deadWorkers: 0, inFlightRequests: 0 });
    expect(plainStatus.uptimeMs).toMatch(/^\d+$/);

    const { workers } = await c.admin.listWorkers({});
    const text = JSON.stringify(toPlain(workers.find((w) => w.url === videoSim.url)!));
    const worker = JSON.parse(text);
    expect(worker).toMatchObject({ url: videoSim.url, state: "WORKER_STATE_HEALTHY", isDead: false, capabilities: { taskType: "T2V", videoSupport: true } });
    expect(worker.registeredAtUnixMs).toMatch(/^\d+$/);
    // A whole answer as well, repeated messages included.
    expect(JSON.parse(JSON.stringify(toPlain(await c.admin.listWorkers({})))).workers.map((w: { state: string }) => w.state)).toEqual(["WORKER_STATE_HEALTHY", "WORKER_STATE_HEALTHY"]);
    expect(() => toPlain({} as never)).toThrow(TypeError);
  });

  it("the SDK index exports every generated schema, enum, service and file of both services", () => {
    for (const mod of [adminPb, rolloutPb]) {
      for (const [name, value] of Object.entries(mod)) {
        expect((sdkIndex as Record<string, unknown>)[name], name).toBe(value);
      }
    }
    expect(sdkIndex.WorkerState[sdkIndex.WorkerState.HEALTHY]).toBe("HEALTHY");
    expect(sdkIndex.WorkerSchema.typeName).toBe("sgl.diffusion.router.v1.Worker");
  });
});

describe("images: editImages and downloadImage", () => {
  const png = async (seed: number) => {
    const r = await sdk.generateImages({ prompt: `input ${seed}`, ...small, seed, response_format: "b64_json" });
    return Buffer.from(r.data[0]!.b64_json!, "base64");
  };

  it("an edit with two input images (a Buffer and a File) and a mask returns an image; the worker got both files, named", async () => {
    const [a, b] = await Promise.all([png(1), png(2)]);
    const r = await sdk
      .editImages({
        image: [a, new File([b], "second.png", { type: "image/png" })],
        mask: { data: a, filename: "mask.png" },
        prompt: "make it blue",
        n: 1,
        size: "64x64",
        num_inference_steps: 2,
        response_format: "b64_json",
      })
      .withResponse();
    expect(r.meta.status).toBe(200);
    expect(r.meta.workerId).toBe(encodeURIComponent(imageSim.url));
    expect(Buffer.from(r.data.data[0]!.b64_json!, "base64").subarray(0, 8).equals(PNG)).toBe(true);
    const sha = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");
    const files = (r.data as unknown as { input_files: { field: string; filename: string; bytes: number; sha256: string }[] }).input_files;
    expect(files).toEqual([
      { field: "image", filename: "image-1.png", bytes: a.length, sha256: sha(a) },
      { field: "image", filename: "second.png", bytes: b.length, sha256: sha(b) },
      { field: "mask", filename: "mask.png", bytes: a.length, sha256: sha(a) },
    ]);
  });

  it("edit input errors: no image is the worker's 422; a value that is no file is a TypeError before any request", async () => {
    const noImage = await caught(sdk.editImages({ prompt: "x" } as never));
    expect(noImage.status).toBe(422);
    expect(noImage.message).toMatch(/image/);
    await expect(sdk.editImages({ image: "/tmp/cat.png" as never, prompt: "x" })).rejects.toThrow(/image must be a Blob/);
    await expect(sdk.editImages({ image: new Uint8Array(4), prompt: "x", extra: { a: 1 } })).rejects.toThrow(/edit field extra/);
  });

  it("downloadImage of a url item returns the PNG, with the data-plane key on the router and none elsewhere", async () => {
    const keyed = client({ baseUrl: guarded.url, apiKey: "K2" });
    const r = await keyed.generateImages({ prompt: "to fetch", ...small, response_format: "url" });
    const item = r.data[0]!;
    expect(item.url).toMatch(/^\/v1\/images\/.+\/content$/);
    const got = await keyed.downloadImage(item);
    expect(got.contentType).toBe("image/png");
    expect(got.bytes.subarray(0, 8).equals(PNG)).toBe(true);
    // The same image by absolute URL under baseUrl: still the router, still with the key.
    expect((await keyed.downloadImage(`${guarded.url}${item.url}`)).bytes.equals(got.bytes)).toBe(true);
    // Without the key the router refuses: the key was what made the calls above work.
    expect(await caught(client({ baseUrl: guarded.url }).downloadImage(item))).toMatchObject({ status: 401, code: "unauthenticated" });

    // Another origin never sees the key.
    const seen: (string | undefined)[] = [];
    const cdn = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "image/png" }).end(got.bytes);
    });
    await new Promise<void>((res) => cdn.listen(0, "127.0.0.1", res));
    try {
      const elsewhere = await keyed.downloadImage({ url: `http://127.0.0.1:${(cdn.address() as AddressInfo).port}/img.png?sig=1` });
      expect(elsewhere.bytes.equals(got.bytes)).toBe(true);
      expect(seen).toEqual([undefined]);
    } finally {
      cdn.close();
    }
  });

  it("downloadImage decodes b64_json items locally; an unknown image id is a 404 RouterClientError", async () => {
    const a = await png(3);
    const local = await sdk.downloadImage({ b64_json: a.toString("base64"), url: null });
    expect(local).toEqual({ bytes: a, contentType: "image/png" });
    const err = await caught(sdk.downloadImage("/v1/images/no-such-image/content"));
    expect(err.status).toBe(404);
    await expect(sdk.downloadImage({ url: null })).rejects.toThrow(TypeError);
  });
});

describe("typed errors", () => {
  it("a worker's 422 (missing prompt) keeps its status, FastAPI detail and body", async () => {
    const err = await caught(sdk.generateImages({ size: "64x64" } as unknown as ImagesRequest));
    expect(err.status).toBe(422);
    expect(err.code).toBe("http_422");
    expect(err.message).toContain("prompt");
    expect(err.body).toMatchObject({ detail: [{ loc: ["body", "prompt"] }] });
  });

  it("timeoutMs aborts a slow call with code timeout", async () => {
    const started = performance.now();
    const err = await caught(sdk.generateImages(slowImage, { timeoutMs: 100 }));
    expect(err).toMatchObject({ status: 0, code: "timeout" });
    expect(performance.now() - started).toBeLessThan(1500);
    // The client-wide default applies as well.
    const impatient = client({ baseUrl: router.url, timeoutMs: 100 });
    expect(await caught(impatient.generateImages(slowImage))).toMatchObject({ code: "timeout" });
  });

  it("an AbortSignal aborts with code aborted", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const started = performance.now();
    const err = await caught(sdk.generateImages(slowImage, { signal: ac.signal }));
    expect(err).toMatchObject({ status: 0, code: "aborted" });
    expect(performance.now() - started).toBeLessThan(1500);
    // Already aborted: fails at once.
    expect(await caught(sdk.health({ signal: AbortSignal.abort() }))).toMatchObject({ code: "aborted" });
  });

  it("no router at the address: status 0, code network_error", async () => {
    const srv = createNetServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = await caught(client({ baseUrl: `http://127.0.0.1:${port}` }).listModels());
    expect(err).toMatchObject({ status: 0, code: "network_error" });
    expect(err.cause).toBeDefined();
  });
});

describe("admin service", () => {
  for (const transport of ["connect", "grpc", "grpc-web"] as const) {
    it(`listWorkers and getRouterStatus over ${transport}`, async () => {
      const c = client({ baseUrl: router.url, transport });
      const { workers } = await c.admin.listWorkers({});
      expect(workers.map((w) => w.url).sort()).toEqual([imageSim.url, videoSim.url].sort());
      expect(workers.find((w) => w.url === videoSim.url)!.capabilities!.taskType).toBe("T2V");
      const status = await c.admin.getRouterStatus({});
      expect(status).toMatchObject({ totalWorkers: 2, healthyWorkers: 2 });
    });
  }

  it("a server stream (WatchWorkers) through the SDK's transport: existing workers, then synced; a refused one throws RouterClientError", async () => {
    const c = client({ baseUrl: router.url, transport: "grpc" });
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const ev of c.admin.watchWorkers({ excludeLoad: true }, { signal: controller.signal })) {
      seen.push(WorkerEventType[ev.type]);
      if (ev.type === WorkerEventType.SYNCED) break;
    }
    controller.abort();
    expect(seen).toEqual(["EXISTING", "EXISTING", "SYNCED"]);
    const refused = client({ baseUrl: guarded.url, transport: "grpc" }).admin.watchWorkers({});
    const err = await caught((async () => {
      for await (const _ of refused) void _;
    })());
    expect(err).toMatchObject({ status: 401, code: "unauthenticated", rpcCode: Code.Unauthenticated });
  });

  it("Connect with JSON, and a worker's reply body as JSON", async () => {
    const c = client({ baseUrl: router.url, transport: "connect", useBinaryFormat: false });
    const { workers } = await c.admin.listWorkers({});
    expect(workers).toHaveLength(2);
    const err = await caught(c.admin.getWorker({ url: "http://127.0.0.1:1" }));
    expect(err).toMatchObject({ status: 404, code: "worker_not_found", rpcCode: Code.NotFound, requestId: expect.stringMatching(/.+/) });
    expect(err.message).toMatch(/not found/i);
    expect(routerErrorCode(err)).toBe("worker_not_found");
    // The Connect error stays reachable as the cause, as raw Connect clients see it.
    expect(err.cause).toBeInstanceOf(ConnectError);
    expect(routerErrorCode(err.cause)).toBe("worker_not_found");
    expect(valueToJson(undefined)).toBeNull();
  });
});

describe("api keys", () => {

  for (const transport of ["connect", "grpc"] as const) {
    it(`adminApiKey over ${transport}: Unauthenticated without it, works with it`, async () => {
      const without = client({ baseUrl: guarded.url, transport });
      const err = await caught(without.admin.listWorkers({}));
      expect(err).toMatchObject({ status: 401, code: "unauthenticated", rpcCode: Code.Unauthenticated });
      expect(routerErrorCode(err)).toBe("unauthenticated");
      const wrong = client({ baseUrl: guarded.url, transport, adminApiKey: "K2" });
      expect((await caught(wrong.admin.getRouterStatus({}))).rpcCode).toBe(Code.Unauthenticated);
      const withKey = client({ baseUrl: guarded.url, transport, adminApiKey: "K" });
      expect((await withKey.admin.listWorkers({})).workers.map((w) => w.url)).toEqual([imageSim.url]);
    });
  }

  it("apiKey on the data plane: 401 unauthenticated without it, works with it", async () => {
    const adminOnly = client({ baseUrl: guarded.url, adminApiKey: "K" });
    const err = await caught(adminOnly.generateImages({ prompt: "x", ...small, response_format: "b64_json" }));
    expect(err).toMatchObject({ status: 401, code: "unauthenticated", rpcCode: null });
    expect(routerErrorCode(err)).toBe("unauthenticated");
    const withKey = client({ baseUrl: guarded.url, apiKey: "K2" });
    const r = await withKey.generateImages({ prompt: "x", ...small, response_format: "b64_json" });
    expect(Buffer.from(r.data[0]!.b64_json!, "base64").subarray(0, 8).equals(PNG)).toBe(true);
  });

  it("no video workers: status 400, code no_video_workers", async () => {
    const c = client({ baseUrl: guarded.url, apiKey: "K2" });
    const err = await caught(c.createVideo({ prompt: "a video", ...smallVideo }));
    expect(err).toMatchObject({ status: 400, code: "no_video_workers" });
    expect(err.message).toMatch(/video/i);
    expect(err.body).toMatchObject({ error: expect.stringContaining("video-capable"), code: "no_video_workers" });
    // Headers and the request id, as the OpenAI client's APIError has them.
    expect(err.headers["x-router-error-code"]).toBe("no_video_workers");
    expect(err.requestId).toMatch(/.+/);
  });
});

describe("failing worker", () => {
  beforeAll(async () => {
    // Video requests go only to workers whose /v1/models card says T2V.
    const admin = client({ baseUrl: failRouter.url }).admin;
    await waitFor(async () => (await admin.listWorkers({})).workers[0]?.capabilities?.videoSupport === true, 10_000, "the worker's capabilities");
  }, 20_000);

  it("a failed video job throws code video_failed with the job's error", async () => {
    const c = client({ baseUrl: failRouter.url });
    const job = await c.createVideo({ prompt: "doomed", ...smallVideo });
    const err = await caught(c.waitForVideo(job.id, { pollIntervalMs: 50, timeoutMs: 10_000 }));
    expect(err.code).toBe("video_failed");
    expect(err.status).toBe(200);
    expect(err.message).not.toBe("");
    expect(err.body).toMatchObject({ id: job.id, status: "failed" });
  });

  it("a plain-text 500 becomes status 500, code http_500, the text as message", async () => {
    const c = client({ baseUrl: failRouter.url });
    const err = await caught(c.generateImages({ prompt: "x", ...small }));
    expect(err).toMatchObject({ status: 500, code: "http_500", message: "Internal Server Error", body: "Internal Server Error" });
  });
});

describe("retry", () => {
  let spare: SimProcess | undefined;
  const path = "/v1/images/generations";

  beforeAll(async () => {
    // Dead, not shut down: SIGKILL (a graceful stop would wait for the router's keep-alive connections).
    doomed.kill("SIGKILL");
    await doomed.exited;
    const probe = client({ baseUrl: r3.url });
    await waitFor(async () => (await probe.health()).status === "unhealthy", 10_000, "the only worker to be dead");
  }, 30_000);
  afterAll(async () => {
    await spare?.stop();
  });

  it("without retry: one attempt, 503 no_healthy_workers", async () => {
    const before = accessLogCount(r3, path);
    const err = await caught(client({ baseUrl: r3.url }).generateImages({ prompt: "x", ...small }));
    expect(err).toMatchObject({ status: 503, code: "no_healthy_workers" });
    await waitFor(() => accessLogCount(r3, path) === before + 1, 15_000, "the access log line");
    await holdsFor(100, "no second attempt arrives", () => accessLogCount(r3, path) === before + 1);
    expect(accessLogCount(r3, path)).toBe(before + 1);
  });

  it("retries a 503 the configured number of times (honouring Retry-After), then throws", async () => {
    const c = client({ baseUrl: r3.url, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 50 } });
    const before = accessLogCount(r3, path);
    const started = performance.now();
    const err = await caught(c.generateImages({ prompt: "x", ...small }));
    const elapsed = performance.now() - started;
    expect(err).toMatchObject({ status: 503, code: "no_healthy_workers" });
    await waitFor(() => accessLogCount(r3, path) === before + 3, 15_000, "3 access log lines");
    await holdsFor(100, "no fourth attempt arrives", () => accessLogCount(r3, path) === before + 3);
    expect(accessLogCount(r3, path)).toBe(before + 3);
    // The router says Retry-After: 1, which wins over the 20-50 ms backoff: 2 waits.
    expect(elapsed).toBeGreaterThan(1900);
    expect(elapsed).toBeLessThan(6000);
  }, 10_000);

  it("succeeds when a worker comes back between attempts", async () => {
    const c = client({ baseUrl: r3.url, retry: { attempts: 10, baseDelayMs: 100, maxDelayMs: 200 } });
    const before = accessLogCount(r3, path);
    const call = c.generateImages({ prompt: "back", ...small, response_format: "b64_json" });
    await waitFor(() => accessLogCount(r3, path) > before, 15_000, "the first failed attempt");
    spare = await startSimProcess([]);
    await client({ baseUrl: r3.url }).admin.addWorker({ url: spare.url });
    const r = await call;
    expect(Buffer.from(r.data[0]!.b64_json!, "base64").subarray(0, 8).equals(PNG)).toBe(true);
    // The success is logged when the router's answer finishes, maybe after we got it.
    await waitFor(() => r3.logs.some((l) => l.msg === "request" && l.path === path && l.status === 200), 15_000, "the successful attempt's log line");
    const attempts = accessLogCount(r3, path) - before;
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(10);
  }, 20_000);

  it("retries connection errors, never other 4xx/5xx", async () => {
    // A server that accepts and hangs up at once: a connection error per try.
    let connections = 0;
    const rude = createNetServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => rude.listen(0, "127.0.0.1", r));
    try {
      const c = client({ baseUrl: `http://127.0.0.1:${(rude.address() as AddressInfo).port}`, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
      const err = await caught(c.listModels());
      expect(err).toMatchObject({ status: 0, code: "network_error" });
      expect(connections).toBe(3);
    } finally {
      rude.close();
    }

    let requests = 0;
    const failing: Server = createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(500, { "content-type": "text/plain" }).end("Internal Server Error");
    });
    await new Promise<void>((r) => failing.listen(0, "127.0.0.1", r));
    try {
      const c = client({ baseUrl: `http://127.0.0.1:${(failing.address() as AddressInfo).port}`, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
      expect(await caught(c.generateImages({ prompt: "x" }))).toMatchObject({ status: 500, code: "http_500" });
      expect(requests).toBe(1);
    } finally {
      failing.close();
    }
  });
});
