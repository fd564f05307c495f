/**
 * Backend slurm against a real single-node Slurm (munged, slurmctld, slurmd
 * started by the test in a fresh folder; 8 fake GPUs through gres): workers
 * are jobs running the simulated worker; the router finds them, registers
 * them, serves images from them, resubmits a cancelled job, scales, and
 * leaves no job behind when it stops. Skipped (with the packages to
 * install) on a machine without Slurm; .ci/run installs it and requires it.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../src/gen/sgl/diffusion/router/v1/admin_pb.js";
import {
  buildJobScript,
  createLauncher,
  LauncherConfigError,
  loadLauncherConfig,
  parseJobReport,
  parseLauncherSection,
  parseSqueue,
  sbatchArgs,
} from "../dist/src/launcher/index.js";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSlurmCluster, slurmTools, type SlurmCluster } from "./helpers/slurm-cluster.js";
import { missingToolsReason, needTools } from "./helpers/tools.js";

const tools = slurmTools();
const available = missingToolsReason(tools) === undefined;
const tmp = mkdtempSync(join(tmpdir(), "sgl-slurm-"));
let cluster: SlurmCluster | undefined;

beforeAll(async () => {
  if (available) cluster = await startSlurmCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

function launcherYaml(numWorkers: number, extra: string[] = []): string {
  return [
    "launcher:",
    "  backend: slurm",
    "  model: Qwen/Qwen-Image",
    `  num_workers: ${numWorkers}`,
    "  wait_timeout: 60",
    "  restart_backoff: 0.2",
    ...extra.map((l) => `  ${l}`),
    "  slurm:",
    "    program: sim",
    "    poll_interval: 0.3",
    `    work_dir: ${join(tmp, "work")}`,
    "",
  ].join("\n");
}

async function startRouter(numWorkers: number): Promise<{ r: RouterProcess; admin: Client<typeof AdminService>; file: string }> {
  const file = join(tmp, `launcher-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, launcherYaml(numWorkers));
  const r = await startRouterProcess(["--health-check-interval", "3600", "--launcher-config", file], { env: cluster!.env });
  cleanup.push(() => r.stop(20_000));
  const sessionManager = new Http2SessionManager(r.url);
  cleanup.push(() => sessionManager.abort());
  const admin = createClient(AdminService, createGrpcTransport({ baseUrl: r.url, sessionManager }));
  return { r, admin, file };
}

async function healthyWorkers(r: RouterProcess): Promise<any[]> {
  return ((await jsonRequest(`${r.url}/workers`)).body.workers as any[]).filter((w) => w.state === "healthy");
}

async function generate(r: RouterProcess): Promise<Response> {
  const res = await fetch(`${r.url}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "a cluster", size: "64x64", num_inference_steps: 1, response_format: "b64_json" }),
  });
  await res.arrayBuffer();
  return res;
}

/** The process whose command line has `args` in a row (read from /proc: no pgrep needed). */
function pidByArgs(args: string[]): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    if (argv.some((_, i) => args.every((a, j) => argv[i + j] === a))) return Number(entry);
  }
  throw new Error(`no process with ${args.join(" ")}`);
}

/** Jobs squeue lists for the cluster (running or pending). */
async function queued(): Promise<{ id: string; state: string; name: string }[]> {
  return cluster!.jobs();
}

