import type { Placement } from "../backend.js";
import type { LauncherConfig } from "../config.js";
import { localBindHost, workerUrl } from "../worker-command.js";
import { assignGpus, splitDevices } from "./gpus.js";
import { findFreePort } from "./ports.js";

/**
 * Free ports and GPUs on this machine for `count` new workers, skipping those
 * of `held` (workers whose process groups may still hold theirs). Worker i
 * prefers HTTP port `worker_base_port + 2i` (and the next one), and internal
 * ports `*_port_base + i * internal_port_stride`, as in the Python launcher.
 */
export async function placeLocally(
  config: LauncherConfig,
  count: number,
  held: readonly Placement[],
  gpuSource: { env: NodeJS.ProcessEnv; detectGpuCount: () => number },
): Promise<Placement[]> {
  const inUseGpus = new Set(held.flatMap((p) => (p.gpus === null ? [] : splitDevices(p.gpus))));
  const gpus = assignGpus(config, gpuSource.env, gpuSource.detectGpuCount, { count, inUse: inUseGpus });
  const reserved = new Set(held.flatMap((p) => [p.port, p.port + 1, p.masterPort, p.schedulerPort]));
  const hostKey = config.worker_bind_host === null ? "launcher.worker_host" : "launcher.worker_bind_host";
  const placements: Placement[] = [];
  for (let i = 0; i < count; i += 1) {
    const port = await findFreePort({ host: localBindHost(config), hostKey, preferred: config.worker_base_port + 2 * i, reserved, span: 2 });
    reserved.add(port).add(port + 1);
    // Internal ports are bound on loopback, as in the Python launcher.
    const masterPort = await findFreePort({
      host: "127.0.0.1",
      preferred: config.master_port_base + i * config.internal_port_stride,
      reserved,
    });
    reserved.add(masterPort);
    const schedulerPort = await findFreePort({
      host: "127.0.0.1",
      preferred: config.scheduler_port_base + i * config.internal_port_stride,
      reserved,
    });
    reserved.add(schedulerPort);
    placements.push({ url: workerUrl(config.worker_host, port), port, masterPort, schedulerPort, gpus: gpus[i]! });
  }
  return placements;
}
