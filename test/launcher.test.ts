// Launcher tests: real processes, real sockets. They import the built launcher
// from dist/ (run after `npm run build`) so that the "sim" backend finds the
// built simulated worker at dist/src/sim/cli.js, exactly as in production.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  assignGpus,
  backendTable,
  createLauncher,
  findFreePort,
  isPortFree,
  LauncherConfigError,
  loadLauncherConfig,
  parseLauncherSection,
  splitShellArgs,
  type Launcher,
  type LauncherConfig,
  type LauncherOptions,
  type ManagedWorker,
} from "../dist/src/launcher/index.js";

const fixtures = fileURLToPath(new URL("./fixtures/launcher/", import.meta.url));
const fakeBin = join(fixtures, "bin");
const simCli = fileURLToPath(new URL("../dist/src/sim/cli.js", import.meta.url));

/** Everything logged (worker output included), as parsed pino lines. */
const logLines: Record<string, unknown>[] = [];
const logger = pino(
  { level: "debug" },
  {
    write(line: string) {
      logLines.push(JSON.parse(line) as Record<string, unknown>);
    },
  },
);

let recordDir: string;
const launchers: Launcher[] = [];

beforeAll(() => {
  recordDir = mkdtempSync(join(tmpdir(), "launcher-test-"));
});

afterEach(async () => {
  // A failed assertion must not leave workers running.
  await Promise.all(launchers.splice(0).map((l) => l.stop()));
});

afterAll(() => {
  rmSync(recordDir, { recursive: true, force: true });
});

