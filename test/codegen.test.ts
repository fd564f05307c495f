import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { load as loadYaml } from "js-yaml";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/sim.js";

const run = promisify(execFile);
/** The binary `npx buf` runs (the @bufbuild/buf devDependency). */
const BUF = join(repoRoot, "node_modules", ".bin", "buf");

/** Every file under `dir`, as paths relative to it, sorted. */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** `buf <args>` in the repo root; never throws, returns the exit code and output. */
async function buf(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(BUF, args, { cwd: repoRoot, timeout: 60_000, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}

describe("generated code", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sglang-d-router-codegen-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  // Both templates `npm run generate` runs: the router's and the SDK's.
  it.each(["buf.gen.yaml", "buf.gen.sdk.yaml"])("the committed output of %s equals a fresh `buf generate`", async (templateFile) => {
    const template = loadYaml(readFileSync(join(repoRoot, templateFile), "utf8")) as { plugins: { out: string }[] };
    const outs = template.plugins.map((p) => p.out);
    expect(outs.length).toBeGreaterThan(0);
    const dest = mkdtempSync(join(tmp, "gen-"));

    // -o prepends dest to each plugin's out: the committed tree is left alone.
    const gen = await buf(["generate", "--template", templateFile, "-o", dest]);
    expect(gen.stderr, `buf generate failed (exit ${gen.code})`).toBe("");
    expect(gen.code).toBe(0);

    for (const out of outs) {
      const fresh = join(dest, out);
      const committed = join(repoRoot, out);
      const freshFiles = listFiles(fresh);
      expect(freshFiles.length, `buf generate wrote nothing to ${out}`).toBeGreaterThan(0);
      expect(listFiles(committed), `files of ${out} differ from a fresh generation: run \`npm run generate\``).toEqual(freshFiles);
      for (const f of freshFiles) {
        const a = readFileSync(join(fresh, f), "utf8");
        const b = readFileSync(join(committed, f), "utf8");
        expect(b === a, `${out}/${f} differs from a fresh generation: run \`npm run generate\``).toBe(true);
      }
    }
  }, 30_000);

  it("the router gets the admin, rollout and reflection code, the SDK the admin and rollout code", () => {
    expect(listFiles(join(repoRoot, "src/gen"))).toEqual(["grpc/reflection/v1/reflection_pb.ts", "grpc/reflection/v1alpha/reflection_pb.ts", "sgl/diffusion/router/v1/admin_pb.ts", "sgl/diffusion/router/v1/rollout_pb.ts"]);
    expect(listFiles(join(repoRoot, "sdk/src/gen"))).toEqual(["sgl/diffusion/router/v1/admin_pb.ts", "sgl/diffusion/router/v1/rollout_pb.ts"]);
  });

  it("buf lint passes", async () => {
    const lint = await buf(["lint"]);
    expect(lint.stdout + lint.stderr).toBe("");
    expect(lint.code).toBe(0);
  }, 30_000);
});
