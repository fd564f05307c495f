/**
 * A real single-node Slurm cluster for tests: munged, slurmctld and slurmd
 * (Debian's slurmctld, slurmd, slurm-client and munge packages) started as
 * children of the test process in a fresh folder, on their own ports, with 8
 * fake GPUs (gres files that are symlinks to /dev/null). Checked facts:
 * /work/shared/reference/slurm-test-cluster.md.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { freemem, hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { binaryTool, type Tool } from "./tools.js";

const run = promisify(execFile);

/** The programs a Slurm test needs on PATH (daemons live in /usr/sbin), with their Debian packages. */
export function slurmTools(): Tool[] {
  return [binaryTool("slurmctld", "slurmctld"), binaryTool("slurmd", "slurmd"), binaryTool("sbatch", "slurm-client"), binaryTool("munged", "munge")];
}

export interface SlurmCluster {
  /** Folder of the run (config, state, logs). */
  dir: string;
  /** Value for SLURM_CONF. */
  conf: string;
  /** Environment with SLURM_CONF set, for the router and the Slurm CLI. */
  env: NodeJS.ProcessEnv;
  /** Job ids squeue lists (any state but the finished ones). */
  jobs(): Promise<{ id: string; state: string; name: string }[]>;
  /** Cancels every job, waits for an empty squeue, stops the daemons, removes the folder. */
  stop(): Promise<void>;
}

/** Starts the cluster and waits until its node is idle (about 1 s). */
export async function startSlurmCluster(): Promise<SlurmCluster> {
  const tools = Object.fromEntries(slurmTools().map((t) => [t.name, t.path!]));
  const dir = mkdtempSync(join(tmpdir(), "slurm-test-"));
  for (const sub of ["etc", "munge", "state", "spool", "log", "dev"]) mkdirSync(join(dir, sub), { recursive: true });
  chmodSync(join(dir, "munge"), 0o755);
  for (let i = 0; i < 8; i += 1) symlinkSync("/dev/null", join(dir, "dev", `nvidia${i}`));
  const key = join(dir, "munge", "munge.key");
  writeFileSync(key, randomBytes(1024), { mode: 0o400 });
  const socket = join(dir, "munge", "munge.socket.2");
  // Ports of our own, so parallel runs on one machine do not collide.
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const node = hostname().split(".")[0]!;
  const memMb = Math.max(1024, Math.floor(Math.min(freemem(), totalmem()) / 1024 / 1024) - 1024);
  const conf = join(dir, "etc", "slurm.conf");
  writeFileSync(
    conf,
    [
      "ClusterName=routertest",
      `SlurmctldHost=${node}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      `SlurmctldPort=${base}`,
      `SlurmdPort=${base + 1}`,
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${socket}`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_Core",
      "ReturnToService=2",
      "MpiDefault=none",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "SchedulerParameters=batch_sched_delay=0",
      "SlurmdParameters=config_overrides",
      "GresTypes=gpu",
      // A cancelled job's processes get SIGKILL 2 s after SIGTERM.
      "KillWait=2",
      "MinJobAge=60",
      `StateSaveLocation=${join(dir, "state")}`,
      `SlurmdSpoolDir=${join(dir, "spool")}`,
      `SlurmctldPidFile=${join(dir, "slurmctld.pid")}`,
      `SlurmdPidFile=${join(dir, "slurmd.pid")}`,
      `SlurmctldLogFile=${join(dir, "log", "slurmctld.log")}`,
      `SlurmdLogFile=${join(dir, "log", "slurmd.log")}`,
      `NodeName=${node} CPUs=16 RealMemory=${memMb} Gres=gpu:8 State=UNKNOWN`,
      "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "etc", "gres.conf"), `Name=gpu File=${join(dir, "dev")}/nvidia[0-7]\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
  const daemons: ChildProcess[] = [];
  const start = (command: string, args: string[]): ChildProcess => {
    const child = spawn(command, args, { env, stdio: "ignore" });
    daemons.push(child);
    return child;
  };

  const stopDaemons = async (): Promise<void> => {
    // slurmd before slurmctld before munged; wait for each (PID 1 reaps slowly).
    for (const child of [...daemons].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    }
  };

  try {
    start(tools["munged"]!, ["-F", `--socket=${socket}`, `--key-file=${key}`, `--pid-file=${join(dir, "munge", "munged.pid")}`, `--log-file=${join(dir, "log", "munged.log")}`, `--seed-file=${join(dir, "munge", "seed")}`, "--force"]);
    await until(async () => existsSync(socket), 10_000, "munged socket");
    start(tools["slurmctld"]!, ["-D", "-i"]);
    await until(() => tryRun("scontrol", ["ping"], env, /UP/), 20_000, "slurmctld to answer scontrol ping");
    start(tools["slurmd"]!, ["-D"]);
    await until(() => tryRun("sinfo", ["-h", "-o", "%T"], env, /^idle/m), 20_000, "the node to be idle");
  } catch (err) {
    await stopDaemons();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const jobs = async (): Promise<{ id: string; state: string; name: string }[]> => {
    const { stdout } = await run("squeue", ["-h", "-o", "%i|%T|%j"], { env });
    return stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => {
        const [id, state, name] = l.trim().split("|");
        return { id: id!, state: state!, name: name! };
      });
  };

  let stopping: Promise<void> | undefined;
  return {
    dir,
    conf,
    env,
    jobs,
    stop() {
      stopping ??= (async () => {
        // Killing slurmd does not kill running jobs: cancel first.
        await run("scancel", ["--full", "--user", process.env["USER"] ?? "root"], { env }).catch(() => undefined);
        await until(async () => (await jobs().catch(() => [])).length === 0, 15_000, "an empty squeue").catch(() => undefined);
        await stopDaemons();
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

async function tryRun(command: string, args: string[], env: NodeJS.ProcessEnv, expect?: RegExp): Promise<boolean> {
  try {
    const { stdout } = await run(command, args, { env, timeout: 5000 });
    return expect === undefined || expect.test(stdout);
  } catch {
    return false;
  }
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`slurm test cluster: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
