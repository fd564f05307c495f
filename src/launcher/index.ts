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
  type LauncherBackend,
  type LauncherConfig,
  type LauncherGroups,
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
