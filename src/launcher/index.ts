export { splitShellArgs, type ShellSplitContext } from "./args.js";
export type { Backend, BackendContext, BackendDefinition, BackendSection, Placement } from "./backend.js";
export {
  launcherBackends,
  launcherConfigDefaults,
  loadLauncherConfig,
  parseLauncherConfig,
  parseLauncherSection,
  groupName,
  restartPolicies,
  slurmDefaults,
  slurmPrograms,
  type GenericLauncherConfig,
  type LauncherBackend,
  type LauncherConfig,
  type LauncherGroups,
  type RestartPolicy,
  type SlurmOptions,
  type SlurmProgram,
} from "./config.js";
export { LauncherConfigError, LauncherError, WorkerExitedError } from "./errors.js";
export {
  createLauncher,
  type LaunchResult,
  type Launcher,
  type LauncherOptions,
  type ManagedWorker,
  type ScaleOptions,
  type ScaleResult,
  type WorkerState,
} from "./launcher.js";
export { assignGpus, detectGpuCountWithNvidiaSmi, splitDevices, type GpuAssignmentOptions } from "./local/gpus.js";
export { findFreePort, isPortFree, type FindFreePortOptions } from "./local/ports.js";
export { resolveSglang } from "./local/backend.js";
export { processRun } from "./local/process-run.js";
export {
  groupExists,
  signalGroup,
  spawnWorker,
  stopProcessGroup,
  waitForHealth,
  type ExitInfo,
  type SpawnWorkerOptions,
  type StopProcessGroupOptions,
  type WaitForHealthOptions,
  type WorkerProcess,
} from "./process.js";
export { backendTable, type BackendFacts, type BackendSections } from "./registry.js";
export type { RunDescription, WorkerLocation, WorkerRun } from "./run.js";
export { resolveSim, simCliPath } from "./sim/backend.js";
export { checkSlurmBackend, createSlurmSubmitter, type SlurmSubmitter } from "./slurm/backend.js";
export { createSlurmCli, parseSqueue, type SlurmCli, type SqueueRow } from "./slurm/cli.js";
export { buildJobScript, parseJobReport, sbatchArgs, type JobProgram, type JobReport } from "./slurm/job-script.js";
export type { SlurmJobFacts } from "./slurm/jobs.js";
export {
  buildWorkerCommand,
  findExecutable,
  workerUrl,
  type BackendProgram,
  type WorkerCommand,
  type WorkerPorts,
} from "./worker-command.js";
