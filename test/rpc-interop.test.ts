/**
 * The AdminService with clients that are not ours: @grpc/grpc-js (the
 * reference Node gRPC client), `buf curl` (gRPC and Connect, with the proto
 * schema and through server reflection), plain curl, and Python grpcio with
 * stubs generated from admin.proto.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { repoRoot, startSimProcess, type SimProcess } from "./helpers/sim.js";
import { binaryTool, needTools, pythonTool } from "./helpers/tools.js";

const run = promisify(execFile);
const ADMIN = "sgl.diffusion.router.v1.AdminService";
/** Optional tools of the Python client (Debian packages; .ci/run installs them). */
const pythonGrpc = pythonTool(["grpc", "grpc_tools", "google.protobuf"], "python3-grpcio python3-grpc-tools");
const protoc = binaryTool("protoc", "protobuf-compiler");
const grpcPythonPlugin = binaryTool("grpc_python_plugin", "protobuf-compiler-grpc");
/** The binary `npx buf` runs (the @bufbuild/buf devDependency), without npx's ~1 s start-up. */
const BUF = join(repoRoot, "node_modules", ".bin", "buf");

let router: RouterProcess;
let a: SimProcess;
let b: SimProcess;

/** Runs a command; never throws: exit code, stdout, stderr. */
async function exec(cmd: string, args: string[], timeout = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { cwd: repoRoot, timeout, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}

/** `buf curl` that must succeed; answers its JSON output. */
async function bufCurl(args: string[]): Promise<any> {
  const r = await exec(BUF, ["curl", ...args]);
  expect(r.code, `buf curl ${args.join(" ")} failed: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

async function removeAll(): Promise<void> {
  const { body } = await jsonRequest(`${router.url}/workers`);
  for (const w of body.workers as { worker_id: string }[]) await jsonRequest(`${router.url}/workers/${w.worker_id}`, { method: "DELETE" });
}

beforeAll(async () => {
  [router, a, b] = await Promise.all([startRouterProcess(), startSimProcess(), startSimProcess()]);
}, 20_000);

afterAll(async () => {
  await Promise.all([router?.stop(), a?.stop(), b?.stop()]);
});

describe("@grpc/grpc-js with @grpc/proto-loader", () => {
  let client: grpc.Client & Record<string, any>;
  beforeAll(() => {
    // google/protobuf/struct.proto is not on disk here: proto-loader (protobufjs)
    // ships the well-known types and resolves them itself.
    const def = protoLoader.loadSync("sgl/diffusion/router/v1/admin.proto", {
      includeDirs: [join(repoRoot, "proto")],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const Ctor = pkg.sgl.diffusion.router.v1.AdminService as grpc.ServiceClientConstructor;
    client = new Ctor(`127.0.0.1:${router.port}`, grpc.credentials.createInsecure(), { "grpc.enable_http_proxy": 0 }) as any;
  });
  afterAll(() => client?.close());

  it("ListWorkers", async () => {
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: a.url } });
    try {
      const res = await new Promise<any>((resolve, reject) => client.ListWorkers({}, (err: Error | null, r: any) => (err ? reject(err) : resolve(r))));
      expect(res.workers.map((w: any) => w.url)).toEqual([a.url]);
      expect(res.workers[0].state).toBe("WORKER_STATE_HEALTHY");
      expect(res.workers[0].worker_id).toBe(encodeURIComponent(a.url));
    } finally {
      await removeAll();
    }
  });

  it("WatchWorkers server stream: EXISTING, SYNCED, then a REST change", async () => {
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: a.url } });
    const call = client.WatchWorkers({ exclude_load: true }) as grpc.ClientReadableStream<any>;
    const events: { msg: any; at: number }[] = [];
    let wake: (() => void) | null = null;
    call.on("data", (msg) => {
      events.push({ msg, at: performance.now() });
      wake?.();
    });
    call.on("error", () => undefined); // CANCELLED at the end
    const waitFor = async (pred: (m: any) => boolean) => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const hit = events.find((e) => pred(e.msg));
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`event not seen; got ${JSON.stringify(events.map((e) => e.msg))}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
    };
    try {
      await waitFor((m) => m.type === "WORKER_EVENT_TYPE_SYNCED");
      expect(events.map((e) => [e.msg.type, e.msg.worker?.url ?? null])).toEqual([
        ["WORKER_EVENT_TYPE_EXISTING", a.url],
        ["WORKER_EVENT_TYPE_SYNCED", null],
      ]);
      const t0 = performance.now();
      await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: b.url } });
      const added = await waitFor((m) => m.type === "WORKER_EVENT_TYPE_ADDED");
      expect(added.msg.worker.url).toBe(b.url);
      expect(added.at - t0).toBeLessThan(1000);
    } finally {
      call.cancel();
      await removeAll();
    }
  });
});

