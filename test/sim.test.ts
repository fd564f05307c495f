import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "@msgpack/msgpack";
import { WebSocket } from "ws";
import pngjs from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_GAIN_CURVE_SPEC, batchGain, batchMs, generationMs, parseGainCurve, startSimWorker, type SimWorker, type SimWorkerOptions } from "../src/sim/index.js";
import { Scheduler } from "../src/sim/scheduler.js";
import { startSimProcess, simCliPath } from "./helpers/sim.js";
import { binaryTool, needTools } from "./helpers/tools.js";

/** Optional: decodes the simulated MP4s (Debian's ffmpeg; .ci/run installs it). */
const ffprobe = binaryTool("ffprobe", "ffmpeg");

// ---------------------------------------------------------------- helpers

const workers: SimWorker[] = [];
async function worker(options: SimWorkerOptions = {}): Promise<SimWorker> {
  const w = await startSimWorker(options);
  workers.push(w);
  return w;
}
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
});

function postJson(base: string, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

async function stats(base: string): Promise<Record<string, any>> {
  return (await fetch(`${base}/sim/stats`)).json() as Promise<Record<string, any>>;
}

async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A tiny image request (~2 ms of simulated work). */
const tiny = { size: "64x64", num_inference_steps: 2 };

interface Box {
  type: string;
  start: number;
  size: number;
  body: Buffer;
}

/** Independent ISO BMFF walker (32-bit and 64-bit sizes). */
function parseBoxes(buf: Buffer, offset = 0): Box[] {
  const out: Box[] = [];
  let pos = 0;
  while (pos + 8 <= buf.length) {
    let size = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    let header = 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = buf.length - pos;
    }
    if (size < header || pos + size > buf.length) throw new Error(`bad box ${type} at ${offset + pos}`);
    out.push({ type, start: offset + pos, size, body: buf.subarray(pos + header, pos + size) });
    pos += size;
  }
  if (pos !== buf.length) throw new Error("trailing bytes after last box");
  return out;
}

function child(boxes: Box[], type: string): Box {
  const found = boxes.find((b) => b.type === type);
  if (!found) throw new Error(`missing box ${type} (have ${boxes.map((b) => b.type).join(",")})`);
  return found;
}

function path(root: Box[], ...types: string[]): Box {
  let boxes = root;
  let box: Box | undefined;
  for (const type of types) {
    box = child(boxes, type);
    boxes = ["moov", "trak", "mdia", "minf", "dinf", "stbl"].includes(type) ? parseBoxes(box.body, box.start + 8) : [];
  }
  return box!;
}

/** Decodes a `{"__tensor__"}` dict: base64 safetensors with one tensor "t". */
function decodeTensor(t: { __tensor__: boolean; data: string; shape: number[]; dtype: string }): Float32Array {
  expect(t.__tensor__).toBe(true);
  const raw = Buffer.from(t.data, "base64");
  const headerLen = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.toString("utf8", 8, 8 + headerLen)) as { t: { dtype: string; shape: number[]; data_offsets: [number, number] } };
  expect(header.t.dtype).toBe("F32");
  expect(header.t.shape).toEqual(t.shape);
  const data = raw.subarray(8 + headerLen);
  expect(data.length).toBe(header.t.data_offsets[1] - header.t.data_offsets[0]);
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

function peakRssKb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+)/.exec(status)![1]);
  } catch {
    return Number(spawnSync("ps", ["-o", "rss=", "-p", String(pid)]).stdout.toString().trim());
  }
}

// ---------------------------------------------------------------- discovery

describe("health and discovery", () => {
  let w: SimWorker;
  beforeAll(async () => {
    w = await worker({ modelPath: "Qwen/Qwen-Image", numGpus: 2 });
  });

  it("answers health probes", async () => {
    for (const p of ["/health", "/health_generate"]) {
      const res = await fetch(w.url + p);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    }
  });

  it("lists exactly one model card", async () => {
    const body = (await (await fetch(`${w.url}/v1/models`)).json()) as { object: string; data: Record<string, unknown>[] };
    expect(body.object).toBe("list");
    expect(body.data).toHaveLength(1);
    const card = body.data[0]!;
    expect(card).toMatchObject({ id: "Qwen/Qwen-Image", object: "model", owned_by: "sglang", root: "Qwen/Qwen-Image", parent: null, max_model_len: null, num_gpus: 2, task_type: "T2I" });
    expect(card["created"]).toBeTypeOf("number");
    for (const k of ["dit_precision", "vae_precision", "pipeline_name", "pipeline_class"]) expect(card).toHaveProperty(k);
  });

  it("answers one card by id (with slashes) and the OpenAI 404 otherwise", async () => {
    const res = await fetch(`${w.url}/v1/models/Qwen/Qwen-Image`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: string }).id).toBe("Qwen/Qwen-Image");
    const missing = await fetch(`${w.url}/v1/models/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: unknown }).error).toMatchObject({ type: "invalid_request_error", param: "model", code: "model_not_found" });
  });

  it("answers server_info and model_info", async () => {
    expect(await (await fetch(`${w.url}/server_info`)).json()).toMatchObject({ model_path: "Qwen/Qwen-Image", served_model_name: "Qwen/Qwen-Image", tp_size: 2, dp_size: 1 });
    expect(await (await fetch(`${w.url}/model_info`)).json()).toMatchObject({ model_path: "Qwen/Qwen-Image", is_generation: true, model_type: "diffusion", task_type: "T2I", is_image_gen: true });
  });

  it("answers FastAPI's 404/405 for unknown routes", async () => {
    const res = await fetch(`${w.url}/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ detail: "Not Found" });
    const wrongMethod = await fetch(`${w.url}/v1/images/generations`);
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toEqual({ detail: "Method Not Allowed" });
  });

  it("derives the task type from the model name", async () => {
    const wan = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" });
    const card = ((await (await fetch(`${wan.url}/v1/models`)).json()) as { data: { task_type: string }[] }).data[0]!;
    expect(card.task_type).toBe("T2V");
    const explicit = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", taskType: "I2V" });
    expect(((await (await fetch(`${explicit.url}/model_info`)).json()) as { task_type: string }).task_type).toBe("I2V");
  });
});

describe("served name, dp_size and the newer task types", () => {
  it("names the card and /server_info by --served-model-name, and reports dp_size", async () => {
    const w = await worker({ modelPath: "/models/qwen-image", servedModelName: "qwen-image", dpSize: 2 });
    const card = ((await (await fetch(`${w.url}/v1/models`)).json()) as { data: Record<string, unknown>[] }).data[0]!;
    expect(card).toMatchObject({ id: "qwen-image", root: "qwen-image" });
    expect((await fetch(`${w.url}/v1/models/qwen-image`)).status).toBe(200);
    expect((await fetch(`${w.url}/v1/models/models/qwen-image`)).status).toBe(404);
    expect(await (await fetch(`${w.url}/server_info`)).json()).toMatchObject({ model_path: "/models/qwen-image", served_model_name: "qwen-image", dp_size: 2 });
    expect(await (await fetch(`${w.url}/models`)).json()).toMatchObject({ model_path: "/models/qwen-image", task_type: "T2I" });
    expect(await (await fetch(`${w.url}/v1/model_info`)).json()).toEqual({ model_path: "/models/qwen-image" });
    expect(await (await fetch(`${w.url}/stats`)).json()).toMatchObject({ status: "ok", model_path: "/models/qwen-image" });
  });

  it("runs dp_size generations at once", async () => {
    const timed = async (dpSize: number) => {
      // ~400 ms each: long enough that request overhead on a loaded machine
      // (tens of ms) cannot make one-at-a-time look like two at once.
      const w = await worker({ dpSize, speed: 0.005 });
      const started = Date.now();
      await Promise.all([0, 1].map((i) => postJson(w.url, "/v1/images/generations", { prompt: `p${i}`, ...tiny, response_format: "b64_json" })));
      return { ms: Date.now() - started, peak: (await stats(w.url))["peak_in_flight"] as number };
    };
    // One at a time takes about twice as long as two at once.
    const [one, two] = [await timed(1), await timed(2)];
    expect(two.ms).toBeLessThan(one.ms * 0.8);
  });

  it("serves V2V, F2V and VLA_ACTION cards, with model_info to match", async () => {
    for (const [taskType, image] of [["V2V", false], ["F2V", true], ["VLA_ACTION", true]] as const) {
      const w = await worker({ taskType });
      const card = ((await (await fetch(`${w.url}/v1/models`)).json()) as { data: { task_type: string }[] }).data[0]!;
      expect(card.task_type).toBe(taskType);
      const info = (await (await fetch(`${w.url}/model_info`)).json()) as Record<string, unknown>;
      expect(info).toMatchObject({ task_type: taskType, is_image_gen: false, has_image_understanding: image });
    }
  });
});