/** Environment with the fake `sglang` first on PATH and no GPUs visible. */
function testEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${fakeBin}${delimiter}${process.env["PATH"] ?? ""}`,
    SGLANG_FAKE_RECORD_DIR: recordDir,
    SGLANG_FAKE_NODE: process.execPath,
    SGLANG_FAKE_WORKER: simCli,
    ...extra,
  };
  if (!("CUDA_VISIBLE_DEVICES" in extra)) delete env["CUDA_VISIBLE_DEVICES"];
  return env;
}

interface Calls {
  registered: string[];
  deregistered: string[];
}

function makeLauncher(overrides: Partial<LauncherOptions> = {}): { launcher: Launcher; calls: Calls } {
  const calls: Calls = { registered: [], deregistered: [] };
  const launcher = createLauncher({
    logger,
    register: async (url) => {
      calls.registered.push(url);
    },
    deregister: async (url) => {
      calls.deregistered.push(url);
    },
    env: testEnv(),
    healthPollMs: 100,
    detectGpuCount: () => 0,
    stopGraceMs: 3000,
    ...overrides,
  });
  launchers.push(launcher);
  return { launcher, calls };
}

// Spread tests over a random region so parallel runs on one machine rarely collide
// (a collision only shifts ports, since the launcher scans for free ones).
let nextPortBlock = 20_000 + Math.floor(Math.random() * 200) * 100;
function config(overrides: Partial<LauncherConfig> = {}): LauncherConfig {
  const base = nextPortBlock;
  nextPortBlock += 100;
  return parseLauncherSection(
    {
      backend: "sim",
      model: "Qwen/Qwen-Image",
      worker_base_port: base,
      master_port_base: base + 40,
      scheduler_port_base: base + 70,
      internal_port_stride: 10,
      wait_timeout: 15,
      ...overrides,
    },
    "test config",
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe("ESRCH");
    return false;
  }
}

/** What the fake sglang recorded for the worker with this pid. */
function recorded(pid: number): { cuda: string; argv: string[] } {
  const [cuda, ...argv] = readFileSync(join(recordDir, `${pid}.txt`), "utf8").trimEnd().split("\n");
  return { cuda: cuda!, argv };
}

function listen(port: number, host = "127.0.0.1"): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port, host }, () => resolve(server));
  });
}

const closeServer = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe("config", () => {
  it("fills every default for a minimal file and freezes the result", () => {
    const [c, ...rest] = loadLauncherConfig(join(fixtures, "good.yaml"));
    expect(rest).toEqual([]);
    expect(c).toEqual({
      backend: "sim",
      name: null,
      model: "Qwen/Qwen-Image",
      num_workers: 1,
      num_gpus_per_worker: 1,
      worker_host: "127.0.0.1",
      worker_bind_host: null,
      worker_base_port: 10090,
      worker_gpu_ids: null,
      worker_extra_args: "",
      wait_timeout: 600,
      master_port_base: 30005,
      scheduler_port_base: 5555,
      internal_port_stride: 1000,
      log_prefix: "[local-launcher]",
      restart: "on-failure",
      max_restarts: 5,
      restart_backoff: 1,
      slurm: null,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("keeps every explicit value (numbers in worker_gpu_ids become strings, model is trimmed)", () => {
    const [c] = loadLauncherConfig(join(fixtures, "full.yaml"));
    expect(c).toEqual({
      backend: "local",
      name: "wan-video",
      model: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
      num_workers: 2,
      num_gpus_per_worker: 2,
      worker_host: "0.0.0.0",
      worker_bind_host: "::",
      worker_base_port: 20000,
      worker_gpu_ids: ["0,1", "2"],
      worker_extra_args: "--task-type T2V --label 'two words'",
      wait_timeout: 1.5,
      master_port_base: 31000,
      scheduler_port_base: 6000,
      internal_port_stride: 0,
      log_prefix: "[mine]",
      restart: "never",
      max_restarts: 3,
      restart_backoff: 2.5,
      slurm: null,
    });
    expect(Object.isFrozen(c!.worker_gpu_ids)).toBe(true);
  });

  it("a list under launcher: is one group per item, each with its own defaults", () => {
    const groups = loadLauncherConfig(join(fixtures, "groups.yaml"));
    expect(Object.isFrozen(groups)).toBe(true);
    expect(groups.map((g) => [g.backend, g.model, g.num_workers, g.worker_base_port, g.wait_timeout])).toEqual([
      ["sim", "Qwen/Qwen-Image", 2, 10090, 600],
      ["sim", "Wan-AI/Wan2.2-T2V-A14B-Diffusers", 1, 10098, 60],
    ]);
    expect(groups.every((g) => Object.isFrozen(g))).toBe(true);
  });

  it.each([
    ["bad-typo.yaml", /unknown key launcher\.num_worker in .*bad-typo\.yaml \(did you mean num_workers\?\)/],
    ["bad-type.yaml", /launcher\.num_workers in .*bad-type\.yaml must be an integer >= 1, got "eight"/],
    ["bad-missing-model.yaml", /launcher\.model in .*bad-missing-model\.yaml is required/],
    ["bad-empty-model.yaml", /launcher\.model in .*bad-empty-model\.yaml must be a non-empty string, got "   "/],
    ["bad-backend.yaml", /launcher\.backend in .*bad-backend\.yaml must be one of "local", "sim", "slurm", got "kubernetes"/],
    ["bad-gpu-ids.yaml", /launcher\.worker_gpu_ids in .*bad-gpu-ids\.yaml has 1 entries but launcher\.num_workers is 2/],
    ["bad-syntax.yaml", /YAML syntax error in .*bad-syntax\.yaml at line 4, column 1/],
    ["bad-no-launcher.yaml", /bad-no-launcher\.yaml must contain a top-level "launcher:" mapping/],
    ["bad-extra-args.yaml", /launcher\.worker_extra_args in .*bad-extra-args\.yaml has an unbalanced double quote/],
    ["bad-port.yaml", /launcher\.worker_base_port in .*bad-port\.yaml must be an integer from 1 to 65534, got 70000/],
    ["bad-timeout.yaml", /launcher\.wait_timeout in .*bad-timeout\.yaml must be a number of seconds > 0, got -1/],
    ["does-not-exist.yaml", /launcher config file .*does-not-exist\.yaml not found/],
    [
      "bad-overlap.yaml",
      /launcher\[1\]\.worker_base_port in .*bad-overlap\.yaml: the ports of its workers, 10096-10097 \(Wan-AI\/Wan2\.2-T2V-A14B-Diffusers\), overlap 10090-10097 of launcher\[0\] \(Qwen\/Qwen-Image\); .* must be >= 10098 or <= 10088/,
    ],
    ["bad-empty-list.yaml", /launcher in .*bad-empty-list\.yaml must be a mapping of launcher options or a non-empty list of them, got an empty list/],
    ["bad-group-typo.yaml", /unknown key launcher\[1\]\.num_worker in .*bad-group-typo\.yaml \(did you mean num_workers\?\)/],
    ["bad-group-item.yaml", /launcher\[1\] in .*bad-group-item\.yaml must be a mapping of launcher options, got "Wan-AI/],
  ])("%s is rejected with a message naming the file and key", (file, message) => {
    expect(() => loadLauncherConfig(join(fixtures, file))).toThrow(message);
    try {
      loadLauncherConfig(join(fixtures, file));
    } catch (error) {
      expect(error).toMatchObject({ name: "RouterError", code: "invalid_request", status: 400 });
    }
  });

  it("validates an inline object (the RPC path) the same way", () => {
    expect(parseLauncherSection({ model: "m", num_workers: 3 }, "LaunchWorkers request").num_workers).toBe(3);
    expect(() => parseLauncherSection({ model: "m", num_workers: 0 }, "LaunchWorkers request")).toThrow(
      "launcher.num_workers in LaunchWorkers request must be an integer >= 1, got 0",
    );
    expect(() => parseLauncherSection({ model: "m", wokrer_host: "x" }, "LaunchWorkers request")).toThrow(
      /unknown key launcher\.wokrer_host in LaunchWorkers request \(did you mean worker_host\?\)/,
    );
    expect(() => parseLauncherSection(["model"], "LaunchWorkers request")).toThrow(/launcher in LaunchWorkers request must be a mapping/);
  });
});

describe("splitShellArgs", () => {
  it.each<[string, string[]]>([
    ["", []],
    ["   ", []],
    ["--a 1 --b 2", ["--a", "1", "--b", "2"]],
    ["  --a\t1\n--b  ", ["--a", "1", "--b"]],
    ["--label 'two words'", ["--label", "two words"]],
    ['--label "two words"', ["--label", "two words"]],
    ["--x='a b'c", ["--x=a bc"]],
    ["'' \"\"", ["", ""]],
    ["'it''s'", ["its"]],
    ["'a \"b\" c'", ['a "b" c']],
    ['"say \\"hi\\""', ['say "hi"']],
    ['"C:\\path\\n"', ["C:\\path\\n"]],
    ["a\\ b", ["a b"]],
    ["'a\\b'", ["a\\b"]],
    ["--json '{\"k\": [1, 2]}'", ["--json", '{"k": [1, 2]}']],
    ["a \\\nb", ["a", "b"]],
    ["$HOME ~ *", ["$HOME", "~", "*"]],
  ])("%j → %j", (input, expected) => {
    expect(splitShellArgs(input)).toEqual(expected);
  });

  it.each([
    ["--a 'open", /launcher\.worker_extra_args in x\.yaml has an unbalanced single quote \(opened at offset 4\)/],
    ['--a "open', /launcher\.worker_extra_args in x\.yaml has an unbalanced double quote \(opened at offset 4\)/],
    ["--a trailing\\", /launcher\.worker_extra_args in x\.yaml ends with a lone backslash/],
  ])("%j is an error naming the key", (input, message) => {
    expect(() => splitShellArgs(input, { source: "x.yaml" })).toThrow(message);
  });
});

describe("assignGpus", () => {
  const none = (): number => 0;
  const four = (): number => 4;
  const cfg = (num_workers: number, num_gpus_per_worker: number, worker_gpu_ids: string[] | null = null) => ({
    num_workers,
    num_gpus_per_worker,
    worker_gpu_ids,
  });

  it.each<[string, ReturnType<typeof cfg>, NodeJS.ProcessEnv, () => number, (string | null)[]]>([
    ["explicit ids win over env and detection", cfg(2, 2, ["0,1", "4,5"]), { CUDA_VISIBLE_DEVICES: "2,3" }, four, ["0,1", "4,5"]],
    ["env var sliced by gpus per worker", cfg(2, 2), { CUDA_VISIBLE_DEVICES: "4,5,6,7" }, none, ["4,5", "6,7"]],
    ["env var with spaces and surplus", cfg(2, 1), { CUDA_VISIBLE_DEVICES: " 3, 1 ,2," }, none, ["3", "1"]],
    ["env var wins over detection", cfg(1, 1), { CUDA_VISIBLE_DEVICES: "7" }, four, ["7"]],
    ["empty env var counts as unset", cfg(2, 2), { CUDA_VISIBLE_DEVICES: "" }, four, ["0,1", "2,3"]],
    ["detected GPUs sliced", cfg(4, 1), {}, four, ["0", "1", "2", "3"]],
    ["no GPUs anywhere: CPU", cfg(3, 2), {}, none, [null, null, null]],
  ])("%s", (_name, config, env, detect, expected) => {
    expect(assignGpus(config, env, detect)).toEqual(expected);
  });

  it("skips devices held by running workers (a second launch)", () => {
    expect(assignGpus(cfg(1, 2), { CUDA_VISIBLE_DEVICES: "0,1,2,3" }, none, { inUse: new Set(["0", "1"]) })).toEqual(["2,3"]);
    expect(assignGpus(cfg(2, 1, ["0", "1"]), {}, none, { count: 1, inUse: new Set(["0"]) })).toEqual(["1"]);
  });

  it.each<[string, ReturnType<typeof cfg>, NodeJS.ProcessEnv, () => number, Set<string>, RegExp]>([
    ["env too small", cfg(2, 2), { CUDA_VISIBLE_DEVICES: "0,1,2" }, none, new Set(), /need 4 \(2 workers x 2 GPUs each\), found 3 free \(CUDA_VISIBLE_DEVICES=0,1,2\)/],
    ["detected too few", cfg(3, 2), {}, four, new Set(), /need 6 \(3 workers x 2 GPUs each\), found 4 free \(4 detected by nvidia-smi\)/],
    ["rest in use", cfg(1, 2), {}, four, new Set(["0", "1", "2"]), /need 2 .*found 1 free \(4 detected by nvidia-smi; 3 in use by running workers\)/],
    ["explicit ids all in use", cfg(1, 1, ["0"]), {}, none, new Set(["0"]), /need 1 entries of launcher\.worker_gpu_ids, found 0 free/],
  ])("not enough GPUs (%s) names need and found", (_name, config, env, detect, inUse, message) => {
    expect(() => assignGpus(config, env, detect, { inUse })).toThrow(message);
  });
});

describe("ports", () => {
  it("skips a port someone is bound on, and one whose port+1 is taken", async () => {
    const occupied = await listen(0);
    const taken = (occupied.address() as { port: number }).port;
    try {
      expect(await isPortFree("127.0.0.1", taken)).toBe(false);
      expect(await findFreePort({ host: "127.0.0.1", preferred: taken, reserved: new Set() })).toBeGreaterThan(taken);
      // `taken - 1` itself is free, but a worker also needs port+1 (= taken).
      if (await isPortFree("127.0.0.1", taken - 1)) {
        const found = await findFreePort({ host: "127.0.0.1", preferred: taken - 1, reserved: new Set(), span: 2 });
        expect(found).toBeGreaterThan(taken);
        expect(await findFreePort({ host: "127.0.0.1", preferred: taken - 1, reserved: new Set(), span: 1 })).toBe(taken - 1);
      }
    } finally {
      await closeServer(occupied);
    }
  });

  it("skips ports this launcher already reserved without binding them", async () => {
    const probe = await listen(0);
    const free = (probe.address() as { port: number }).port;
    await closeServer(probe);
    const found = await findFreePort({ host: "127.0.0.1", preferred: free, reserved: new Set([free, free + 1]) });
    expect(found).toBeGreaterThanOrEqual(free + 2);
  });
});

describe("launcher", () => {
  it("sim backend: launches 2 workers that answer /health, registers them, stop() leaves nothing", async () => {
    const { launcher, calls } = makeLauncher();
    const cfg = config({ num_workers: 2, worker_extra_args: "--speed 4" });
    const result = await launcher.launch(cfg);

    expect(result.workers.map((w) => w.state)).toEqual(["ready", "ready"]);
    const urls = result.workers.map((w) => w.url);
    expect(urls).toEqual([`http://127.0.0.1:${cfg.worker_base_port}`, `http://127.0.0.1:${cfg.worker_base_port + 2}`]);
    expect([...calls.registered].sort()).toEqual([...urls].sort());
    for (const url of urls) expect((await fetch(`${url}/health`)).status).toBe(200);

    const listed = launcher.list();
    expect(listed.map((w) => [w.url, w.state, w.backend, w.model, w.gpus])).toEqual(
      urls.map((url) => [url, "ready", "sim", "Qwen/Qwen-Image", null]),
    );
    expect(listed.map((w) => w.masterPort)).toEqual([cfg.master_port_base, cfg.master_port_base + 10]);
    // The worker's own output reaches the router's log, tagged with the worker.
    expect(logLines.some((l) => l["worker"] === urls[0] && l["stream"] === "stdout" && String(l["msg"]).includes("SIM_LISTENING"))).toBe(true);

    const pids = listed.map((w) => w.pid);
    await launcher.stop();
    expect(pids.map(isAlive)).toEqual([false, false]);
    expect([...calls.deregistered].sort()).toEqual([...urls].sort());
    expect(launcher.list()).toEqual([]);
  });

  it("a worker binds where the router reaches it (worker_host), not every address; worker_bind_host widens that", async () => {
    const { launcher } = makeLauncher();
    const [narrow] = (await launcher.launch(config())).workers;
    const [wide] = (await launcher.launch(config({ name: "wide", worker_bind_host: "0.0.0.0" }))).workers;
    const reach = (host: string, port: number) =>
      fetch(`http://${host}:${port}/health`).then(
        (r) => r.status,
        () => "refused",
      );
    // Both are reached (and registered) at 127.0.0.1 ...
    expect([narrow!.url, wide!.url]).toEqual([`http://127.0.0.1:${narrow!.port}`, `http://127.0.0.1:${wide!.port}`]);
    expect([await reach("127.0.0.1", narrow!.port), await reach("127.0.0.1", wide!.port)]).toEqual([200, 200]);
    // ... but only the one told to bind everywhere answers on another address of the machine.
    expect(await reach("127.0.0.2", narrow!.port)).toBe("refused");
    expect(await reach("127.0.0.2", wide!.port)).toBe(200);
  });

  it("scale finds the group by its name and starts workers with the group's settings; a name no group has is refused, unless create", async () => {
    const { launcher } = makeLauncher();
    const images = config({ name: "images", worker_extra_args: "--speed 4" });
    await launcher.launch(images);
    // A partial config naming the group: the new worker gets the group's ports and flags, not the defaults.
    const partial = parseLauncherSection({ backend: "sim", name: "images", model: "Qwen/Qwen-Image" });
    const up = await launcher.scale(partial, 2);
    expect(up.started.map((w) => [w.state, w.group])).toEqual([["ready", "images"]]);
    expect(up.started[0]!.port).toBe(images.worker_base_port + 2);

    const other = config({ name: "videos" });
    const refused = await launcher.scale(other, 5).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(LauncherConfigError);
    expect(refused).toMatchObject({ code: "invalid_request", status: 400, key: "launcher.name" });
    expect((refused as Error).message).toMatch(/no launcher group is named "videos" \(existing groups: "images" \(sim, 2 live\)\).*create/);
    expect(launcher.list()).toHaveLength(2);

    const created = await launcher.scale(other, 1, { create: true });
    expect(created.started.map((w) => [w.state, w.group, w.port])).toEqual([["ready", "videos", other.worker_base_port]]);
    expect(launcher.list().map((w) => w.group)).toEqual(["images", "images", "videos"]);
    // Down to zero keeps the group: it can be scaled up again without create.
    await launcher.scale(other, 0);
    expect((await launcher.scale(other, 1)).started).toHaveLength(1);
  });

  it("scale adds workers on fresh ports and removes the newest first", async () => {
    const { launcher, calls } = makeLauncher();
    const cfg = config();
    const first = await launcher.launch(cfg);
    const up = await launcher.scale(cfg, 3);
    expect(up.started.map((w) => w.state)).toEqual(["ready", "ready"]);
    const ports = launcher.list().map((w) => w.port);
    expect(new Set(ports).size).toBe(3);
    expect(ports[0]).toBe(first.workers[0]!.port);

    const newest = launcher.list()[2]!;
    const down = await launcher.scale(cfg, 1);
    expect(down.stopped).toHaveLength(2);
    expect(down.stopped[0]).toBe(newest.url);
    expect(isAlive(newest.pid)).toBe(false);
    expect(launcher.list().map((w) => w.url)).toEqual([first.workers[0]!.url]);
    expect(calls.deregistered.sort()).toEqual([...down.stopped].sort());
    expect(await launcher.scale(cfg, 1)).toEqual({ started: [], stopped: [] });
  });

  it("two groups from one file: image and video workers on their own ports, all registered; scale acts on the group it is given", async () => {
    const { launcher, calls } = makeLauncher();
    const base = nextPortBlock;
    nextPortBlock += 100;
    const file = join(recordDir, "groups.yaml");
    const wan = "Wan-AI/Wan2.2-T2V-A14B-Diffusers";
    writeFileSync(
      file,
      [
        "launcher:",
        "  - backend: sim",
        "    model: Qwen/Qwen-Image",
        "    num_workers: 2",
        `    worker_base_port: ${base}`,
        "    wait_timeout: 15",
        "  - backend: sim",
        `    model: ${wan}`,
        `    worker_base_port: ${base + 50}`,
        "    wait_timeout: 15",
        "",
      ].join("\n"),
    );
    const groups = loadLauncherConfig(file);
    const result = await launcher.launch(groups);
    expect(result.workers.map((w) => [w.state, w.model])).toEqual([
      ["ready", "Qwen/Qwen-Image"],
      ["ready", "Qwen/Qwen-Image"],
      ["ready", wan],
    ]);
    const [image1, image2, video] = result.workers as [ManagedWorker, ManagedWorker, ManagedWorker];
    for (const w of [image1, image2]) {
      expect(w.port).toBeGreaterThanOrEqual(base);
      expect(w.port).toBeLessThan(base + 50);
    }
    expect(video.port).toBeGreaterThanOrEqual(base + 50);
    expect([...calls.registered].sort()).toEqual(result.workers.map((w) => w.url).sort());
    // Each worker serves its group's model, with the task type the router routes videos by.
    const cards = await Promise.all(
      result.workers.map(async (w) => ((await (await fetch(`${w.url}/v1/models`)).json()) as { data: { id: string; task_type: string }[] }).data[0]),
    );
    expect(cards.map((c) => [c!.id, c!.task_type])).toEqual([
      ["Qwen/Qwen-Image", "T2I"],
      ["Qwen/Qwen-Image", "T2I"],
      [wan, "T2V"],
    ]);

    const up = await launcher.scale(groups[1]!, 2);
    expect(up.started.map((w) => [w.state, w.model])).toEqual([["ready", wan]]);
    const down = await launcher.scale(groups[0]!, 1);
    expect(down.stopped).toEqual([image2.url]);
    expect(launcher.list().map((w) => w.model)).toEqual(["Qwen/Qwen-Image", wan, wan]);

    const pids = launcher.list().map((w) => w.pid);
    await launcher.stop();
    expect(pids.map(isAlive)).toEqual([false, false, false]);
    expect(isAlive(image2.pid)).toBe(false);
  });

  it("groups start all or nothing: a later group short of GPUs stops the earlier ones, a missing program starts none", async () => {
    const launchedSince = (from: number) => logLines.slice(from).filter((l) => l["msg"] === "launched worker").map((l) => Number(l["pid"]));
    // One GPU: the first group takes it, the second finds none.
    const { launcher } = makeLauncher({ env: testEnv({ CUDA_VISIBLE_DEVICES: "0" }) });
    let from = logLines.length;
    await expect(launcher.launch([config({ backend: "local" }), config({ backend: "local", model: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" })])).rejects.toThrow(
      /not enough GPUs: need 1 .*found 0 free/,
    );
    const started = launchedSince(from);
    expect(started).toHaveLength(1);
    expect(isAlive(started[0]!)).toBe(false);
    expect(launcher.list()).toEqual([]);

    const { launcher: bare } = makeLauncher({ env: { PATH: "/nonexistent" } });
    from = logLines.length;
    await expect(bare.launch([config(), config({ backend: "local" })])).rejects.toThrow(/no executable `sglang` was found on PATH/);
    expect(launchedSince(from)).toEqual([]);
    expect(bare.list()).toEqual([]);
  });

  it("local backend runs `sglang serve` with the exact flags and a GPU slice per worker", async () => {
    const { launcher } = makeLauncher({ env: testEnv({ CUDA_VISIBLE_DEVICES: "4,5,6,7" }) });
    const cfg = config({
      backend: "local",
      num_workers: 2,
      num_gpus_per_worker: 2,
      worker_extra_args: `--task-type T2I --speed '2'`,
    });
    const result = await launcher.launch(cfg);
    expect(result.workers.map((w) => [w.state, w.gpus])).toEqual([
      ["ready", "4,5"],
      ["ready", "6,7"],
    ]);
    result.workers.forEach((w, i) => {
      // Each port is the preferred one or the next free one above it (another
      // process on this machine may hold the preferred one).
      expect(w.port).toBeGreaterThanOrEqual(cfg.worker_base_port + 2 * i);
      expect(w.masterPort).toBeGreaterThanOrEqual(cfg.master_port_base + 10 * i);
      expect(w.schedulerPort).toBeGreaterThanOrEqual(cfg.scheduler_port_base + 10 * i);
      expect(w.masterPort - (cfg.master_port_base + 10 * i)).toBeLessThan(10);
      expect(recorded(w.pid)).toEqual({
        cuda: `CUDA_VISIBLE_DEVICES=${i === 0 ? "4,5" : "6,7"}`,
        argv: [
          "serve",
          "--model-path",
          "Qwen/Qwen-Image",
          "--num-gpus",
          "2",
          "--host",
          "127.0.0.1",
          "--port",
          String(w.port),
          "--master-port",
          String(w.masterPort),
          "--scheduler-port",
          String(w.schedulerPort),
          "--task-type",
          "T2I",
          "--speed",
          "2",
        ],
      });
    });

    // A second launch gets the remaining devices... and there are none left.
    await expect(launcher.launch(config({ backend: "local" }))).rejects.toThrow(/not enough GPUs: need 1 .*found 0 free/);
    expect(launcher.list()).toHaveLength(2);
  });

  it("local backend with worker_gpu_ids and no sglang on PATH", async () => {
    const { launcher } = makeLauncher();
    const result = await launcher.launch(config({ backend: "local", num_workers: 2, worker_gpu_ids: ["0,1", "2,3"] }));
    expect(result.workers.map((w) => recorded(w.pid).cuda)).toEqual(["CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3"]);

    const { launcher: bare } = makeLauncher({ env: { PATH: "/nonexistent" } });
    await expect(bare.launch(config({ backend: "local" }))).rejects.toThrow(/no executable `sglang` was found on PATH/);
    expect(bare.list()).toEqual([]);
  });

  it("a worker that exits during startup fails fast with its exit code", async () => {
    const { launcher, calls } = makeLauncher({ env: testEnv({ SGLANG_FAKE_EXIT: "3" }) });
    const started = Date.now();
    const result = await launcher.launch(config({ backend: "local" }));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.workers[0]).toMatchObject({ state: "failed", exitCode: 3 });
    expect(result.workers[0]!.error).toMatch(/exited with code 3 before \/health answered 200/);
    expect(calls.registered).toEqual([]);
  });

  it("a worker that never answers /health times out and is killed", async () => {
    const { launcher, calls } = makeLauncher({ env: testEnv({ SGLANG_FAKE_WORKER: join(fixtures, "silent-worker.mjs") }) });
    const [worker] = (await launcher.launch(config({ backend: "local", wait_timeout: 0.5 }))).workers;
    expect(worker).toMatchObject({ state: "failed" });
    expect(worker!.error).toMatch(/did not answer \/health with 200 within 500 ms/);
    expect(isAlive(worker!.pid)).toBe(false);
    expect(calls.registered).toEqual([]);
    // Its port is free for the next worker.
    expect(launcher.list()[0]!.state).toBe("failed");
  });

  it("a worker that dies after it was ready is marked exited and logged at warn (restart: never)", async () => {
    const { launcher } = makeLauncher();
    const [worker] = (await launcher.launch(config({ restart: "never" }))).workers;
    process.kill(worker!.pid, "SIGKILL");
    await expect.poll(() => launcher.list()[0]!.state).toBe("exited");
    expect(logLines.some((l) => l["level"] === 40 && l["worker"] === worker!.url && l["msg"] === "managed worker exited unexpectedly")).toBe(
      true,
    );
  });

  it("SIGKILLs a process group that ignores SIGTERM after the grace period", async () => {
    const graceMs = 1000;
    const { launcher } = makeLauncher({
      env: testEnv({ SGLANG_FAKE_WORKER: join(fixtures, "stubborn-worker.mjs") }),
      stopGraceMs: graceMs,
    });
    const [worker] = (await launcher.launch(config({ backend: "local" }))).workers;
    expect(worker!.state).toBe("ready");
    const grandchild = Number(readFileSync(join(recordDir, `${worker!.pid}.grandchild`), "utf8"));
    expect(isAlive(grandchild)).toBe(true);

    const started = Date.now();
    await launcher.stop([worker!.url]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(graceMs - 50);
    expect(isAlive(worker!.pid)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
    expect(logLines.some((l) => l["msg"] === "worker process group did not exit after SIGTERM; sending SIGKILL")).toBe(true);
  });

  it("stop() of an unknown URL stops nothing", async () => {
    const { launcher } = makeLauncher();
    await expect(launcher.stop(["http://127.0.0.1:1"])).rejects.toMatchObject({ code: "worker_not_found" });
  });
});

describe("Backend.adopt (local, sim): a worker of an earlier router", () => {
  it("takes over a process group still serving at its placement, whose stop() then ends it; a gone or foreign pid is not adopted", async () => {
    const ctx = { logger, env: testEnv(), graceMs: 3000, detectGpuCount: () => 0 };
    const cfg = config();
    // The "earlier router": a backend instance that started the worker and is then forgotten.
    const earlier = backendTable.sim.create(ctx);
    const [placement] = await earlier.place(cfg, 1, []);
    const started = await earlier.start(cfg, placement!);
    const handle = started.describe().handle;
    expect(handle).toBe(String(started.pid));
    await waitFor(async () => (await fetch(`${placement!.url}/health`).then((r) => r.status, () => 0)) === 200, 10_000, "sim healthy");

    const later = backendTable.sim.create(ctx);
    // Nothing of ours at that pid, or a live pid (this test process) that is not serving there: not adopted, not signalled.
    expect(await later.adopt(cfg, placement!, "999999999")).toBeNull();
    expect(await later.adopt(cfg, { ...placement!, url: "http://127.0.0.1:1" }, String(process.pid))).toBeNull();

    const adopted = await later.adopt(cfg, placement!, handle);
    expect(adopted).not.toBeNull();
    expect(adopted!.pid).toBe(started.pid);
    expect(await adopted!.locate(1000)).toEqual({ url: placement!.url, port: placement!.port, gpus: null });
    expect(adopted!.exitInfo()).toBeUndefined();
    await adopted!.stop();
    expect(isAlive(started.pid)).toBe(false);
    expect(await adopted!.exited).toMatchObject({ code: null, signal: null });
    expect(await fetch(`${placement!.url}/health`).then((r) => r.status, () => "refused")).toBe("refused");
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it("the built simulated worker exists (tests above ran against it)", () => {
  expect(existsSync(simCli)).toBe(true);
});
