// The built SDK as users get it: imported BY NAME (`@sgl/diffusion-router-sdk`,
// the workspace symlink in node_modules) from plain Node ESM and from a
// TypeScript (NodeNext) consumer, and the RL-loop example run end to end.
import { execFile } from "node:child_process";
import { mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { ensureSdkBuilt, sdkDir, sdkEntry } from "./helpers/sdk-build.js";
import { repoRoot, startSimProcess, type SimProcess } from "./helpers/sim.js";

const run = promisify(execFile);

let imageSim: SimProcess;
let videoSim: SimProcess;
let router: RouterProcess;

beforeAll(async () => {
  ensureSdkBuilt();
  [imageSim, videoSim] = await Promise.all([startSimProcess([]), startSimProcess(["--model-path", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "--task-type", "T2V"])]);
  router = await startRouterProcess(["--worker-urls", imageSim.url, videoSim.url]);
}, 120_000);

afterAll(async () => {
  await router?.stop();
  await Promise.all([imageSim?.stop(), videoSim?.stop()]);
});

describe("@sgl/diffusion-router-sdk by package name", () => {
  it("resolves through the workspace symlink to the built dist", () => {
    expect(realpathSync(resolve(repoRoot, "node_modules", "@sgl", "diffusion-router-sdk"))).toBe(realpathSync(sdkDir));
  });

  it("plain Node ESM at the repo root imports it and talks to a router", async () => {
    const script = `
      import { createRouterClient, RouterClientError, ConnectError, AdminService, WorkerState, WorkerSchema, toPlain } from "@sgl/diffusion-router-sdk";
      const resolved = import.meta.resolve("@sgl/diffusion-router-sdk");
      const c = createRouterClient({ baseUrl: process.env.ROUTER_URL, transport: "grpc" });
      const health = await c.health();
      const { workers } = await c.admin.listWorkers({});
      let err;
      try { await c.createVideo({}); } catch (e) { err = e; }
      const { data, meta } = await c.generateImages({ prompt: "x", size: "64x64", num_inference_steps: 2 }).withResponse();
      const image = await c.downloadImage(data.data[0]);
      const status = JSON.stringify(toPlain(await c.admin.getRouterStatus({})));
      const plainWorkers = JSON.parse(JSON.stringify(toPlain(await c.admin.listWorkers({}))));
      await c.close();
      console.log(JSON.stringify({
        resolved,
        health: health.status,
        workers: workers.length,
        states: workers.map((w) => WorkerState[w.state]),
        service: AdminService.typeName,
        errorIsTyped: err instanceof RouterClientError,
        errorStatus: err?.status,
        connectErrorIsClass: typeof ConnectError === "function",
        workerSchema: WorkerSchema.typeName,
        workerId: meta.workerId,
        weightVersion: meta.weightVersion,
        pngSignature: image.bytes.subarray(1, 4).toString("latin1"),
        plainStates: plainWorkers.workers.map((w) => w.state),
        status: JSON.parse(status),
      }));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, env: { ...process.env, ROUTER_URL: router.url }, timeout: 30_000 });
    const out = JSON.parse(stdout.trim().split("\n").at(-1)!);
    expect(realpathSync(new URL(out.resolved).pathname)).toBe(realpathSync(sdkEntry));
    expect(out).toMatchObject({
      health: "healthy",
      workers: 2,
      states: ["HEALTHY", "HEALTHY"],
      service: "sgl.diffusion.router.v1.AdminService",
      errorIsTyped: true,
      errorStatus: 400, // video validation errors come as 400 "Invalid request body", as from a real worker
      connectErrorIsClass: true,
      workerSchema: "sgl.diffusion.router.v1.Worker",
      workerId: encodeURIComponent(imageSim.url),
      weightVersion: "0",
      pngSignature: "PNG",
      plainStates: ["WORKER_STATE_HEALTHY", "WORKER_STATE_HEALTHY"],
      status: { totalWorkers: 2, healthyWorkers: 2, uptimeMs: expect.stringMatching(/^\d+$/) },
    });
  }, 30_000);

  it("a TypeScript (NodeNext, strict) consumer type-checks against the declarations", async () => {
    // Under node_modules/.cache so that bare imports resolve from the repo root.
    const dir = resolve(repoRoot, "node_modules", ".cache", `sdk-consumer-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2023", strict: true, noEmit: true, types: ["node"], skipLibCheck: true }, files: ["consumer.ts"] }),
      );
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
      writeFileSync(
        join(dir, "consumer.ts"),
        `import { createRouterClient, RouterClientError, toPlain, type DownloadedImage, type ImagesResponse, type ResponseMeta, type RolloutBytes, type RolloutStream, type VideoJob } from "@sgl/diffusion-router-sdk";
const c = createRouterClient({ baseUrl: "http://127.0.0.1:1", apiKey: "k", transport: "grpc-web", retry: { attempts: 3 } });
export async function f(): Promise<[ImagesResponse, VideoJob, RolloutBytes, RolloutStream, number]> {
  const img = await c.generateImages({ prompt: "x", response_format: "b64_json" });
  const job = await c.waitForVideo((await c.createVideo({ prompt: "y" })).id, { pollIntervalMs: 100 });
  const bytes = await c.rolloutGenerate({ prompt: "z", num_outputs_per_prompt: 4 }, { accept: "application/msgpack" });
  const stream = await c.rolloutGenerate({ prompt: "z" }, { as: "stream" });
  const status = await c.admin.getRouterStatus({});
  const n: number = bytes.bytes.length + status.totalWorkers;
  return [img, job, bytes, stream, n];
}
export async function h(): Promise<[ResponseMeta, string | null, DownloadedImage, string]> {
  const { data, meta } = await c.editImages({ image: [Buffer.from("a"), new Blob(["b"])], prompt: "p", n: 1 }).withResponse();
  const rollout = await c.rolloutGenerate({ prompt: "z" }).withResponse();
  const image = await c.downloadImage(data.data[0]!);
  const text = JSON.stringify(toPlain((await c.admin.listWorkers({})).workers[0]!));
  return [meta, rollout.data.weightVersion ?? rollout.meta.workerId, image, text];
}
export function g(e: unknown): string | undefined {
  return e instanceof RouterClientError ? \`\${e.status} \${e.code}\` : undefined;
}
// @ts-expect-error prompt is required
void c.generateImages({ n: 1 });
`,
      );
      const tsc = resolve(repoRoot, "node_modules", "typescript", "bin", "tsc");
      const r = await run(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")], { cwd: dir, timeout: 60_000 }).catch((e: { stdout?: string; message: string }) => {
        throw new Error(`tsc failed: ${e.stdout ?? ""} ${e.message}`);
      });
      expect(r.stdout).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("examples/rl_loop.mjs runs the RL loop end to end and exits 0", async () => {
    const { stdout } = await run(process.execPath, [resolve(repoRoot, "examples", "rl_loop.mjs"), "--router", router.url], { cwd: repoRoot, timeout: 60_000 }).catch(
      (e: { stdout?: string; stderr?: string; code?: number }) => {
        throw new Error(`rl_loop exited ${e.code}:\n${e.stdout}\n${e.stderr}`);
      },
    );
    expect(stdout).toMatch(/rollout 1: 3 groups, 12 samples/);
    expect(stdout).toMatch(/release http:\/\/\S+: 200 .*"sleeping":true/);
    expect(stdout).toMatch(/resume http:\/\/\S+: 200 .*"sleeping":false/);
    // The pool serves Qwen-Image and a Wan video model: the refit names Qwen, so only its worker loads.
    expect(stdout.match(/refit http:\/\/\S+: 200 .*"success":true/g)).toHaveLength(1);
    expect(stdout).toMatch(/rollout 2: 3 groups, 12 samples, .*weights Qwen\/Qwen-Image-step-1/);
    expect(stdout).toMatch(/summary: .*OK/);
  }, 60_000);

  it("examples/rl_loop.mjs exits non-zero when the router is unreachable", async () => {
    const err = await run(process.execPath, [resolve(repoRoot, "examples", "rl_loop.mjs"), "--router", "http://127.0.0.1:1"], { cwd: repoRoot, timeout: 30_000 }).then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/FAILED/);
  }, 30_000);
});
