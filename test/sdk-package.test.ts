// The SDK as someone outside this repository gets it: `npm pack` of sdk/,
// the tarball installed into an empty project in the system's temp directory
// (its dependencies from the npm registry, the local cache first), and the
// rollout example of sdk/README.md run there against a router over sockets.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { ensureSdkBuilt, sdkDir } from "./helpers/sdk-build.js";
import { repoRoot, startSimProcess, type SimProcess } from "./helpers/sim.js";

const run = promisify(execFile);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/** The rollout example of sdk/README.md: the fenced js block that starts with `// rollout.mjs`. */
function readmeRolloutExample(): string {
  const readme = readFileSync(resolve(sdkDir, "README.md"), "utf8");
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.startsWith("// rollout.mjs"));
  expect(block, "sdk/README.md has a js block starting with // rollout.mjs").toBeDefined();
  return block!;
}

interface Packed {
  filename: string;
  files: { path: string }[];
}

let dir: string;
let project: string;
let packed: Packed;
let sims: SimProcess[];
let router: RouterProcess;

beforeAll(async () => {
  ensureSdkBuilt();
  // Outside the repository: no node_modules above it resolves anything.
  dir = mkdtempSync(join(tmpdir(), "sdk-package-"));
  project = join(dir, "consumer");
  const startProcesses = (async () => {
    sims = await Promise.all([startSimProcess(), startSimProcess()]);
    router = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
  })();
  // --ignore-scripts: prepack would rebuild dist while other test files import it (ensureSdkBuilt built it).
  const { stdout } = await run(npm, ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: sdkDir, timeout: 60_000 });
  [packed] = JSON.parse(stdout) as Packed[];
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "sdk-consumer", private: true, type: "module" }));
  writeFileSync(join(project, "rollout.mjs"), readmeRolloutExample());
  await run(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund", join(dir, packed!.filename)], { cwd: project, timeout: 180_000 });
  await startProcesses;
}, 240_000);

afterAll(async () => {
  await router?.stop();
  await Promise.all((sims ?? []).map((s) => s.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("@sgl/diffusion-router-sdk from its npm pack tarball", () => {
  it("the tarball holds the built JS with a .d.ts for each file, the README and the license; no sources, maps or tests", () => {
    const paths = packed.files.map((f) => f.path).sort();
    expect(paths).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts"]));
    const js = paths.filter((p) => p.endsWith(".js"));
    for (const file of js) expect(paths).toContain(file.replace(/\.js$/, ".d.ts"));
    for (const path of paths) expect(path).toMatch(/^(LICENSE|README\.md|package\.json|dist\/.+\.(js|d\.ts))$/);
    // Every module the SDK has is in it.
    const built = readdirSync(resolve(sdkDir, "src"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    expect(js.sort()).toEqual(built.map((f) => `dist/${f.replace(/\.ts$/, ".js")}`).sort());
    expect(readFileSync(join(project, "node_modules", "@sgl", "diffusion-router-sdk", "LICENSE"), "utf8")).toMatch(/Apache License\s+Version 2\.0/);
  });

  it("installs outside the repository: not private, dependencies from the registry, nothing linked back", () => {
    const installed = join(project, "node_modules", "@sgl", "diffusion-router-sdk");
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<string, unknown> & { dependencies: Record<string, string> };
    expect(manifest.private).toBeUndefined();
    for (const [name, spec] of Object.entries(manifest.dependencies)) {
      expect(spec, name).not.toMatch(/^(file:|link:|workspace:)/);
      expect(realpathSync(join(project, "node_modules", name)).startsWith(realpathSync(repoRoot)), name).toBe(false);
    }
    expect(realpathSync(installed).startsWith(realpathSync(project))).toBe(true);
  });

  it("sdk/README.md's rollout example runs there: job id, 8 results with worker and weights, summary", async () => {
    const { stdout } = await run(process.execPath, ["rollout.mjs"], { cwd: project, env: { ...process.env, ROUTER_URL: router.url }, timeout: 60_000 }).catch(
      (e: { stdout?: string; stderr?: string; code?: number }) => {
        throw new Error(`rollout.mjs exited ${e.code}:\n${e.stdout}\n${e.stderr}`);
      },
    );
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^job \S+: 8 items$/);
    const items = lines.filter((l) => l.startsWith("item "));
    expect(items).toHaveLength(8);
    const workers = new Set(sims.map((s) => s.url));
    for (const line of items) {
      const m = /^item (\d+): (\d+) bytes of (.+), weights (\S+), worker (\S+)$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(Number(m![2])).toBeGreaterThan(100);
      expect(m![4]).toBe("0");
      expect(workers.has(m![5]!)).toBe(true);
    }
    expect(items.map((l) => Number(/^item (\d+)/.exec(l)![1])).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(lines.at(-1)).toBe("summary: 8 completed, 0 failed, 0 cancelled");
  }, 60_000);

  it("the example fails with the router's code and request id when the key is wrong", async () => {
    const guarded = await startRouterProcess(["--worker-urls", sims[0]!.url, "--api-key", "right"]);
    try {
      const err = await run(process.execPath, ["rollout.mjs"], { cwd: project, env: { ...process.env, ROUTER_URL: guarded.url, ROUTER_API_KEY: "wrong" }, timeout: 30_000 }).then(
        () => null,
        (e: { code?: number; stderr?: string }) => e,
      );
      expect(err?.code).toBe(1);
      expect(err?.stderr).toMatch(/^rollout failed: unauthenticated: .*API key.* \(request \S+\)$/m);
    } finally {
      await guarded.stop();
    }
  }, 30_000);

  it("a strict TypeScript (NodeNext) consumer type-checks against the installed declarations", async () => {
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        // @types/node is the consumer's own dependency; borrowed from the repository to keep the test offline.
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2023", strict: true, noEmit: true, types: ["node"], typeRoots: [resolve(repoRoot, "node_modules", "@types")] },
        files: ["consumer.ts"],
      }),
    );
    writeFileSync(
      join(project, "consumer.ts"),
      `import { Code, RouterClientError, createRouterClient, type Health, type RefitPhase, type RolloutJobResult, type RolloutJobSummary } from "@sgl/diffusion-router-sdk";
const router = createRouterClient({ baseUrl: "http://127.0.0.1:1", transport: "grpc" });
export async function rollout(): Promise<[string, RolloutJobResult[], RolloutJobSummary]> {
  const job = router.rollouts.run([{ path: "/v1/images/generations", body: { prompt: "x", seed: 1 } }], { minComplete: 1 });
  const id = await job.id;
  const results: RolloutJobResult[] = [];
  for await (const r of job) if (r.ok) results.push(r);
  return [id, results, await job.summary];
}
export async function health(): Promise<[string, RefitPhase, number]> {
  const h: Health = await router.health();
  return [h.weight_version, h.refit_phase, h.routable_workers];
}
export function describeError(e: unknown): string {
  if (!(e instanceof RouterClientError)) return String(e);
  const rpc: Code | null = e.rpcCode;
  return \`\${e.status} \${e.code} \${e.routerCode ?? "-"} \${rpc === Code.Unauthenticated} \${e.requestId ?? ""}\`;
}
// @ts-expect-error a request needs a path the router knows
router.rollouts.run([{ path: "/v1/videos", body: {} }]);
`,
    );
    const tsc = resolve(repoRoot, "node_modules", "typescript", "bin", "tsc");
    const r = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project, timeout: 90_000 }).catch((e: { stdout?: string; message: string }) => {
      throw new Error(`tsc failed: ${e.stdout ?? ""} ${e.message}`);
    });
    expect(r.stdout).toBe("");
  }, 90_000);
});