// ---------------------------------------------------------------- LoRA

describe("LoRA adapters", () => {
  it("sets, merges and unmerges, answering like common_api.py, and lists the state per module", async () => {
    const w = await worker();
    expect(await (await fetch(`${w.url}/v1/list_loras`)).json()).toEqual({ loaded_adapters: [], active: {} });
    const set = await postJson(w.url, "/v1/set_lora", { lora_nickname: "pixel", lora_path: "/loras/pixel.safetensors", strength: 0.8 });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ status: "ok", message: "Successfully set LoRA adapter(s): pixel (target: all, strength: 0.8)" });
    expect(await (await fetch(`${w.url}/v1/list_loras`)).json()).toEqual({
      loaded_adapters: [{ nickname: "pixel", path: "/loras/pixel.safetensors" }],
      active: { transformer: [{ nickname: "pixel", path: "/loras/pixel.safetensors", merged: true, strength: 0.8 }] },
    });
    // Generations say which adapter made them.
    const gen = await postJson(w.url, "/v1/images/generations", { prompt: "x", ...tiny });
    expect(gen.headers.get("x-sim-lora")).toBe("pixel");

    const unmerge = await postJson(w.url, "/v1/unmerge_lora_weights", {});
    expect(await unmerge.json()).toEqual({ status: "ok", message: "Successfully unmerged LoRA weights (target: all)" });
    const listed = (await (await fetch(`${w.url}/v1/list_loras`)).json()) as { active: Record<string, { merged: boolean }[]> };
    expect(listed.active["transformer"]![0]!.merged).toBe(false);
    const merge = await postJson(w.url, "/v1/merge_lora_weights", { strength: 0.5 });
    expect(await merge.json()).toEqual({ status: "ok", message: "Successfully merged LoRA weights (target: all, strength: 0.5)" });

    // A loaded adapter can be set again by nickname alone; an unknown one cannot.
    expect((await postJson(w.url, "/v1/set_lora", { lora_nickname: "pixel" })).status).toBe(200);
    const unknown = await postJson(w.url, "/v1/set_lora", { lora_nickname: "nope" });
    expect(unknown.status).toBe(500);
    expect(((await unknown.json()) as { detail: string }).detail).toMatch(/^Failed to set LoRA adapter: /);
    const missing = await postJson(w.url, "/v1/set_lora", {});
    expect(missing.status).toBe(422);
    expect(await missing.json()).toEqual({ detail: [{ type: "missing", loc: ["body", "lora_nickname"], msg: "Field required", input: null }] });
  });

  it("merging with no adapter set is a 500 naming the failure", async () => {
    const w = await worker();
    const res = await postJson(w.url, "/v1/merge_lora_weights", {});
    expect(res.status).toBe(500);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/^Failed to merge LoRA weights: /);
  });

  it("queues LoRA calls behind the generations sent before them", async () => {
    const w = await worker({ speed: 0.02 });
    const gen = postJson(w.url, "/v1/images/generations", { prompt: "slow", ...tiny });
    await waitFor(async () => ((await stats(w.url))["scheduler_running"] === 1 ? true : undefined));
    const started = Date.now();
    const list = await fetch(`${w.url}/v1/list_loras`);
    expect(list.status).toBe(200);
    const genRes = await gen;
    expect(genRes.status).toBe(200);
    // The list waited for the ~100 ms generation ahead of it.
    expect(Date.now() - started).toBeGreaterThan(40);
  });
});

// ---------------------------------------------------------------- images

