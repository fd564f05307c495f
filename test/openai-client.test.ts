// The official OpenAI npm client (v6) against the router, as a user would
// point it: baseURL = router + "/v1". Router and workers are child processes.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

const IMAGE_MODEL = "Qwen/Qwen-Image";
const VIDEO_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let router: RouterProcess;
let image: SimProcess;
let video: SimProcess;
let client: OpenAI;

beforeAll(async () => {
  // --speed makes the default-sized video (720x1280, 4 s at 24 fps, 50 steps) take ~0.1 s.
  [image, video] = await Promise.all([startSimProcess([]), startSimProcess(["--model-path", VIDEO_MODEL, "--speed", "100"])]);
  router = await startRouterProcess(["--worker-urls", image.url, video.url]);
  await waitFor(async () => ((await jsonRequest(`${router.url}/workers`)).body.workers as any[]).filter((w) => w.video_support !== null).length === 2, 15_000, "2 probed workers");
  client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: "x", maxRetries: 0 });
}, 20_000);

afterAll(async () => {
  await Promise.all([router?.stop(), image?.stop(), video?.stop()]);
});

async function pollCompleted(id: string): Promise<OpenAI.Videos.Video> {
  return waitFor(
    async () => {
      const job = await client.videos.retrieve(id);
      expect(job.status).not.toBe("failed");
      return job.status === "completed" ? job : undefined;
    },
    10_000,
    `video ${id} completed`,
  );
}

describe("OpenAI client through the router", () => {
  it("images.generate with b64_json", async () => {
    // Diffusion-specific fields ride along as extra body fields, as users pass them.
    const params = { model: IMAGE_MODEL, prompt: "a cute cat", response_format: "b64_json", size: "64x64", num_inference_steps: 2, n: 2 } as OpenAI.Images.ImageGenerateParamsNonStreaming;
    const result = await client.images.generate(params);
    expect(result.data).toHaveLength(2);
    for (const item of result.data!) expect(Buffer.from(item.b64_json!, "base64").subarray(0, 8)).toEqual(PNG);
    expect(typeof result.created).toBe("number");
  });

  it("models.list shows each worker's model once", async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids.sort()).toEqual([IMAGE_MODEL, VIDEO_MODEL].sort());
  });

  it("the video cycle: create, retrieve until completed, list, download, delete", async () => {
    const created = await client.videos.create({ prompt: "a flowing river", model: VIDEO_MODEL as OpenAI.Videos.VideoModel, seconds: "4", size: "720x1280" });
    expect(created.id).toMatch(/^video_/);
    expect(created.status).toBe("queued");

    const done = await pollCompleted(created.id);
    expect(done.progress).toBe(100);
    expect(done.size).toBe("720x1280");

    const listed: string[] = [];
    for await (const v of client.videos.list({ limit: 10 })) listed.push(v.id);
    expect(listed).toContain(created.id);

    const content = await client.videos.downloadContent(created.id);
    expect(content.headers.get("content-type")).toBe("video/mp4");
    const bytes = Buffer.from(await content.arrayBuffer());
    expect(bytes.length).toBeGreaterThan(100);
    expect(bytes.subarray(4, 8).toString("latin1")).toBe("ftyp");

    const deleted = await client.videos.delete(created.id);
    expect(deleted.id).toBe(created.id);
    expect((deleted as unknown as { status: string }).status).toBe("deleted");
    await expect(client.videos.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("router errors reach the client as OpenAI errors", async () => {
    const imageOnly = await startRouterProcess(["--worker-urls", image.url]);
    try {
      const c = new OpenAI({ baseURL: `${imageOnly.url}/v1`, apiKey: "x", maxRetries: 0 });
      const err = await c.videos.create({ prompt: "a flowing river" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      // The original router's shape, {"error": "<message>", "code"}: the OpenAI
      // client keeps the string as `error` and the message; the code is in the header.
      const bad = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(bad.message).toContain("video-capable");
      expect(bad.headers?.get("x-router-error-code")).toBe("no_video_workers");
      await expect(c.videos.retrieve("video_unknown")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    } finally {
      await imageOnly.stop();
    }
  });
});
