import { load as loadYaml } from "js-yaml";
import { RouterError } from "../errors.js";
import type { LauncherConfig as PbLauncherConfig } from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import { parseLauncherConfig, parseLauncherSection, type Launcher, type LauncherConfig, type LauncherGroups } from "../launcher/index.js";
import { decodeWorkerId } from "../registry/worker-url.js";
import { launcherSectionFromPb, managedToPb } from "./convert.js";

type LauncherSource = { case: "config"; value: PbLauncherConfig } | { case: "yaml"; value: string } | { case: undefined; value?: undefined };

/** The groups a request's config (one) or yaml (a launcher: mapping or list) describes. */
function launcherConfigOf(source: LauncherSource, rpc: string): LauncherGroups {
  if (source.case === "config") return [parseLauncherSection(launcherSectionFromPb(source.value), `${rpc} request`)];
  if (source.case === "yaml") {
    let doc: unknown;
    try {
      doc = loadYaml(source.value);
    } catch (err) {
      throw new RouterError("invalid_request", `${rpc}: yaml is not valid YAML: ${(err as Error).message}`, { details: { param: "yaml" } });
    }
    return parseLauncherConfig(doc, `${rpc} request yaml`);
  }
  throw new RouterError("invalid_request", `${rpc} needs a launcher config: set config or yaml`, { details: { param: "source" } });
}

/**
 * Scaling acts on one group (found by its name, see Launcher.scale); a yaml
 * listing several groups is refused rather than guessing which one is meant.
 */
function scaleGroupOf(source: LauncherSource): LauncherConfig {
  const groups = launcherConfigOf(source, "ScaleManagedWorkers");
  if (groups.length !== 1) {
    throw new RouterError(
      "invalid_request",
      `ScaleManagedWorkers scales one group of workers, but the yaml lists ${groups.length} launcher groups; send the group to scale alone (a launcher: mapping, or config)`,
      { details: { param: "yaml" } },
    );
  }
  return groups[0]!;
}

/** The managed-worker RPCs over the launcher. */
export function createLauncherRpcs(launcher: Launcher) {
  return {
    async launchWorkers(req: { source: LauncherSource }) {
      const result = await launcher.launch(launcherConfigOf(req.source, "LaunchWorkers"));
      return { workers: result.workers.map(managedToPb) };
    },
    async listManagedWorkers() {
      return { workers: launcher.list().map(managedToPb) };
    },
    async stopManagedWorkers(req: { urls: string[] }) {
      // A bare number is a Slurm job id: a job names its worker before it has a URL.
      const urls = req.urls.map((u) => (/^\d+$/.test(u.trim()) ? u.trim() : decodeWorkerId(u)));
      const before = launcher.list().filter((m) => urls.length === 0 || urls.includes(m.url) || (m.slurm !== undefined && urls.includes(m.slurm.jobId)));
      await launcher.stop(urls.length ? urls : undefined);
      return { workers: before.map((m) => managedToPb({ ...m, state: "exited" })) };
    },
    async scaleManagedWorkers(req: { source: LauncherSource; count: number; create: boolean }) {
      const before = new Map(launcher.list().map((m) => [m.url, m]));
      // Scale-down of Slurm workers that never reported a URL: stopped[] names them by job id.
      for (const m of launcher.list()) if (m.slurm !== undefined) before.set(m.slurm.jobId, m);
      const result = await launcher.scale(scaleGroupOf(req.source), req.count, { create: req.create });
      return {
        started: result.started.map(managedToPb),
        stopped: result.stopped.flatMap((u) => {
          const m = before.get(u);
          return m ? [managedToPb({ ...m, state: "exited" })] : [];
        }),
        workers: launcher.list().map(managedToPb),
      };
    },
  };
}