describe("images", () => {
  let w: SimWorker;
  beforeAll(async () => {
    w = await worker();
  });

  it("answers b64_json with one valid, deterministic PNG per output", async () => {
    const ask = (seed: number) => postJson(w.url, "/v1/images/generations", { prompt: "a cat", n: 2, seed, response_format: "b64_json", ...tiny });
    const res = await ask(7);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
    expect(res.headers.get("x-sim-worker")).toBe(w.url);
    const body = (await res.json()) as { id: string; created: number; data: { b64_json: string; url: null; revised_prompt: null; file_path: null }[]; peak_memory_mb: number; inference_time_s: number };
    expect(body.data).toHaveLength(2);
    expect(body.data[0]).toMatchObject({ url: null, revised_prompt: "a cat", file_path: `/sim/outputs/${body.id}_0.png` });
    expect(body.inference_time_s).toBeTypeOf("number");
    const png = pngjs.PNG.sync.read(Buffer.from(body.data[0]!.b64_json, "base64"));
    expect([png.width, png.height]).toEqual([64, 64]);
    // Outputs use seeds 7 and 8: they differ.
    expect(body.data[0]!.b64_json).not.toBe(body.data[1]!.b64_json);

    const again = (await (await ask(7)).json()) as typeof body;
    expect(again.data[0]!.b64_json).toBe(body.data[0]!.b64_json);
    const other = (await (await ask(99)).json()) as typeof body;
    expect(other.data[0]!.b64_json).not.toBe(body.data[0]!.b64_json);
  });

  it("caps the drawn size but keeps the aspect ratio", async () => {
    const res = await postJson(w.url, "/v1/images/generations", { prompt: "wide", width: 1024, height: 512, num_inference_steps: 1, response_format: "b64_json" });
    const body = (await res.json()) as { data: { b64_json: string }[] };
    const png = pngjs.PNG.sync.read(Buffer.from(body.data[0]!.b64_json, "base64"));
    expect([png.width, png.height]).toEqual([256, 128]);
  });

  it("answers url mode with one item per output, ?variant=i, each content a different PNG", async () => {
    const res = await postJson(w.url, "/v1/images/generations", { prompt: "a dog", n: 3, ...tiny });
    const body = (await res.json()) as { id: string; data: { url: string; b64_json: null; revised_prompt: string; file_path: string }[] };
    expect(body.data.map((d) => d.url)).toEqual([0, 1, 2].map((i) => `/v1/images/${body.id}/content?variant=${i}`));
    expect(body.data[2]).toMatchObject({ b64_json: null, revised_prompt: "a dog", file_path: `/sim/outputs/${body.id}_2.png` });
    const pngs: string[] = [];
    for (const item of body.data) {
      const content = await fetch(w.url + item.url);
      expect(content.status).toBe(200);
      expect(content.headers.get("content-type")).toBe("image/png");
      const bytes = Buffer.from(await content.arrayBuffer());
      expect(pngjs.PNG.sync.read(bytes).width).toBe(64);
      pngs.push(bytes.toString("base64"));
    }
    expect(new Set(pngs).size).toBe(3);
    const noVariant = await fetch(`${w.url}/v1/images/${body.id}/content?variant=3`);
    expect(noVariant.status).toBe(404);
    expect(await noVariant.json()).toEqual({ detail: "Image variant 3 not found" });

    const one = (await (await postJson(w.url, "/v1/images/generations", { prompt: "one", ...tiny })).json()) as typeof body;
    expect(one.data.map((d) => d.url)).toEqual([`/v1/images/${one.id}/content`]);
    expect(one.data[0]!.file_path).toBe(`/sim/outputs/${one.id}.png`);
    const missing = await fetch(`${w.url}/v1/images/unknown/content`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: "Image not found" });
  });

  it("clamps n to 1..10, ignores a malformed size, and checks response_format only after generating", async () => {
    const ask = async (extra: Record<string, unknown>) => (await postJson(w.url, "/v1/images/generations", { prompt: "x", num_inference_steps: 1, response_format: "b64_json", ...extra })).json() as Promise<{ data: { b64_json: string }[] }>;
    expect((await ask({ n: 11, size: "64x64" })).data).toHaveLength(10);
    expect((await ask({ n: 0, size: "64x64" })).data).toHaveLength(1);
    // A malformed size falls back to the model's 1024x1024 (drawn capped at 256).
    const fallback = await ask({ size: "huge" });
    expect(pngjs.PNG.sync.read(Buffer.from(fallback.data[0]!.b64_json, "base64")).width).toBe(256);

    const before = (await stats(w.url))["generations_run"] as number;
    const bad = await postJson(w.url, "/v1/images/generations", { prompt: "x", ...tiny, response_format: "gif" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ detail: "response_format=gif is not supported" });
    // The GPU work was done before the format was looked at.
    expect((await stats(w.url))["generations_run"]).toBe(before + 1);
  });

  it("answers FastAPI 422s for a missing prompt, bad JSON and a non-integer n", async () => {
    const missing = await postJson(w.url, "/v1/images/generations", { n: 1 });
    expect(missing.status).toBe(422);
    expect(await missing.json()).toEqual({ detail: [{ type: "missing", loc: ["body", "prompt"], msg: "Field required", input: null }] });

    const bad = await postJson(w.url, "/v1/images/generations", '{"prompt": ');
    expect(bad.status).toBe(422);
    const badBody = (await bad.json()) as { detail: { type: string; loc: unknown[] }[] };
    expect(badBody.detail[0]!.type).toBe("json_invalid");
    expect(badBody.detail[0]!.loc[0]).toBe("body");

    const badN = await postJson(w.url, "/v1/images/generations", { prompt: "x", n: "many" });
    expect(badN.status).toBe(422);
    expect(((await badN.json()) as { detail: unknown[] }).detail[0]).toMatchObject({ type: "int_parsing", loc: ["body", "n"] });
  });

  it("answers the plain-text 500 when failure_rate is 1", async () => {
    const f = await worker({ failureRate: 1 });
    const res = await postJson(f.url, "/v1/images/generations", { prompt: "x", ...tiny });
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("Internal Server Error");
    // and /sim/config turns it off at run time
    const cfg = await postJson(f.url, "/sim/config", { failure_rate: 0 });
    expect(await cfg.json()).toMatchObject({ failure_rate: 0, speed: 1 });
    expect((await postJson(f.url, "/v1/images/generations", { prompt: "x", ...tiny })).status).toBe(200);
  });

  it("streams a multipart edit, reporting the uploaded bytes and sha256", async () => {
    const file = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < file.length; i++) file[i] = (i * 31) & 0xff;
    const form = new FormData();
    form.append("prompt", "make it blue");
    form.append("response_format", "b64_json");
    form.append("size", "64x64");
    form.append("num_inference_steps", "2");
    form.append("image", new Blob([file], { type: "image/png" }), "in.png");
    const before = (await stats(w.url))["bytes_received"] as number;
    const res = await fetch(`${w.url}/v1/images/edits`, { method: "POST", body: form });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
    const body = (await res.json()) as { data: unknown[]; input_bytes: number; input_sha256: string };
    expect(body.data).toHaveLength(1);
    expect(body.input_bytes).toBe(file.length);
    expect(body.input_sha256).toBe(createHash("sha256").update(file).digest("hex"));
    expect(((await stats(w.url))["bytes_received"] as number) - before).toBeGreaterThan(file.length);

    const noPrompt = new FormData();
    noPrompt.append("image", new Blob([Buffer.from("x")]), "a.png");
    const bad = await fetch(`${w.url}/v1/images/edits`, { method: "POST", body: noPrompt });
    expect(bad.status).toBe(422);
    expect(await bad.json()).toEqual({ detail: [{ type: "missing", loc: ["body", "prompt"], msg: "Field required", input: null }] });
  });

  it("answers the older /v1/diffusion/generate shape", async () => {
    const res = await postJson(w.url, "/v1/diffusion/generate", { prompt: "old", ...tiny, get_log_probs: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-sim-worker")).toBe(w.url);
    const body = (await res.json()) as Record<string, any>;
    expect(body["output_format"]).toBe("png");
    expect(pngjs.PNG.sync.read(Buffer.from(body["output_b64"] as string, "base64")).width).toBe(64);
    expect(body["trajectory"]).toMatchObject({ latents: null, log_probs_shape: [1, 2] });
    for (const k of ["id", "created", "file_path", "peak_memory_mb", "inference_time_s"]) expect(body).toHaveProperty(k);
  });
});

// ---------------------------------------------------------------- videos