describe("buf curl and curl", () => {
  const base = () => `http://127.0.0.1:${router.port}`;
  const modes: [string, string[]][] = [
    ["gRPC (h2c) with --schema proto", ["--protocol", "grpc", "--http2-prior-knowledge", "--schema", "proto"]],
    ["gRPC (h2c) through reflection", ["--protocol", "grpc", "--http2-prior-knowledge"]],
    ["Connect with --schema proto", ["--protocol", "connect", "--schema", "proto"]],
    ["Connect through reflection", ["--protocol", "connect", "--http2-prior-knowledge"]],
  ];

  it("--list-services works without --schema (server reflection)", async () => {
    const r = await exec(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", base()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", ADMIN, "sgl.diffusion.router.v1.RolloutService"].sort());
    const m = await exec(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", base()]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toContain(`${ADMIN}/WatchWorkers`);
    expect(m.stdout).toContain(`${ADMIN}/AddWorker`);
    // Clients that only speak the older v1alpha reflection get the same schema.
    const alpha = await bufCurl(["--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", "grpc-v1alpha", "-d", "{}", `${base()}/${ADMIN}/GetRouterStatus`]);
    expect(alpha.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each(modes)("AddWorker and ListWorkers: %s", { timeout: 20_000 }, async (_name, flags) => {
    try {
      const added = await bufCurl([...flags, "-d", JSON.stringify({ url: a.url }), `${base()}/${ADMIN}/AddWorker`]);
      expect(added.created).toBe(true);
      expect(added.worker.url).toBe(a.url);
      expect(added.worker.state).toBe("WORKER_STATE_HEALTHY");
      const again = await bufCurl([...flags, "-d", JSON.stringify({ url: a.url }), `${base()}/${ADMIN}/AddWorker`]);
      expect(again.created).toBeUndefined(); // false is the default: left out of JSON
      const listed = await bufCurl([...flags, "-d", "{}", `${base()}/${ADMIN}/ListWorkers`]);
      expect(listed.workers.map((w: any) => w.url)).toEqual([a.url]);
    } finally {
      await removeAll();
    }
  });

  it("a bad AddWorker through buf curl answers invalid_argument", async () => {
    const r = await exec(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"url":"ftp://x"}', `${base()}/${ADMIN}/AddWorker`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("invalid_argument");
  });

  it("plain curl: a unary Connect call with a JSON body", async () => {
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: b.url } });
    try {
      const r = await exec("curl", ["-sS", "--noproxy", "*", "-X", "POST", "-H", "content-type: application/json", "-d", "{}", `${base()}/${ADMIN}/ListWorkers`]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).workers.map((w: any) => w.url)).toEqual([b.url]);
    } finally {
      await removeAll();
    }
  });
});

