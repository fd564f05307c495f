/**
 * The README's examples, run as a newcomer would type them: the curl block
 * and the Python block of "Using it from curl and Python", against a router
 * with simulated workers. The router address in the README
 * (http://localhost:30081) is replaced by the test router's.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { repoRoot, startSimProcess, type SimProcess } from "./helpers/sim.js";
import { needTools, pythonTool } from "./helpers/tools.js";

/** Optional: python3 decodes the image of a curl example; with requests it runs the Python example (.ci/run installs them). */
const python = pythonTool([], "python3");
const pythonRequests = pythonTool(["requests"], "python3-requests");

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

/** The fenced code blocks of one README section, by language. */
function blocks(section: string, lang: string): string[] {
  const start = readme.indexOf(`## ${section}`);
  expect(start, `README section ${section}`).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf("\n## ", start + 3);
  const text = readme.slice(start, end < 0 ? undefined : end);
  return [...text.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}

/** Shell commands of a bash block: comments dropped, `\` continuations joined. */
function commands(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

let router: RouterProcess;
let sims: SimProcess[] = [];
let dir: string;

beforeAll(async () => {
  sims = await Promise.all([startSimProcess(), startSimProcess()]);
  router = await startRouterProcess(["--worker-urls", ...sims.map((s) => s.url)]);
  dir = mkdtempSync(join(tmpdir(), "readme-"));
});

afterAll(async () => {
  await router?.stop();
  await Promise.all(sims.map((s) => s.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("README examples", () => {
  /** The curl block's commands against the test router. */
  const curlCommands = (): string[] => {
    const [block] = blocks("Using it from curl and Python", "bash");
    return commands(block!).map((c) => c.replaceAll("http://localhost:30081", router.url));
  };
  /** The one that saves output.png pipes the answer into python3 (standard library only). */
  const pipesIntoPython = (cmd: string): boolean => /\|\s*python3\b/.test(cmd);
  const run = (cmd: string): string => {
    const r = spawnSync("bash", ["-c", cmd], { cwd: dir, encoding: "utf8", timeout: 30_000 });
    expect(r.status, `${cmd}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it("the curl commands work and answer what the README says", () => {
    const cmds = curlCommands().filter((c) => !pipesIntoPython(c));
    expect(cmds.length).toBeGreaterThanOrEqual(7);
    const out = cmds.map(run);
    expect(JSON.parse(out[0]!)).toMatchObject({ status: "healthy", healthy_workers: 2 });
    expect(JSON.parse(out[1]!)).toMatchObject({ status: "success", worker: { url: "http://localhost:30000" } });
    expect(JSON.parse(out[2]!).workers).toHaveLength(3);
    // Image-only workers: the video request gets the router's clear 400.
    const video = JSON.parse(out.find((o) => o.includes("no_video_workers"))!);
    expect(video.code).toBe("no_video_workers");
    // The refit reached the live workers and bumped the version.
    const refit = JSON.parse(out.at(-1)!);
    expect(refit.weight_version).toBe("1");
    expect(refit.results.map((r: { worker_url: string }) => r.worker_url).sort()).toEqual(sims.map((s) => s.url).sort());
  });

  it("the curl command that saves output.png works (python3)", (ctx) => {
    needTools(ctx, python);
    const cmds = curlCommands().filter(pipesIntoPython);
    expect(cmds).toHaveLength(1);
    rmSync(join(dir, "output.png"), { force: true });
    run(cmds[0]!);
    // The image was decoded and saved.
    const png = readFileSync(join(dir, "output.png"));
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
  });

  it("the Python example works (python3 with requests)", (ctx) => {
    needTools(ctx, pythonRequests);
    const [block] = blocks("Using it from curl and Python", "python");
    const script = block!.replaceAll("http://localhost:30081", router.url);
    rmSync(join(dir, "output.png"), { force: true });
    const stdout = execFileSync(pythonRequests.path!, ["-c", script], { cwd: dir, encoding: "utf8", timeout: 60_000 });
    expect(stdout).toContain("'status': 'healthy'");
    expect(stdout).toContain("'status': 'success'");
    expect(stdout).toMatch(/'weight_version': '\d+'/);
    expect(existsSync(join(dir, "output.png"))).toBe(true);
  });
});

describe("README: Rollout jobs", () => {
  const runBlock = (block: string): string => {
    // npx finds the repo's buf; the block runs whole (its JSON spans lines).
    const script = block.replaceAll("http://localhost:30081", router.url);
    const r = spawnSync("bash", ["-c", script], { cwd: repoRoot, encoding: "utf8", timeout: 60_000 });
    expect(r.status, `${script}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it("the curl example streams the id, results and a min_complete summary; the groups example stops at one whole group; the buf curl example streams the RPC's messages", () => {
    const [curlBlock, groupsBlock, bufBlock] = blocks("Rollout jobs", "bash");
    const grouped = runBlock(groupsBlock!).trim().split("\n").map((l) => JSON.parse(l));
    const groupSummary = grouped.at(-1).summary;
    expect(groupSummary).toMatchObject({ reason: "min_complete_groups" });
    expect(groupSummary.completed_groups.length).toBeGreaterThanOrEqual(1);
    // Whole groups only: every result line belongs to a completed group, two per group.
    const groupResults = grouped.filter((l) => "index" in l);
    expect(groupResults.every((l) => groupSummary.completed_groups.includes(l.group) && l.status === 200)).toBe(true);
    expect(groupResults).toHaveLength(2 * groupSummary.completed_groups.length);
    const lines = runBlock(curlBlock!).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0].id).toMatch(/^rollout_/);
    const results = lines.filter((l) => "index" in l);
    expect(results.length).toBeGreaterThanOrEqual(1);
    expect(results[0]).toMatchObject({ status: 200, body_encoding: "json", weight_version: expect.any(String) });
    expect(lines.at(-1).summary).toMatchObject({ completed: results.length, reason: "min_complete" });
    const messages = runBlock(bufBlock!).trim().split(/\n(?=\{)/).map((m) => JSON.parse(m));
    expect(messages[0].started.id).toMatch(/^rollout_/);
    expect(messages.filter((m) => m.result)).toHaveLength(1);
    expect(messages.at(-1).summary).toMatchObject({ completed: 1 });
  });
});

describe("README: WatchWorkers reasons", () => {
  it("lists every named registry transition with what it means, and nothing that is not one", async () => {
    const { transitions } = await import("../src/registry/transitions.js");
    const start = readme.indexOf("`UPDATED` events name the transition");
    expect(start).toBeGreaterThan(0);
    const rows = [...readme.slice(start, readme.indexOf("\n\n", readme.indexOf("| reason |", start))).matchAll(/^\| `([a-z_]+)` \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!]);
    const documented = Object.fromEntries(rows.filter(([k]) => k !== "load"));
    expect(Object.keys(documented).sort()).toEqual(Object.keys(transitions).sort());
    for (const [k, v] of Object.entries(transitions)) expect(documented[k], k).toBe(v.replace(/\|/g, "/"));
  });
});