describe("videos", () => {
  let v: SimWorker;
  beforeAll(async () => {
    v = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" });
  });

  type Job = Record<string, any>;
  const getJob = async (base: string, id: string) => (await (await fetch(`${base}/v1/videos/${id}`)).json()) as Job;
  const settle = (base: string, id: string) =>
    waitFor(async () => {
      const job = await getJob(base, id);
      return job["status"] === "queued" ? undefined : job;
    });

  it("runs a job from queued to completed with a real MP4", async () => {
    const res = await postJson(v.url, "/v1/videos", { prompt: "a wave", size: "320x192", seconds: 1, fps: 8, num_inference_steps: 2, seed: 5 });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-sim-weights")).toBe("Wan-AI/Wan2.1-T2V-1.3B-Diffusers");
    const job = (await res.json()) as Job;
    expect(job).toMatchObject({ object: "video", status: "queued", progress: 0, size: "320x192", seconds: "1", url: null, completed_at: null, error: null });

    const done = await settle(v.url, job["id"] as string);
    expect(done).toMatchObject({ status: "completed", progress: 100 });
    expect(done["completed_at"]).toBeTypeOf("number");

    const content = await fetch(`${v.url}/v1/videos/${job["id"]}/content`);
    expect(content.status).toBe(200);
    expect(content.headers.get("content-type")).toBe("video/mp4");
    expect(content.headers.get("x-sim-weights")).toBe("Wan-AI/Wan2.1-T2V-1.3B-Diffusers");
    const mp4 = Buffer.from(await content.arrayBuffer());

    const top = parseBoxes(mp4);
    expect(top[0]!.type).toBe("ftyp");
    expect(top[0]!.body.toString("latin1", 0, 4)).toBe("isom");
    const mdat = child(top, "mdat");
    const mvhd = path(top, "moov", "mvhd");
    const timescale = mvhd.body.readUInt32BE(12);
    expect(mvhd.body.readUInt32BE(16) / timescale).toBeCloseTo(1, 1); // 8 frames at 8 fps
    const tkhd = path(top, "moov", "trak", "tkhd");
    const width = tkhd.body.readUInt32BE(76) >>> 16;
    const height = tkhd.body.readUInt32BE(80) >>> 16;
    expect(width / height).toBeCloseTo(320 / 192, 0);
    expect(path(top, "moov", "trak", "mdia", "hdlr").body.toString("latin1", 8, 12)).toBe("vide");
    path(top, "moov", "trak", "mdia", "minf", "vmhd");
    path(top, "moov", "trak", "mdia", "minf", "dinf", "dref");
    const stsd = path(top, "moov", "trak", "mdia", "minf", "stbl", "stsd");
    expect(stsd.body.readUInt32BE(4)).toBe(1);
    const stsz = path(top, "moov", "trak", "mdia", "minf", "stbl", "stsz");
    const sampleSize = stsz.body.readUInt32BE(4);
    const samples = stsz.body.readUInt32BE(8);
    expect(samples).toBeGreaterThan(1);
    expect(sampleSize * samples).toBe(mdat.size - 8);
    const stts = path(top, "moov", "trak", "mdia", "minf", "stbl", "stts");
    expect(stts.body.readUInt32BE(8)).toBe(samples);
    path(top, "moov", "trak", "mdia", "minf", "stbl", "stsc");
    const stco = path(top, "moov", "trak", "mdia", "minf", "stbl", "stco");
    expect(stco.body.readUInt32BE(8)).toBe(mdat.start + 8);
    // frames differ (motion)
    expect(mp4.subarray(mdat.start + 8, mdat.start + 8 + sampleSize).equals(mp4.subarray(mdat.start + 8 + sampleSize, mdat.start + 8 + 2 * sampleSize))).toBe(false);

    const list = (await (await fetch(`${v.url}/v1/videos?limit=100&order=asc`)).json()) as { object: string; data: Job[] };
    expect(list.object).toBe("list");
    expect(list.data.map((j) => j["id"])).toContain(job["id"]);

    const deleted = await fetch(`${v.url}/v1/videos/${job["id"]}`, { method: "DELETE" });
    expect(((await deleted.json()) as Job)["status"]).toBe("deleted");
    for (const p of ["", "/content"]) {
      const gone = await fetch(`${v.url}/v1/videos/${job["id"]}${p}`);
      expect(gone.status).toBe(404);
      expect(await gone.json()).toEqual({ detail: "Video not found" });
    }
  });

  it("writes MP4s that ffprobe decodes, every frame", async (ctx) => {
    // A real decoder must read them, not only our box parser above.
    needTools(ctx, ffprobe);
    const res = await postJson(v.url, "/v1/videos", { prompt: "a wave", size: "320x192", seconds: 1, fps: 8, num_inference_steps: 2, seed: 6 });
    const job = (await res.json()) as Job;
    expect(await settle(v.url, job["id"] as string)).toMatchObject({ status: "completed" });
    const mp4 = Buffer.from(await (await fetch(`${v.url}/v1/videos/${job["id"]}/content`)).arrayBuffer());
    const samples = path(parseBoxes(mp4), "moov", "trak", "mdia", "minf", "stbl", "stsz").body.readUInt32BE(8);
    const dir = mkdtempSync(join(tmpdir(), "sim-mp4-"));
    try {
      writeFileSync(join(dir, "v.mp4"), mp4);
      const out = spawnSync(ffprobe.path!, ["-v", "error", "-count_frames", "-show_streams", "-of", "json", join(dir, "v.mp4")]);
      expect(out.status, out.stderr?.toString()).toBe(0);
      const stream = (JSON.parse(out.stdout.toString()) as { streams: Record<string, unknown>[] }).streams[0]!;
      expect(stream["codec_type"]).toBe("video");
      expect(Number(stream["nb_read_frames"])).toBe(samples);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers 404 'still in-progress' before completion, and accepts multipart", async () => {
    const form = new FormData();
    form.append("prompt", "slow");
    form.append("size", "640x384");
    form.append("seconds", "1");
    form.append("fps", "8");
    form.append("num_inference_steps", "150");
    form.append("input_reference", new Blob([Buffer.alloc(1000, 1)]), "ref.png");
    const job = (await (await fetch(`${v.url}/v1/videos`, { method: "POST", body: form })).json()) as Job;
    expect(job["status"]).toBe("queued");
    const early = await fetch(`${v.url}/v1/videos/${job["id"]}/content`);
    expect(early.status).toBe(404);
    expect(await early.json()).toEqual({ detail: "Generation is still in-progress" });
    expect((await settle(v.url, job["id"] as string))["status"]).toBe("completed");
  });

  it("pages the list with after/limit and checks limit like FastAPI", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(((await (await postJson(v.url, "/v1/videos", { prompt: `p${i}`, size: "64x64", seconds: 1, fps: 2, num_inference_steps: 1 })).json()) as Job)["id"] as string);
    }
    const asc = ((await (await fetch(`${v.url}/v1/videos?order=asc`)).json()) as { data: Job[] }).data.map((j) => j["id"] as string);
    const start = asc.indexOf(ids[0]!);
    const page = ((await (await fetch(`${v.url}/v1/videos?order=asc&after=${ids[0]}&limit=1`)).json()) as { data: Job[] }).data;
    expect(page.map((j) => j["id"])).toEqual([asc[start + 1]]);
    const bad = await fetch(`${v.url}/v1/videos?limit=0`);
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { detail: unknown[] }).detail[0]).toMatchObject({ loc: ["query", "limit"] });
    expect(await (await fetch(`${v.url}/v1/videos/nope`)).json()).toEqual({ detail: "Video not found" });
  });

  it("an image-only worker accepts the job, which then fails", async () => {
    const img = await worker({ modelPath: "Qwen/Qwen-Image" });
    const res = await postJson(img.url, "/v1/videos", { prompt: "nope", size: "64x64", seconds: 1 });
    expect(res.status).toBe(200);
    const done = await settle(img.url, ((await res.json()) as Job)["id"] as string);
    expect(done["status"]).toBe("failed");
    expect(done["error"]["message"]).toMatch(/T2I/);
    const content = await fetch(`${img.url}/v1/videos/${done["id"]}/content`);
    expect(content.status).toBe(404);
  });
});