describe("buf curl: RolloutService.Run, as in the README", () => {
  it("streams started, a result per item (body as base64 bytes in JSON), and the summary; reflection lists the service", async () => {
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: a.url } });
    const base = `http://127.0.0.1:${router.port}`;
    const services = await exec(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", base]);
    expect(services.stdout).toContain("sgl.diffusion.router.v1.RolloutService");
    const body = { requests: [0, 1, 2].map((i) => ({ path: "/v1/images/generations", body: { prompt: `buf ${i}`, seed: i, size: "64x64", num_inference_steps: 2 } })), minComplete: 3 };
    const r = await exec(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", JSON.stringify(body), `${base}/sgl.diffusion.router.v1.RolloutService/Run`]);
    expect(r.code, r.stderr).toBe(0);
    // One JSON object per streamed message.
    const messages = r.stdout.trim().split(/\n(?=\{)/).map((m) => JSON.parse(m));
    expect(messages[0].started.id).toMatch(/^rollout_/);
    const results = messages.filter((m) => m.result).map((m) => m.result);
    expect(results).toHaveLength(3);
    for (const x of results) expect(JSON.parse(Buffer.from(x.body, "base64").toString()).data).toHaveLength(1);
    expect(messages.at(-1).summary).toMatchObject({ completed: 3 });
  });
});

describe("Python grpcio with generated stubs", () => {
  const stubs = mkdtempSync(join(tmpdir(), "sglang-d-router-pystubs-"));
  afterAll(() => rmSync(stubs, { recursive: true, force: true }));

  it("generates stubs from admin.proto", async (ctx) => {
    needTools(ctx, pythonGrpc, protoc, grpcPythonPlugin);
    const PYTHON = pythonGrpc.path!;
    // google/protobuf/struct.proto comes with grpc_tools.
    const wkt = (await exec(PYTHON, ["-c", "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))"])).stdout.trim();
    // Debian's grpc_tools.protoc is protoc 3.5, older than proto3 `optional`
    // (admin.proto uses it), so Debian's protoc 3.21 runs with its grpc Python plugin.
    const gen = await exec(protoc.path!, [
      "-I",
      "proto",
      "-I",
      wkt,
      `--plugin=protoc-gen-grpc_python=${grpcPythonPlugin.path!}`,
      `--python_out=${stubs}`,
      `--grpc_python_out=${stubs}`,
      "sgl/diffusion/router/v1/admin.proto",
    ]);
    expect(gen.code, `protoc failed (apt-get install protobuf-compiler protobuf-compiler-grpc): ${gen.stderr}`).toBe(0);
  });

  it("ListWorkers from Python, without and with an admin key", async (ctx) => {
    needTools(ctx, pythonGrpc, protoc, grpcPythonPlugin);
    const PYTHON = pythonGrpc.path!;
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: a.url } });
    await jsonRequest(`${router.url}/workers`, { method: "POST", json: { url: b.url } });
    try {
      const r = await exec(PYTHON, ["test/fixtures/python/list_workers.py", "--target", `127.0.0.1:${router.port}`, "--stubs", stubs]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.workers.map((w: any) => w.url)).toEqual([a.url, b.url]);
      expect(out.workers[0].state).toBe("WORKER_STATE_HEALTHY");
    } finally {
      await removeAll();
    }

    const guarded = await startRouterProcess(["--admin-api-key", "py-admin-key"]);
    try {
      await jsonRequest(`${guarded.url}/workers`, { method: "POST", json: { url: b.url }, headers: { authorization: "Bearer py-admin-key" } });
      const denied = await exec(PYTHON, ["test/fixtures/python/list_workers.py", "--target", `127.0.0.1:${guarded.port}`, "--stubs", stubs]);
      expect(denied.code).toBe(1);
      expect(JSON.parse(denied.stdout).error.code).toBe("UNAUTHENTICATED");
      const ok = await exec(PYTHON, ["test/fixtures/python/list_workers.py", "--target", `127.0.0.1:${guarded.port}`, "--stubs", stubs, "--admin-key", "py-admin-key"]);
      expect(ok.code, ok.stderr + ok.stdout).toBe(0);
      expect(JSON.parse(ok.stdout).workers.map((w: any) => w.url)).toEqual([b.url]);
    } finally {
      await guarded.stop();
    }
  }, 20_000);
});