describe("backend slurm", () => {
  it("launches two jobs, registers them, serves images from both; a scancelled job leaves rotation at once and is resubmitted", async (ctx) => {
    needTools(ctx, ...tools);
    const { r, admin } = await startRouter(2);
    const ready = await waitFor(async () => {
      const ws = (await admin.listManagedWorkers({})).workers;
      return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws : undefined;
    }, 60_000, "two Slurm workers ready");
    const node = execFileSync("hostname", { encoding: "utf8" }).trim().split(".")[0]!;
    for (const w of ready) {
      expect(w).toMatchObject({ backend: "slurm", pid: 0, slurmState: "RUNNING", restarts: 0 });
      expect(w.slurmJobId).toMatch(/^\d+$/);
      expect(w.slurmNode).toBe(node);
      // Slurm gave each job its own fake GPU through --gres=gpu:1.
      expect(w.gpus).toMatch(/^\d$/);
      expect(w.url).toMatch(/^http:\/\/[^/]+:\d+$/);
    }
    expect(new Set(ready.map((w) => w.gpus)).size).toBe(2);
    expect((await queued()).filter((j) => j.state === "RUNNING").map((j) => j.id).sort()).toEqual(ready.map((w) => w.slurmJobId).sort());
    expect(await healthyWorkers(r)).toHaveLength(2);

    // Images come from both jobs.
    const servedBy = new Set<string>();
    await waitFor(async () => {
      const res = await generate(r);
      expect(res.status).toBe(200);
      servedBy.add(new URL(res.headers.get("x-sim-worker")!).port);
      return servedBy.size === 2;
    }, 20_000, "answers from both workers");

    // scancel from outside: out of rotation at once (one squeue poll), then a new job.
    const victim = ready[0]!;
    execFileSync("scancel", [victim.slurmJobId], { env: cluster!.env });
    const cancelledAt = Date.now();
    await waitFor(async () => !(await jsonRequest(`${r.url}/workers`)).body.workers.some((w: any) => w.url === victim.url), 15_000, "cancelled worker removed from the pool");
    expect(Date.now() - cancelledAt).toBeLessThan(3_000);
    const res = await generate(r);
    expect(res.status).toBe(200);
    // Served by the job still running.
    expect(new URL(res.headers.get("x-sim-worker")!).port).toBe(new URL(ready[1]!.url).port);

    const back = await waitFor(async () => {
      const ws = (await admin.listManagedWorkers({})).workers;
      const w = ws.find((m) => m.restarts === 1);
      return w?.state === "ready" ? w : undefined;
    }, 60_000, "the cancelled worker resubmitted and ready");
    expect(back.slurmJobId).not.toBe(victim.slurmJobId);
    expect(back.slurmState).toBe("RUNNING");
    expect(back.error).toBe("");
    await waitFor(async () => (await healthyWorkers(r)).length === 2, 10_000, "two healthy workers again");
    expect((await queued()).map((j) => j.id)).not.toContain(victim.slurmJobId);
  }, 120_000);

  it("ScaleManagedWorkers adds and removes jobs; after SIGTERM no job is left in squeue", async (ctx) => {
    needTools(ctx, ...tools);
    const { r, admin } = await startRouter(1);
    await waitFor(async () => (await admin.listManagedWorkers({})).workers[0]?.state === "ready", 60_000, "one worker ready");
    const yaml = launcherYaml(1);

    // Up with the typed config (SlurmOptions), down with the same group as yaml: one group either way.
    const config = { backend: "slurm", model: "Qwen/Qwen-Image", numWorkers: 1, waitTimeout: 60, restartBackoff: 0.2, slurm: { program: "sim", pollInterval: 0.3, workDir: join(tmp, "work") } };
    const up = await admin.scaleManagedWorkers({ source: { case: "config", value: config }, count: 3 });
    expect(up.started).toHaveLength(2);
    expect(up.started.every((w) => w.state === "ready" && /^\d+$/.test(w.slurmJobId))).toBe(true);
    // "ready" is the launcher's health check; the router's rotation also reads the worker's card (a moment later under load).
    await waitFor(async () => (await healthyWorkers(r)).length === 3, 10_000, "three healthy workers");
    expect((await queued()).filter((j) => j.state === "RUNNING")).toHaveLength(3);

    const down = await admin.scaleManagedWorkers({ source: { case: "yaml", value: yaml }, count: 1 });
    expect(down.stopped).toHaveLength(2);
    // The newest go first: the two jobs scale-up added.
    expect(down.stopped.map((w) => w.slurmJobId).sort()).toEqual(up.started.map((w) => w.slurmJobId).sort());
    expect(await healthyWorkers(r)).toHaveLength(1);
    await waitFor(async () => (await queued()).length === 1, 15_000, "squeue down to one job");

    expect(await r.stop(20_000)).toBe(0);
    await waitFor(async () => (await queued()).length === 0, 15_000, "an empty squeue after the router stopped");
  }, 120_000);

  it("killAllSync (the process.on('exit') path) scancels jobs synchronously", async (ctx) => {
    needTools(ctx, ...tools);
    const logger = pino({ level: "silent" });
    const launcher = createLauncher({ logger, register: async () => undefined, env: cluster!.env, healthPollMs: 100 });
    cleanup.push(() => launcher.stop());
    const config = parseLauncherSection({ backend: "slurm", model: "Qwen/Qwen-Image", wait_timeout: 60, slurm: { program: "sim", poll_interval: 0.3, work_dir: join(tmp, "work") } });
    const [worker] = (await launcher.launch(config)).workers;
    expect(worker).toMatchObject({ state: "ready", slurm: { state: "RUNNING" } });
    expect((await queued()).map((j) => j.id)).toContain(worker!.slurm!.jobId);
    launcher.killAllSync();
    // scancel has returned: the job is cancelled (it may show COMPLETING for a moment).
    await waitFor(async () => !(await queued()).some((j) => j.id === worker!.slurm!.jobId), 15_000, "job gone from squeue");
  }, 90_000);

  it("a job whose worker dies on the node ends, leaves rotation at once and is resubmitted (restart policy)", async (ctx) => {
    needTools(ctx, ...tools);
    const events: string[] = [];
    const launcher = createLauncher({
      logger: pino({ level: "silent" }),
      register: async (url) => void events.push(`register ${url}`),
      deregister: async (url) => void events.push(`deregister ${url}`),
      env: cluster!.env,
      healthPollMs: 100,
    });
    cleanup.push(() => launcher.stop());
    const config = parseLauncherSection({ backend: "slurm", model: "m", wait_timeout: 60, restart_backoff: 0.2, slurm: { program: "sim", poll_interval: 0.3, work_dir: join(tmp, "work") } });
    const [first] = (await launcher.launch(config)).workers;
    expect(first).toMatchObject({ state: "ready", restarts: 0 });
    // The worker is the job's process (the script execs it): find it by its port and kill it.
    const pid = pidByArgs(["--port", String(first!.port)]);
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    await waitFor(() => events.includes(`deregister ${first!.url}`), 15_000, "deregistered when the job ended");
    expect(Date.now() - killedAt).toBeLessThan(3_000);
    const back = await waitFor(() => {
      const w = launcher.list()[0];
      return w?.state === "ready" && w.restarts === 1 ? w : undefined;
    }, 60_000, "resubmitted job ready");
    expect(back.slurm!.jobId).not.toBe(first!.slurm!.jobId);
    expect(events.filter((e) => e.startsWith("register"))).toHaveLength(2);
  }, 90_000);

  it("a router SIGKILLed and restarted with the same --state-file adopts its running jobs by job id (no second sbatch); a job cancelled while it was down is submitted again", async (ctx) => {
    needTools(ctx, ...tools);
    const file = join(tmp, `launcher-adopt-${Math.random().toString(16).slice(2)}.yaml`);
    writeFileSync(file, launcherYaml(2));
    const args = ["--health-check-interval", "3600", "--launcher-config", file, "--state-file", join(tmp, `state-${Math.random().toString(16).slice(2)}.json`)];
    const life = async () => {
      const r = await startRouterProcess(args, { env: cluster!.env });
      cleanup.push(() => r.stop(20_000));
      const ready = await waitFor(async () => {
        const ws = (await jsonRequest(`${r.url}/managed_workers`)).body.workers as any[];
        return ws.length === 2 && ws.every((w) => w.state === "ready") ? ws.sort((a, b) => a.name.localeCompare(b.name)) : undefined;
      }, 60_000, "two Slurm workers ready");
      return { r, ready };
    };
    const sigkill = async (r: RouterProcess) => {
      r.proc.kill("SIGKILL");
      await new Promise((res) => r.proc.once("exit", res));
    };
    const first = await life();
    const jobIds = first.ready.map((w) => w.slurm.jobId);
    await sigkill(first.r);
    // Killed without its exit hook: the jobs run on.
    expect((await queued()).filter((j) => j.state === "RUNNING").map((j) => j.id).sort()).toEqual([...jobIds].sort());

    const second = await life();
    expect(second.ready.map((w) => [w.name, w.url, w.slurm.jobId, w.restarts])).toEqual(first.ready.map((w, i) => [w.name, w.url, jobIds[i], 0]));
    expect(second.r.logs.filter((l) => l.msg === "submitted worker job")).toEqual([]);
    expect(second.r.logs.filter((l) => l.msg === "adopted running worker job")).toHaveLength(2);
    expect((await queued()).map((j) => j.id).sort()).toEqual([...jobIds].sort());
    await waitFor(async () => (await healthyWorkers(second.r)).length === 2, 10_000, "both adopted workers in rotation");
    expect((await generate(second.r)).status).toBe(200);

    await sigkill(second.r);
    execFileSync("scancel", [jobIds[1]!], { env: cluster!.env });
    await waitFor(async () => !(await queued()).some((j) => j.id === jobIds[1]), 15_000, "the cancelled job gone");
    const third = await life();
    expect(third.ready[0]).toMatchObject({ name: first.ready[0].name, url: first.ready[0].url, restarts: 0 });
    expect(third.ready[0].slurm.jobId).toBe(jobIds[0]);
    expect(third.ready[1]).toMatchObject({ name: first.ready[1].name, restarts: 1 });
    expect(third.ready[1].slurm.jobId).not.toBe(jobIds[1]);
    expect(third.r.logs.filter((l) => l.msg === "submitted worker job")).toHaveLength(1);
    // The adopted job and the new one are both this router's: a clean stop cancels both.
    expect(await third.r.stop(20_000)).toBe(0);
    await waitFor(async () => (await queued()).length === 0, 15_000, "an empty squeue after the router stopped");
  }, 180_000);

  it("a job gets none of the router's keys (job environment file, worker's /proc environ), binds where the router reaches it, on a port of port_range", async (ctx) => {
    needTools(ctx, ...tools);
    const keys = { SGLANG_D_ROUTER_ADMIN_API_KEY: `adm-${process.pid}-${Date.now()}`, SGLANG_D_ROUTER_API_KEY: `dat-${process.pid}-${Date.now()}`, SGLANG_D_ROUTER_OTHER_SECRET: `oth-${Date.now()}` };
    const launcher = createLauncher({ logger: pino({ level: "silent" }), register: async () => undefined, env: { ...cluster!.env, ...keys }, healthPollMs: 100 });
    cleanup.push(() => launcher.stop());
    const first = 31000 + 50 * Math.floor(Math.random() * 80);
    const range = `${first}-${first + 49}`;
    const config = parseLauncherSection({ backend: "slurm", model: "m", wait_timeout: 60, slurm: { program: "sim", poll_interval: 0.3, port_range: range, work_dir: join(tmp, "work") } });
    const [worker] = (await launcher.launch(config)).workers;
    expect(worker).toMatchObject({ state: "ready", slurm: { state: "RUNNING" } });
    expect(worker!.port).toBeGreaterThanOrEqual(first);
    expect(worker!.port).toBeLessThan(first + 49);

    // slurmctld keeps each job's environment in its state folder while the job lives.
    const jobId = Number(worker!.slurm!.jobId);
    const jobEnv = readFileSync(join(cluster!.dir, "state", `hash.${jobId % 10}`, `job.${jobId}`, "environment"), "utf8");
    expect(jobEnv).toContain("SLURM_CONF=");
    expect(jobEnv).not.toContain("SGLANG_D_ROUTER_");
    const pid = pidByArgs(["--port", String(worker!.port)]);
    const workerEnv = readFileSync(`/proc/${pid}/environ`, "utf8");
    expect(workerEnv).toContain("SLURM_JOB_ID=");
    for (const key of Object.values(keys)) {
      expect(jobEnv.includes(key)).toBe(false);
      expect(workerEnv.includes(key)).toBe(false);
    }

    // Bound to the address it is reached at (its route to the router's host), not 0.0.0.0.
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const host = argv[argv.indexOf("--host") + 1]!;
    expect(host).not.toBe("0.0.0.0");
    expect(worker!.url).toBe(`http://${host.includes(":") ? `[${host}]` : host}:${worker!.port}`);
  }, 90_000);

  it("a job sbatch refuses (unknown partition) fails the launch as a config error naming launcher.slurm; nothing is queued", async (ctx) => {
    needTools(ctx, ...tools);
    const launcher = createLauncher({ logger: pino({ level: "silent" }), register: async () => undefined, env: cluster!.env });
    cleanup.push(() => launcher.stop());
    const config = parseLauncherSection({ backend: "slurm", model: "m", num_workers: 2, slurm: { program: "sim", partition: "nope", work_dir: join(tmp, "work") } });
    // Jobs of the tests before may still be COMPLETING after their scancel: only new ones count.
    const before = new Set((await queued()).map((j) => j.id));
    const error = await launcher.launch(config).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LauncherConfigError);
    expect(error).toMatchObject({ code: "invalid_request", key: "launcher.slurm" });
    expect((error as Error).message).toMatch(/sbatch refused the worker job .*invalid partition/i);
    expect(launcher.list()).toEqual([]);
    expect((await queued()).filter((j) => !before.has(j.id))).toEqual([]);
  }, 30_000);
});