describe("video job details and meshes", () => {
  it("a DELETE of a queued job only forgets it: the GPU work still runs", async () => {
    const v = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", speed: 0.05 });
    const body = { prompt: "w", size: "64x64", seconds: 1, fps: 2, num_inference_steps: 1 };
    const first = (await (await postJson(v.url, "/v1/videos", body)).json()) as Record<string, any>;
    const queued = (await (await postJson(v.url, "/v1/videos", body)).json()) as Record<string, any>;
    const deleted = await fetch(`${v.url}/v1/videos/${queued["id"]}`, { method: "DELETE" });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toMatchObject({ id: queued["id"], status: "deleted" });
    expect((await fetch(`${v.url}/v1/videos/${queued["id"]}`)).status).toBe(404);
    // Both generations run: there is no abort.
    await waitFor(async () => ((await stats(v.url))["generations_run"] === 2 ? true : undefined));
    expect((await fetch(`${v.url}/v1/videos/${first["id"]}`)).status).toBe(200);
    expect((await fetch(`${v.url}/v1/videos/${queued["id"]}`)).status).toBe(404);
  });

  it("uses the model's size for a malformed one, fps x seconds frames, and num_outputs_per_prompt over n", async () => {
    const v = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", speed: 1000 });
    const job = (await (await postJson(v.url, "/v1/videos", { prompt: "w", size: "wide", seconds: 2, fps: 3, n: 4, num_outputs_per_prompt: 2 })).json()) as Record<string, any>;
    expect(job).toMatchObject({ status: "queued", size: "1280x720", seconds: "2", num_outputs: 2 });
    expect(job["file_paths"]).toHaveLength(2);
    expect(job["file_path"]).toMatch(/^\//);
  });

  it("runs an image-to-mesh job from an uploaded image to a glTF binary", async () => {
    const m = await worker({ modelPath: "tencent/Hunyuan3D-2", taskType: "I2M" });
    const form = new FormData();
    form.append("image", new Blob([Buffer.from("an image")], { type: "image/png" }), "in.png");
    form.append("seed", "3");
    const res = await fetch(`${m.url}/v1/meshes`, { method: "POST", body: form });
    expect(res.status).toBe(200);
    const job = (await res.json()) as Record<string, any>;
    expect(job).toMatchObject({ object: "mesh", status: "queued", progress: 0, format: "glb", model: "" });
    const done = await waitFor(async () => {
      const j = (await (await fetch(`${m.url}/v1/meshes/${job["id"]}`)).json()) as Record<string, any>;
      return j["status"] === "queued" ? undefined : j;
    });
    expect(done).toMatchObject({ status: "completed", progress: 100 });
    const content = await fetch(`${m.url}/v1/meshes/${job["id"]}/content`);
    expect(content.headers.get("content-type")).toBe("model/gltf-binary");
    const glb = Buffer.from(await content.arrayBuffer());
    expect(glb.toString("latin1", 0, 4)).toBe("glTF");
    expect(glb.readUInt32LE(8)).toBe(glb.length);
    expect(done["file_size_bytes"]).toBe(glb.length);
    expect(((await (await fetch(`${m.url}/v1/meshes`)).json()) as { data: unknown[] }).data).toHaveLength(1);

    const noImage = await postJson(m.url, "/v1/meshes", { prompt: "x" });
    expect(noImage.status).toBe(422);
    expect(await noImage.json()).toEqual({ detail: "An input image is required for mesh generation" });
    const obj = (await (await postJson(m.url, "/v1/meshes", { input_image: "data:image/png;base64,AAAA", output_format: "obj" })).json()) as Record<string, any>;
    expect(obj["format"]).toBe("obj");
    expect((await fetch(`${m.url}/v1/meshes/${obj["id"]}`, { method: "DELETE" })).status).toBe(200);
    expect(await (await fetch(`${m.url}/v1/meshes/${obj["id"]}`)).json()).toEqual({ detail: "Mesh not found" });
  });
});

describe("realtime video WebSocket", () => {
  /** Opens the socket and collects every decoded message until it closes. */
  function session(url: string, send: (ws: WebSocket) => void): Promise<{ messages: Record<string, any>[]; code: number; reason: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace("http", "ws")}/v1/realtime_video/generate`);
      const messages: Record<string, any>[] = [];
      ws.on("open", () => send(ws));
      ws.on("message", (data) => messages.push(decodeMsgpack(data as Buffer) as Record<string, any>));
      ws.on("close", (code, reason) => resolve({ messages, code, reason: reason.toString() }));
      ws.on("error", reject);
    });
  }

  it("answers a bad init with an error, then streams max_chunks frame batches and closes 1000", async () => {
    const w = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", taskType: "T2V" });
    const { messages, code, reason } = await session(w.url, (ws) => {
      ws.send(encodeMsgpack({ size: "64x32" })); // no prompt
      ws.send(encodeMsgpack({ prompt: "a road", size: "64x32", num_frames: 2, max_chunks: 3 }));
      ws.send(encodeMsgpack({ kind: "heartbeat" }));
    });
    expect(messages[0]).toEqual({ type: "error", content: "invalid generate request" });
    const batches = messages.slice(1);
    expect(batches.map((m) => m["chunk_index"])).toEqual([0, 1, 2]);
    expect(batches[0]).toMatchObject({ type: "frame_batch", format: "rgb24", width: 64, height: 32, channels: 3, num_frames: 2, bytes_per_frame: 64 * 32 * 3, is_final_frame_batch: true });
    expect((batches[0]!["payload"] as Uint8Array).length).toBe(2 * 64 * 32 * 3);
    expect([code, reason]).toEqual([1000, "generation complete"]);
  });

  it("an image-only worker fails every init; another path is FastAPI's 404", async () => {
    const w = await worker();
    const ws = new WebSocket(`${w.url.replace("http", "ws")}/v1/realtime_video/generate`);
    const first = await new Promise<Record<string, any>>((resolve, reject) => {
      ws.on("open", () => ws.send(encodeMsgpack({ prompt: "x" })));
      ws.on("message", (data) => resolve(decodeMsgpack(data as Buffer) as Record<string, any>));
      ws.on("error", reject);
    });
    expect(first).toEqual({ type: "error", content: "invalid generate request" });
    ws.close();
    const other = new WebSocket(`${w.url.replace("http", "ws")}/v1/realtime_video/nope`);
    const status = await new Promise<number>((resolve) => other.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(404);
  });
});

// ---------------------------------------------------------------- rollout

describe("rollout", () => {
  let w: SimWorker;
  beforeAll(async () => {
    w = await worker();
  });

  it("answers a MessagePack list, one entry per sample, each with the request's seed, whatever Accept says", async () => {
    for (const accept of ["application/json", "application/msgpack", "*/*"]) {
      const res = await postJson(w.url, "/rollout/generate", { prompt: "rl", seed: 7, num_outputs_per_prompt: 3, width: 64, height: 64, num_inference_steps: 4, sim_bytes_per_sample: 1000 }, { accept });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/msgpack");
      expect(res.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(Number(res.headers.get("content-length"))).toBe(bytes.length);
      const list = decodeMsgpack(bytes) as Record<string, any>[];
      expect(list.map((s) => s["seed"])).toEqual([7, 7, 7]);
      for (const s of list) {
        for (const k of ["request_id", "prompt", "seed", "generated_output", "rollout_log_probs", "denoising_env", "dit_trajectory", "inference_time_s", "peak_memory_mb"]) expect(s).toHaveProperty(k);
        expect(decodeTensor(s["generated_output"]).length).toBe(250);
        expect(decodeTensor(s["rollout_log_probs"]).length).toBe(4);
      }
      // The samples were drawn with different seeds even though each reports the request's.
      expect(list[0]!["generated_output"]["data"]).not.toBe(list[1]!["generated_output"]["data"]);
    }
  });

  it("carries the DiT trajectory when asked", async () => {
    const res = await postJson(w.url, "/rollout/generate", { prompt: "rl", seed: 1, num_outputs_per_prompt: 2, width: 64, height: 64, num_inference_steps: 2, sim_bytes_per_sample: 4000, rollout_return_dit_trajectory: true });
    const list = decodeMsgpack(new Uint8Array(await res.arrayBuffer())) as Record<string, any>[];
    expect(decodeTensor(list[0]!["generated_output"]).length).toBe(1000);
    expect(list[0]!["dit_trajectory"]).toHaveProperty("latents");
  });

  it("streams a 64 MB answer without holding it (process RSS stays low)", async () => {
    const sim = await startSimProcess();
    try {
      // Warm up the code paths first so the baseline includes them.
      await (await postJson(sim.url, "/rollout/generate", { prompt: "warm", width: 64, height: 64, num_inference_steps: 1, sim_bytes_per_sample: 1_000_000 })).arrayBuffer();
      const before = peakRssKb(sim.pid);
      const res = await postJson(sim.url, "/rollout/generate", { prompt: "big", width: 64, height: 64, num_inference_steps: 1, num_outputs_per_prompt: 2, sim_bytes_per_sample: 32 * 1024 * 1024 });
      expect(res.status).toBe(200);
      const length = Number(res.headers.get("content-length"));
      expect(length).toBeGreaterThan(64 * 1024 * 1024);
      let received = 0;
      const reader = res.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
      }
      expect(received).toBe(length);
      const growthMb = (peakRssKb(sim.pid) - before) / 1024;
      // The base64 answer is ~85 MB; buffering it would grow RSS by at least that.
      expect(growthMb).toBeLessThan(40);
    } finally {
      await sim.stop();
    }
  });
});

// ---------------------------------------------------------------- weights and memory

describe("weights and memory", () => {
  it("updates weights from disk; generations then carry the new weights", async () => {
    const w = await worker({ weightLoadMs: 20 });
    const sumsBefore = await (await postJson(w.url, "/get_weights_checksum", { module_names: ["transformer", "vae"] })).json();
    const res = await postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/step-1" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true, message: "Updated 3 modules (transformer, vae, text_encoder)." });
    expect((await stats(w.url))["weights"]).toBe("ckpt/step-1");
    const gen = await postJson(w.url, "/v1/images/generations", { prompt: "x", ...tiny });
    expect(gen.headers.get("x-sim-weights")).toBe("ckpt/step-1");
    const sumsAfter = (await (await postJson(w.url, "/get_weights_checksum", { module_names: ["transformer", "vae"] })).json()) as Record<string, string>;
    expect(Object.keys(sumsAfter)).toEqual(["transformer", "vae"]);
    expect(sumsAfter).not.toEqual(sumsBefore);
    expect(sumsAfter["transformer"]).toMatch(/^[0-9a-f]{64}$/);

    const tensor = await postJson(w.url, "/update_weights_from_tensor", { serialized_named_tensors: ["abc"], load_format: "direct", target_modules: ["transformer"], weight_version: "v7" });
    expect(await tensor.json()).toMatchObject({ success: true });
    expect((await stats(w.url))["weights"]).toBe("tensor:v7");
  });

  it("refuses a missing model_path and keeps weights when updates fail", async () => {
    const w = await worker({ weightLoadMs: 10, failUpdates: true });
    const missing = await postJson(w.url, "/update_weights_from_disk", {});
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ success: false, message: "model_path is required" });
    const failed = await postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/bad" });
    expect(failed.status).toBe(400);
    expect(await failed.json()).toMatchObject({ success: false });
    expect((await stats(w.url))["weights"]).toBe("Qwen/Qwen-Image");
    await postJson(w.url, "/sim/config", { fail_updates: false });
    expect((await postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/good" })).status).toBe(200);
    // bad JSON on these raw-JSON routes is an unhandled exception upstream: plain 500
    const bad = await postJson(w.url, "/update_weights_from_disk", "{");
    expect(bad.status).toBe(500);
    expect(await bad.text()).toBe("Internal Server Error");
  });

  it("sleeps and wakes with the real messages; asleep, /health is ok and work fails as upstream's does", async () => {
    const w = await worker({ weightLoadMs: 10, taskType: "T2V" });
    // Release and resume read no body.
    const release = await fetch(`${w.url}/release_memory_occupation`, { method: "POST" });
    expect(release.status).toBe(200);
    expect(await release.json()).toEqual({ success: true, sleeping: true, message: "released GPU memory (moved active modules to CPU)" });
    const again = await (await fetch(`${w.url}/release_memory_occupation`, { method: "POST" })).json();
    expect(again).toEqual({ success: true, sleeping: true, message: "already sleeping" });
    expect((await stats(w.url))["sleeping"]).toBe(true);
    expect(await (await fetch(`${w.url}/health`)).json()).toEqual({ status: "ok" });

    // The scheduler raises; the OpenAI routes do not catch it: Starlette's plain-text 500.
    for (const [p, body] of [
      ["/v1/images/generations", { prompt: "x", ...tiny }],
      ["/v1/diffusion/generate", { prompt: "x", ...tiny }],
    ] as const) {
      const res = await postJson(w.url, p, body);
      expect(res.status).toBe(500);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await res.text()).toBe("Internal Server Error");
    }
    const rollout = await postJson(w.url, "/rollout/generate", { prompt: "x", width: 64, height: 64 });
    expect(rollout.status).toBe(500);
    expect(await rollout.json()).toEqual({ detail: "Server is sleeping. Call resume_memory_occupation first." });
    // A video create is still accepted; the job then fails.
    const job = (await (await postJson(w.url, "/v1/videos", { prompt: "x", size: "64x64", seconds: 1, fps: 2, num_inference_steps: 1 })).json()) as { id: string; status: string };
    expect(job.status).toBe("queued");
    const failed = await waitFor(async () => {
      const j = (await (await fetch(`${w.url}/v1/videos/${job.id}`)).json()) as { status: string; error: { message: string } };
      return j.status === "failed" ? j : undefined;
    });
    expect(failed.error.message).toBe("Model generation returned no output. Error from scheduler: Server is sleeping. Call resume_memory_occupation first.");

    const update = await postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/x" });
    expect(update.status).toBe(500);
    expect(await update.json()).toEqual({ success: false, message: "Cannot update weights while the server is sleeping. Call resume_memory_occupation first." });

    const resume = await (await fetch(`${w.url}/resume_memory_occupation`, { method: "POST" })).json();
    expect(resume).toEqual({ success: true, sleeping: false, message: "resumed GPU memory (restored modules to original devices)" });
    const resumeAgain = await (await fetch(`${w.url}/resume_memory_occupation`, { method: "POST" })).json();
    expect(resumeAgain).toEqual({ success: true, sleeping: false, message: "already awake" });
    expect((await postJson(w.url, "/v1/images/generations", { prompt: "x", ...tiny })).status).toBe(200);
  });

  it("checks tensors with /update_weights_from_tensor_checker against the weights it holds", async () => {
    const w = await worker({ weightLoadMs: 1 });
    const update = await postJson(w.url, "/update_weights_from_tensor", { serialized_named_tensors: ["payload"], weight_version: "v7" });
    expect(update.status).toBe(200);
    const sha = (weights: string, name: string) => createHash("sha256").update(`${weights}\u0000transformer\u0000${name}`).digest("hex");
    const names = ["blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight"];
    const good = await postJson(w.url, "/update_weights_from_tensor_checker", { target_module: "transformer", expected_named_tensors_sha256: Object.fromEntries(names.map((n) => [n, sha("tensor:v7", n)])) });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ success: true });
    const stale = await postJson(w.url, "/update_weights_from_tensor_checker", { target_module: "transformer", expected_named_tensors_sha256: { [names[0]!]: sha("tensor:v6", names[0]!) } });
    expect(stale.status).toBe(400);
    const staleBody = (await stale.json()) as { success: boolean; message: string };
    expect(staleBody.success).toBe(false);
    expect(staleBody.message).toContain(names[0]!);
    const noModule = await postJson(w.url, "/update_weights_from_tensor_checker", { expected_named_tensors_sha256: { a: "b" } });
    expect(noModule.status).toBe(400);
    expect(await noModule.json()).toEqual({ success: false, message: "target_module is required" });
    const noHashes = await postJson(w.url, "/update_weights_from_tensor_checker", { target_module: "transformer", expected_named_tensors_sha256: {} });
    expect(await noHashes.json()).toEqual({ success: false, message: "expected_named_tensors_sha256 is required" });
  });
});

// ---------------------------------------------------------------- scheduler and stats

describe("scheduler queue and stats", () => {
  it("follows the documented latency formula", () => {
    expect(generationMs({ width: 1024, height: 1024, steps: 50, frames: 1, outputs: 1 }, 1)).toBeCloseTo(402, 0);
    expect(generationMs({ width: 512, height: 512, steps: 4, frames: 1, outputs: 1 }, 1)).toBeCloseTo(10, 0);
    expect(generationMs({ width: 512, height: 512, steps: 4, frames: 1, outputs: 1 }, 2)).toBeCloseTo(5, 0);
    const video = generationMs({ width: 1280, height: 720, steps: 50, frames: 96, outputs: 1 }, 1);
    expect(video).toBeGreaterThan(2000);
    expect(video).toBeLessThan(30000);
  });

  it("queues FIFO with a concurrency limit; exclusive tasks act as barriers", async () => {
    const scheduler = new Scheduler(2);
    const events: string[] = [];
    const gates = new Map<string, () => void>();
    const task = (name: string, exclusive = false) =>
      scheduler.run(
        () =>
          new Promise<void>((resolve) => {
            events.push(`start ${name}`);
            gates.set(name, () => {
              events.push(`end ${name}`);
              resolve();
            });
          }),
        { exclusive },
      );
    const all = [task("a"), task("b"), task("c"), task("update", true), task("d")];
    await Promise.resolve();
    expect(events).toEqual(["start a", "start b"]);
    const release = async (name: string) => {
      gates.get(name)!();
      await new Promise((r) => setTimeout(r, 0));
    };
    await release("a");
    expect(events.at(-1)).toBe("start c");
    await release("b");
    expect(scheduler.active).toBe(1); // update waits for c although a slot is free
    await release("c");
    expect(events.at(-1)).toBe("start update");
    expect(scheduler.waiting).toBe(1); // d waits for the update
    await release("update");
    expect(events.at(-1)).toBe("start d");
    await release("d");
    await Promise.all(all);
  });

  it("batching: the head's partner scan skips exclusive tasks, and the head waits its delay for partners", async () => {
    const scheduler = new Scheduler(1, { maxSize: 2, delayMs: 30 });
    const events: string[] = [];
    const task = (name: string, options: { exclusive?: boolean; batchKey?: string }) =>
      scheduler.run(async (batchSize) => {
        events.push(`${name}:${batchSize}`);
        await new Promise((r) => setTimeout(r, 5));
      }, options);
    const started = performance.now();
    const all = [task("a", { batchKey: "k" }), task("update", { exclusive: true }), task("b", { batchKey: "k" }), task("c", { batchKey: "other" })];
    await Promise.all(all);
    // a and b ran as one batch before the update queued between them; c (another signature) after it.
    expect(events).toEqual(["a:2", "b:2", "update:1", "c:1"]);
    // A full batch does not wait for the delay; c, alone, waits its 30 ms for partners.
    expect(performance.now() - started).toBeGreaterThanOrEqual(30);
    const alone = new Scheduler(1, { maxSize: 2, delayMs: 40 });
    const t0 = performance.now();
    await alone.run(async () => undefined, { batchKey: "k" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
  });

  it("runs an update after the generation queued before it, and before the one after", async () => {
    const w = await worker({ weightLoadMs: 50 });
    const order: string[] = [];
    // ~250 ms of simulated work
    const gen1 = postJson(w.url, "/v1/images/generations", { prompt: "first", size: "1024x1024", num_inference_steps: 31 }).then((r) => {
      order.push("gen1");
      return r;
    });
    await waitFor(async () => ((await stats(w.url))["scheduler_running"] === 1 ? true : undefined));
    const update = postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/next" }).then((r) => {
      order.push("update");
      return r;
    });
    await waitFor(async () => ((await stats(w.url))["scheduler_waiting"] === 1 ? true : undefined));
    const gen2 = postJson(w.url, "/v1/images/generations", { prompt: "second", ...tiny }).then((r) => {
      order.push("gen2");
      return r;
    });
    const [r1, ru, r2] = await Promise.all([gen1, update, gen2]);
    expect(order).toEqual(["gen1", "update", "gen2"]);
    expect(r1.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
    expect(ru.status).toBe(200);
    expect(r2.headers.get("x-sim-weights")).toBe("ckpt/next");
  });

  it("counts in_flight / peak_in_flight / peak_generations_open and per-route requests", async () => {
    const w = await worker();
    await postJson(w.url, "/sim/reset_stats", {});
    const started = Date.now();
    await Promise.all(Array.from({ length: 4 }, (_, i) => postJson(w.url, "/v1/images/generations", { prompt: `p${i}`, size: "512x512", num_inference_steps: 20 }).then((r) => r.json())));
    // concurrency 1: four ~42 ms generations run one after another
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 40);
    await fetch(`${w.url}/health`);
    // A probe-like call beside nothing: in peak_in_flight's count, never in peak_generations_open's.
    await fetch(`${w.url}/v1/models`);
    const s = await stats(w.url);
    expect(s["peak_in_flight"]).toBe(4);
    expect(s["peak_generations_open"]).toBe(4);
    expect(s["in_flight"]).toBe(0);
    expect(s["requests_by_route"]["POST /v1/images/generations"]).toBe(4);
    expect(s["requests_by_route"]["GET /health"]).toBe(1);
    expect(s["requests_total"]).toBe(6);
  });

  it("survives a client that disconnects mid-request without leaking in_flight", async () => {
    const w = await worker();
    const abort = new AbortController();
    const pending = postJson(w.url, "/v1/images/generations", { prompt: "slow", size: "1024x1024", num_inference_steps: 50 }, {}, abort.signal).catch((e: unknown) => e);
    await waitFor(async () => ((await stats(w.url))["in_flight"] === 1 ? true : undefined));
    abort.abort();
    await pending;
    await waitFor(async () => ((await stats(w.url))["in_flight"] === 0 ? true : undefined));
    expect((await postJson(w.url, "/v1/images/generations", { prompt: "after", ...tiny })).status).toBe(200);
  });

  it("during warm-up answers health, /server_info and /model_info, and holds /v1/models and generations", async () => {
    const started = Date.now();
    const w = await worker({ warmupMs: 1500 });
    // Held while warming up: asked first, answered only after the probes below.
    let modelsAnswered = false;
    const models = fetch(`${w.url}/v1/models`).then((r) => ((modelsAnswered = true), r));
    for (const p of ["/health", "/health_generate", "/server_info", "/model_info"]) expect((await fetch(w.url + p)).status).toBe(200);
    expect(modelsAnswered, "/v1/models answered before the warm-up ended").toBe(false);
    expect((await models).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1490);
    expect((await postJson(w.url, "/v1/images/generations", { prompt: "x", ...tiny })).status).toBe(200);
  });
});

// ---------------------------------------------------------------- batching and cost shape

describe("batching and the attention factor", () => {
  /** ~200 ms of work at speed 1 (512x512 gains x1.59 at batch 2 with the default table). */
  const shape = { size: "512x512", num_inference_steps: 100, response_format: "url" };
  const singleMs = generationMs({ width: 512, height: 512, steps: 100, frames: 1, outputs: 1 }, 1);

  /**
   * Sends all bodies at once; resolves with each answer's finish time (ms
   * after sending), the scheduler dispatch that ran it (`x-sim-batch`,
   * id/size) and its GPU time (`inference_time_s`). Whether requests shared
   * a batch is read from the dispatch, not from how close together the
   * client saw the answers (that scatters on a loaded machine).
   */
  async function together(base: string, bodies: { path?: string; body: unknown }[]): Promise<{ ms: number; batch: string; gpuMs: number }[]> {
    const t0 = performance.now();
    return Promise.all(
      bodies.map(async ({ path = "/v1/images/generations", body }) => {
        const res = body instanceof FormData ? await fetch(base + path, { method: "POST", body }) : await postJson(base, path, body);
        expect(res.status).toBe(200);
        const answer = (await res.json()) as { inference_time_s: number };
        return { ms: performance.now() - t0, batch: res.headers.get("x-sim-batch") ?? "", gpuMs: answer.inference_time_s * 1000 };
      }),
    );
  }

  /** Two answers that ran one after the other: two dispatches of one request each. */
  function apart(answers: { batch: string }[]): void {
    const seen = JSON.stringify(answers);
    expect(answers.map((x) => x.batch.split("/")[1]), seen).toEqual(["1", "1"]);
    expect(answers[0]!.batch, seen).not.toBe(answers[1]!.batch);
  }

  function edit(prompt: string): FormData {
    const form = new FormData();
    form.append("prompt", prompt);
    form.append("size", "512x512");
    form.append("num_inference_steps", "100");
    form.append("image", new Blob([Buffer.from("not really a png")], { type: "image/png" }), "in.png");
    return form;
  }

  it("follows the documented gain table and attention formula", () => {
    const curve = parseGainCurve(DEFAULT_GAIN_CURVE_SPEC);
    expect(batchGain(curve, 1, 512 * 512)).toBe(1);
    expect(batchGain(curve, 4, 512 * 512)).toBeCloseTo(2.77, 5);
    expect(batchGain(curve, 8, 512 * 512)).toBeCloseTo(3.14, 5);
    expect(batchGain(curve, 8, 256 * 256)).toBeCloseTo(3.14, 5); // smaller than listed: the smallest size's gains
    expect(batchGain(curve, 2, 1024 * 1024)).toBeCloseTo(1, 5);
    const mid = batchGain(curve, 4, 768 * 768);
    expect(mid).toBeGreaterThan(1);
    expect(mid).toBeLessThan(2.77);
    expect(() => parseGainCurve("512x512=4:5")).toThrow(RangeError); // gain above b
    const work = { width: 1000, height: 1000, steps: 50, frames: 1, outputs: 1 };
    expect(generationMs(work, 1, 0)).toBe(generationMs(work, 1));
    expect(generationMs(work, 1, 1) - 2).toBeCloseTo((generationMs(work, 1) - 2) * 2, 5); // 1 MP: x (1 + 1 x 1)
  });

  it("runs two compatible requests sent together as one batch, in less than twice the single time", async () => {
    const w = await worker({ batchingMaxSize: 2, batchingDelayMs: 50 });
    const [alone] = await together(w.url, [{ body: { prompt: "alone", ...shape } }]);
    expect(alone!.ms).toBeGreaterThanOrEqual(singleMs);
    const [a, b] = await together(w.url, [
      { body: { prompt: "first", seed: 1, ...shape } },
      { body: { prompt: "second", seed: 2, ...shape } },
    ]);
    // One batch: the sim's own dispatch record (client finish times scatter on a loaded machine).
    expect(a!.batch).toMatch(/^\d+\/2$/);
    expect(b!.batch).toBe(a!.batch);
    // The gain shows in the batch's GPU time: the whole batch, less than two generations in a row.
    expect(a!.gpuMs).toBeGreaterThanOrEqual(batchMs({ width: 512, height: 512, steps: 100, frames: 1, outputs: 1 }, 2, 1, 0, parseGainCurve(DEFAULT_GAIN_CURVE_SPEC)) - 2);
    expect(a!.gpuMs).toBeLessThan(2 * singleMs);
  });

  it("does not batch incompatible requests", async () => {
    const w = await worker({ batchingMaxSize: 2, batchingDelayMs: 50 });
    const times = await together(w.url, [
      { body: { prompt: "a", ...shape } },
      { body: { prompt: "b", ...shape, guidance_scale: 7 } }, // another sampling parameter
    ]);
    // one after the other, each a whole generation
    apart(times);
    const sizes = await together(w.url, [
      { body: { prompt: "a", ...shape } },
      { body: { prompt: "b", ...shape, size: "512x768" } },
    ]);
    apart(sizes);
  });

  it("lets a generation queued behind a weight update join the batch ahead of it (the scan skips the update)", async () => {
    // A 1.5 s batching delay: the update and the second request must reach the worker while the first
    // waits for partners, and on a loaded machine two stats polls can be further apart than 100 ms.
    const w = await worker({ batchingMaxSize: 2, batchingDelayMs: 1500, weightLoadMs: 50 });
    const first = postJson(w.url, "/v1/images/generations", { prompt: "first", ...shape });
    await waitFor(async () => ((await stats(w.url))["scheduler_waiting"] === 1 ? true : undefined));
    const update = postJson(w.url, "/update_weights_from_disk", { model_path: "ckpt/new" });
    await waitFor(async () => ((await stats(w.url))["scheduler_waiting"] === 2 ? true : undefined));
    const second = postJson(w.url, "/v1/images/generations", { prompt: "second", ...shape });
    const [a, b, u] = await Promise.all([first, second, update]);
    // Both generations ran in one batch on the old weights; the update ran after them.
    expect(a.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
    expect(b.headers.get("x-sim-weights")).toBe("Qwen/Qwen-Image");
    expect(u.status).toBe(200);
    expect(a.headers.get("x-sim-batch")).toMatch(/^\d+\/2$/);
    expect(b.headers.get("x-sim-batch")).toBe(a.headers.get("x-sim-batch"));
  });

  it("never batches a request with an input image", async () => {
    const w = await worker({ batchingMaxSize: 4, batchingDelayMs: 50 });
    const times = await together(w.url, [
      { path: "/v1/images/edits", body: edit("one") },
      { path: "/v1/images/edits", body: edit("two") },
    ]);
    apart(times);
  });

  it("batches video jobs of a text-to-video worker", async () => {
    const w = await worker({ modelPath: "Wan-AI/Wan2.1-T2V-1.3B", batchingMaxSize: 2, batchingDelayMs: 50 });
    const body = { size: "512x512", num_frames: 1, num_inference_steps: 100 };
    const ids = await Promise.all(
      ["a", "b"].map(async (prompt) => ((await (await postJson(w.url, "/v1/videos", { prompt, ...body })).json()) as { id: string }).id),
    );
    const jobs = await waitFor(async () => {
      const all = await Promise.all(ids.map(async (id) => (await (await fetch(`${w.url}/v1/videos/${id}`)).json()) as { status: string; inference_time_s: number }));
      return all.every((j) => j.status === "completed") ? all : undefined;
    });
    // one batch of 2 at x1.59: each took the batch's time (~1.26x one
    // generation; alone or one after the other each would take 1x), less than
    // two generations (no gain)
    for (const j of jobs) {
      expect(j.inference_time_s * 1000).toBeGreaterThan(1.1 * singleMs);
      expect(j.inference_time_s * 1000).toBeLessThan(2 * singleMs);
    }
  });

  it("makes large pictures superlinearly slower with --attention-factor", async () => {
    const linear = await worker();
    const attention = await worker({ attentionFactor: 2 });
    const time = async (base: string, size: string, steps: number) => {
      const body = (await (await postJson(base, "/v1/images/generations", { prompt: "x", size, num_inference_steps: steps })).json()) as { inference_time_s: number };
      return body.inference_time_s * 1000;
    };
    // 1000x1000 is 1 MP: x3 with a = 2; 250x250 is 0.0625 MP: x1.125. 60 steps
    // (~0.46 s linear): inference_time_s also holds drawing the 1 MP picture,
    // which a loaded machine slows, and that must not eat the x3.
    const big = await time(attention.url, "1000x1000", 60);
    expect(big).toBeGreaterThanOrEqual(generationMs({ width: 1000, height: 1000, steps: 60, frames: 1, outputs: 1 }, 1, 2) - 5);
    expect(big / (await time(linear.url, "1000x1000", 60))).toBeGreaterThan(2.5);
    const small = await time(attention.url, "250x250", 320);
    expect(small / (await time(linear.url, "250x250", 320))).toBeLessThan(1.6);
  });
});

// ---------------------------------------------------------------- CLI

describe("CLI", () => {
  it("prints SIM_LISTENING, serves the flags' model, and exits 0 on SIGTERM", async () => {
    const sim = await startSimProcess(["--model-path", "Wan-AI/Wan2.2-T2V-A14B", "--num-gpus", "4", "--master-port", "30005", "--scheduler-port", "30006", "--speed", "2"]);
    expect(sim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const card = ((await (await fetch(`${sim.url}/v1/models`)).json()) as { data: Record<string, unknown>[] }).data[0]!;
    expect(card).toMatchObject({ id: "Wan-AI/Wan2.2-T2V-A14B", num_gpus: 4, task_type: "T2V" });
    expect(await (await fetch(`${sim.url}/sim/config`)).json()).toMatchObject({ speed: 2 });
    sim.kill("SIGTERM");
    expect(await sim.exited).toEqual({ code: 0, signal: null });
  });

  it("rejects an unknown flag with exit 2, naming it", () => {
    const out = spawnSync(process.execPath, [simCliPath, "--no-such-flag"], { encoding: "utf8" });
    expect(out.status).toBe(2);
    expect(out.stderr).toContain("--no-such-flag");
    const help = spawnSync(process.execPath, [simCliPath, "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    for (const flag of ["--model-path", "--scheduler-concurrency", "--rollout-bytes-per-sample", "--fail-updates"]) expect(help.stdout).toContain(flag);
  });

  it("accepts sglang serve's batching flags and the cost-shape flags", async () => {
    const sim = await startSimProcess(["--batching-max-size", "4", "--batching-delay-ms", "5", "--attention-factor", "0.5", "--batching-gain", "512x512=4:3"]);
    expect((await postJson(sim.url, "/v1/images/generations", { prompt: "x", ...tiny })).status).toBe(200);
    await sim.stop();
    const bad = spawnSync(process.execPath, [simCliPath, "--batching-gain", "512x512=4:9"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("4:9");
  });
});
