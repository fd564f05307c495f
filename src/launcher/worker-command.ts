import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { splitShellArgs } from "./args.js";
import type { LauncherConfig } from "./config.js";

/** The program a backend runs, before per-worker flags. */
export interface BackendProgram {
  /** Absolute path of the executable. */
  command: string;
  /** Arguments before the worker flags (`serve`, or the sim script path). */
  leadingArgs: readonly string[];
}

/** Ports chosen for one worker. */
export interface WorkerPorts {
  /** HTTP port (`--port`); port+1 is kept free too. */
  port: number;
  masterPort: number;
  schedulerPort: number;
}

/** A full command line for one worker. */
export interface WorkerCommand {
  command: string;
  args: string[];
}

/** The flags every backend gives a worker before where it listens: the model and its GPUs. */
export function modelFlags(config: LauncherConfig): string[] {
  return ["--model-path", config.model, "--num-gpus", String(config.num_gpus_per_worker)];
}

/** Whether `host` means every address of the machine. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/**
 * Where a worker on this machine binds: `worker_bind_host` if set, else the
 * address the router reaches it at (`worker_host`), so it does not serve
 * every network the machine is on.
 */
export function localBindHost(config: LauncherConfig): string {
  return config.worker_bind_host ?? config.worker_host;
}

/**
 * The worker command line, identical for both backends apart from the
 * program: `<program> --model-path M --num-gpus N --host H --port P
 * --master-port MP --scheduler-port SP <worker_extra_args split>`.
 */
export function buildWorkerCommand(program: BackendProgram, config: LauncherConfig, ports: WorkerPorts): WorkerCommand {
  return {
    command: program.command,
    args: [
      ...program.leadingArgs,
      ...modelFlags(config),
      "--host",
      localBindHost(config),
      "--port",
      String(ports.port),
      "--master-port",
      String(ports.masterPort),
      "--scheduler-port",
      String(ports.schedulerPort),
      ...splitShellArgs(config.worker_extra_args),
    ],
  };
}

/**
 * URL clients use to reach a worker bound on `host`: wildcard and
 * `localhost` become 127.0.0.1 (as in the Python launcher), IPv6 literals get
 * brackets.
 */
export function workerUrl(host: string, port: number): string {
  const connectHost = isWildcardHost(host) || host === "localhost" ? "127.0.0.1" : host;
  return `http://${connectHost.includes(":") ? `[${connectHost}]` : connectHost}:${port}`;
}

/** Like `which`: the first executable `name` on `env.PATH`, or null. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv): string | null {
  if (isAbsolute(name)) return isExecutableFile(name, constants.X_OK) ? name : null;
  for (const dir of (env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate, constants.X_OK)) return candidate;
  }
  return null;
}

export function isExecutableFile(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    // Directories are "executable" too; PATH lookup wants files.
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