describe("slurm job pieces (no cluster)", () => {
  it("parses squeue lines, skipping noise", () => {
    expect(parseSqueue("12|RUNNING|node1|None\n13|PENDING||Resources\n\nsqueue: warning\n14|CANCELLED|node2|a|b\n")).toEqual([
      { jobId: "12", state: "RUNNING", node: "node1", reason: "None" },
      { jobId: "13", state: "PENDING", node: "", reason: "Resources" },
      { jobId: "14", state: "CANCELLED", node: "node2", reason: "a|b" },
    ]);
  });

  it.each<[string, unknown]>([
    ['{"host":"n1","port":4000,"gpus":"2,3"}', { host: "n1", port: 4000, gpus: "2,3" }],
    ['{"host":"n1","port":4000,"gpus":""}', { host: "n1", port: 4000, gpus: "" }],
    ['{"host":"n1","port":', undefined],
    ['{"host":"","port":4000}', undefined],
    ['{"host":"n1","port":"4000"}', undefined],
  ])("job report %s", (text, expected) => {
    expect(parseJobReport(text)).toEqual(expected);
  });

  it("sbatch options: job name, log, no requeue, GPUs from num_gpus_per_worker, site options, then sbatch_args", () => {
    const config = parseLauncherSection({
      backend: "slurm",
      model: "m",
      num_gpus_per_worker: 4,
      slurm: { partition: "gpu", account: "acct", qos: "high", time: 90, constraint: "h100", sbatch_args: "--mem=64G --comment='two words'" },
    });
    expect(sbatchArgs({ config, slurm: config.slurm!, workDir: "/w", jobName: "j" })).toEqual([
      "--job-name=j",
      "--output=/w/j-%j.log",
      "--no-requeue",
      "--nodes=1",
      "--ntasks=1",
      "--gres=gpu:4",
      "--partition=gpu",
      "--account=acct",
      "--qos=high",
      "--time=90",
      "--constraint=h100",
      "--mem=64G",
      "--comment=two words",
    ]);
  });

  it("the job script runs setup and env first, reports host/port/GPUs, then execs the worker with the chosen ports", () => {
    const config = parseLauncherSection({
      backend: "slurm",
      model: "Qwen/Qwen-Image",
      worker_extra_args: "--label 'a b'",
      slurm: { env: { TOKEN: "it's" }, setup: ["module load cuda"] },
    });
    const script = buildJobScript({
      config,
      slurm: config.slurm!,
      program: { command: "sglang", leadingArgs: ["serve"], picker: { kind: "python", command: "python3" } },
      workDir: "/shared dir",
      jobName: "j",
    });
    const lines = script.split("\n");
    expect(lines[0]).toBe("#!/bin/bash");
    expect(lines.indexOf("module load cuda")).toBeLessThan(lines.findIndex((l) => l.startsWith("ports=")));
    expect(script).toContain("export TOKEN='it'\\''s'");
    expect(script).toContain(`report='/shared dir'/j-"$SLURM_JOB_ID".json`);
    // It binds where the router reaches it: the address the picker found on the node's route to the router (not 0.0.0.0) ...
    expect(lines.find((l) => l.startsWith("exec "))).toBe(
      `exec sglang serve --model-path Qwen/Qwen-Image --num-gpus 1 --host "$BIND_HOST" --port "$PORT" --master-port "$MASTER_PORT" --scheduler-port "$SCHEDULER_PORT" --label 'a b'`,
    );
    // ... which it reports as its host, with a port from slurm.port_range (default 30000-30999).
    expect(lines.find((l) => l.startsWith("printf "))).toContain(`"$BIND_HOST" "$PORT"`);
    expect(script).toMatch(/ '' 30000-30999\)\n/);
    // worker_bind_host 0.0.0.0 binds everywhere again, and the job is then reported by its node's name.
    const wide = parseLauncherSection({ backend: "slurm", model: "m", worker_bind_host: "0.0.0.0", slurm: { port_range: null } });
    const wideScript = buildJobScript({ config: wide, slurm: wide.slurm!, program: { command: "sglang", leadingArgs: ["serve"], picker: { kind: "python", command: "python3" } }, workDir: "/w", jobName: "j" });
    expect(wideScript).toMatch(/ 0\.0\.0\.0 ''\)\n/);
    expect(wideScript).toContain(`"$(hostname)" "$PORT"`);
  });
});

