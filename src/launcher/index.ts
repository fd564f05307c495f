export { splitShellArgs, type ShellSplitContext } from "./args.js";
export {
  buildWorkerCommand,
  findExecutable,
  resolveBackendProgram,
  simCliPath,
  workerUrl,
  type BackendProgram,
  type WorkerCommand,
  type WorkerPorts,
} from "./backends.js";
export {
  launcherBackends,
  launcherConfigDefaults,
  loadLauncherConfig,
  parseLauncherConfig,
  parseLauncherSection,
  restartPolicies,
  slurmDefaults,
  slurmPrograms,
  type LauncherBackend,
  type LauncherConfig,
  type LauncherGroups,
  type RestartPolicy,
  type SlurmOptions,
  type SlurmProgram,
} from "./config.js";
export { LauncherConfigError, LauncherError, WorkerExitedError } from "./errors.js";
export { assignGpus, detectGpuCountWithNvidiaSmi, splitDevices, type GpuAssignmentOptions } from "./gpus.js";
export {
  createLauncher,
  type LaunchResult,
  type Launcher,
  type LauncherOptions,
  type ManagedWorker,
  type ScaleResult,
  type WorkerState,
} from "./launcher.js";
export { findFreePort, isPortFree, type FindFreePortOptions } from "./ports.js";
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
export { processRun, type SlurmJobFacts, type WorkerLocation, type WorkerRun } from "./run.js";
export { checkSlurmBackend, createSlurmBackend, type SlurmBackend } from "./slurm/backend.js";
export { createSlurmCli, parseSqueue, type SlurmCli, type SqueueRow } from "./slurm/cli.js";
export { buildJobScript, parseJobReport, sbatchArgs, type JobProgram, type JobReport } from "./slurm/job-script.js";
