import { execFileSync } from "node:child_process";
import type { LauncherConfig } from "../config.js";
import { LauncherConfigError } from "../errors.js";

/** Options of {@link assignGpus}. */
export interface GpuAssignmentOptions {
  /** Workers to assign GPUs to. Default `config.num_workers`. */
  count?: number;
  /**
   * Device ids held by running managed workers; they are never handed out
   * again, so a second launch gets the next free devices. Default empty.
   */
  inUse?: ReadonlySet<string>;
}

/**
 * CUDA_VISIBLE_DEVICES value for each of `count` new workers, or `null` for a
 * worker that runs without GPUs. The pool is, in order of precedence (as in
 * the Python launcher):
 * 1. `worker_gpu_ids`: entry i is used as-is for worker i (entries whose
 *    devices are in use are skipped, which only matters for later launches);
 * 2. the `CUDA_VISIBLE_DEVICES` variable of `env` (empty counts as unset),
 *    cut into consecutive slices of `num_gpus_per_worker`;
 * 3. `detectGpuCount()` devices "0".."n-1", sliced the same way;
 * 4. none detected: every worker gets `null` (CPU).
 *
 * Pure: everything it looks at is passed in.
 *
 * @throws LauncherConfigError when the pool has too few free GPUs, naming how
 *   many were needed and found.
 */
export function assignGpus(
  config: Pick<LauncherConfig, "num_workers" | "num_gpus_per_worker" | "worker_gpu_ids">,
  env: NodeJS.ProcessEnv,
  detectGpuCount: () => number,
  options: GpuAssignmentOptions = {},
): (string | null)[] {
  const count = options.count ?? config.num_workers;
  const inUse = options.inUse ?? new Set<string>();
  const perWorker = config.num_gpus_per_worker;
  const source = "launch request";

  if (config.worker_gpu_ids !== null) {
    const free = config.worker_gpu_ids.filter((entry) => !splitDevices(entry).some((d) => inUse.has(d)));
    if (free.length < count) {
      throw new LauncherConfigError(
        `not enough GPUs: need ${count} entries of launcher.worker_gpu_ids, found ${free.length} free ` +
          `(listed: ${config.worker_gpu_ids.join(" | ")}; in use by running workers: ${[...inUse].join(",") || "none"})`,
        { source, key: "launcher.worker_gpu_ids" },
      );
    }
    return free.slice(0, count);
  }

  let pool: string[];
  let origin: string;
  const visible = env["CUDA_VISIBLE_DEVICES"];
  const fromEnv = visible === undefined ? [] : splitDevices(visible);
  if (fromEnv.length > 0) {
    pool = fromEnv;
    origin = `CUDA_VISIBLE_DEVICES=${visible}`;
  } else {
    const detected = detectGpuCount();
    if (!(detected > 0)) return Array.from({ length: count }, () => null);
    pool = Array.from({ length: detected }, (_, i) => String(i));
    origin = `${detected} detected by nvidia-smi`;
  }

  const free = pool.filter((d) => !inUse.has(d));
  const needed = count * perWorker;
  if (free.length < needed) {
    const busy = pool.length - free.length;
    throw new LauncherConfigError(
      `not enough GPUs: need ${needed} (${count} workers x ${perWorker} GPUs each), found ${free.length} free ` +
        `(${origin}${busy > 0 ? `; ${busy} in use by running workers` : ""})`,
      { source, key: "launcher.num_gpus_per_worker" },
    );
  }
  return Array.from({ length: count }, (_, i) => free.slice(i * perWorker, (i + 1) * perWorker).join(","));
}

/** Device ids of a CUDA_VISIBLE_DEVICES value ("0, 1," → ["0","1"]). */
export function splitDevices(value: string): string[] {
  return value
    .split(",")
    .map((d) => d.trim())
    .filter((d) => d !== "");
}

/**
 * GPUs reported by `nvidia-smi --query-gpu=index --format=csv,noheader`; 0 if
 * the binary is absent or fails (a CPU-only machine is not an error).
 *
 * @param env environment whose PATH is searched. Default `process.env`.
 * @param timeoutMs give up on a hung driver after this long. Default 10000.
 */
export function detectGpuCountWithNvidiaSmi(env: NodeJS.ProcessEnv = process.env, timeoutMs = 10_000): number {
  try {
    const out = execFileSync("nvidia-smi", ["--query-gpu=index", "--format=csv,noheader"], {
      env,
      encoding: "utf8",
      timeout: timeoutMs,
      stdio: ["ignore", "pipe", "ignore"],
    });
    return out.split("\n").filter((line) => line.trim() !== "").length;
  } catch {
    return 0;
  }
}