describe("slurm: in the launcher YAML", () => {
  it("the examples load, with defaults filled", () => {
    const [sim] = loadLauncherConfig(new URL("../examples/slurm_sim_launcher.yaml", import.meta.url).pathname);
    expect(sim).toMatchObject({ backend: "slurm", num_workers: 2, worker_host: "0.0.0.0", slurm: { program: "sim", partition: null, poll_interval: 1 } });
    const [real] = loadLauncherConfig(new URL("../examples/slurm_launcher.yaml", import.meta.url).pathname);
    expect(real).toMatchObject({ backend: "slurm", num_gpus_per_worker: 2, slurm: { program: "sglang", partition: "gpu", account: "my-project", qos: "normal", time: "24:00:00", constraint: "a100", env: { HF_HOME: "/shared/hf-cache" } } });
  });

  it.each<[Record<string, unknown>, RegExp]>([
    [{ backend: "sim", slurm: {} }, /launcher\.slurm .* is only valid with launcher\.backend: slurm/],
    [{ backend: "slurm", slurm: { partiton: "gpu" } }, /unknown key launcher\.slurm\.partiton .*valid keys: program, partition/],
    [{ backend: "slurm", slurm: { program: "python" } }, /launcher\.slurm\.program .* must be "sglang" or "sim", got "python"/],
    [{ backend: "slurm", slurm: { env: { "BAD-NAME": "x" } } }, /launcher\.slurm\.env .* must be a mapping whose keys are variable names/],
    [{ backend: "slurm", slurm: { poll_interval: 0 } }, /launcher\.slurm\.poll_interval .* must be a number of seconds >= 0\.1/],
    [{ backend: "slurm", slurm: { sbatch_args: "--comment='open" } }, /launcher\.slurm\.sbatch_args .* unbalanced single quote/],
    [{ backend: "slurm", slurm: "gpu" }, /launcher\.slurm .* must be a mapping of Slurm options, got "gpu"/],
    [{ backend: "slurm", slurm: { port_range: "31000" } }, /launcher\.slurm\.port_range .* must be null or "FIRST-LAST" with 1 <= FIRST < LAST <= 65535/],
    [{ backend: "slurm", slurm: { port_range: "31000-31000" } }, /launcher\.slurm\.port_range .* got "31000-31000"/],
    [{ backend: "slurm", slurm: { port_range: 31000 } }, /launcher\.slurm\.port_range .* got 31000/],
  ])("%j is refused, naming the key", (section, message) => {
    expect(() => parseLauncherSection({ model: "m", ...section })).toThrow(message);
  });
});
