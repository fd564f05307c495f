#!/usr/bin/env node
/**
 * `sglang-d-sim-worker`: the simulated worker as a process. It takes the
 * `sglang serve` flags the launcher passes, so the launcher can start it in
 * place of the real command, plus sim-only flags. Once listening it prints
 * exactly one stdout line, `SIM_LISTENING <url>`, which tests and the
 * launcher wait for. Logs (pino, stdout) default to "warn" so that line is
 * normally the only one.
 */
import { parseArgs } from "node:util";
import type { LevelWithSilent } from "pino";
import { startSimWorker } from "./server.js";
import { DEFAULT_GAIN_CURVE_SPEC } from "./latency.js";
import { TASK_TYPES, isTaskType, type SimWorkerOptions } from "./options.js";

const NAME = "sglang-d-sim-worker";
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

const HELP = `Usage: ${NAME} [flags]

Simulated SGLang diffusion worker (stand-in for \`sglang serve\`, no GPU).

sglang serve flags:
  --model-path <name>              model served (default Qwen/Qwen-Image)
  --num-gpus <n>                   GPUs reported (default 1)
  --host <addr>                    listen address (default 127.0.0.1)
  --port <n>                       listen port, 0 = any free port (default 30000)
  --master-port <n>                accepted and ignored
  --scheduler-port <n>             accepted and ignored
  --served-model-name <name>       the card's id and /server_info served_model_name (default: the model path)
  --dp-size <n>                    data-parallel replicas: reported in /server_info, n generations run at once (default 1)
  --batching-mode <mode>           dynamic (the only mode simulated; default dynamic)
  --batching-max-size <n>          compatible requests run as one batch, 1 = off (default 1)
  --batching-delay-ms <ms>         how long the head of the queue waits for partners (default 0)

sim flags:
  --task-type <type>               ${TASK_TYPES.join("|")} (default: from the model name)
  --speed <x>                      latency divider (default 1.0)
  --failure-rate <0..1>            share of generations answering a plain-text 500 (default 0)
  --warmup-ms <ms>                 hold all but /health, /health_generate, /server_info, /model_info this long (default 0)
  --weight-load-ms <ms>            time of a weight update (default 200)
  --scheduler-concurrency <n>      generations run at once, others wait FIFO (default: --dp-size)
  --attention-factor <a>           cost x (1 + a x megapixels per frame) (default 0)
  --output-ms <ms>                 sim-only: a fixed cost per output, added before --speed divides (default 0)
  --pixel-exponent <e>             sim-only: pixel cost grows as (pixels / 1024x1024)^e (default 1)
  --batching-gain <table>          SIZE=b:gain,...;SIZE=... (default ${DEFAULT_GAIN_CURVE_SPEC})
  --rollout-bytes-per-sample <n>   tensor bytes per sample in /rollout/generate (default 65536)
  --fail-updates                   make weight updates fail (400 success:false)
  --log-level <level>              ${LEVELS.join("|")} (default warn)
  -h, --help                       show this help

Prints "SIM_LISTENING <url>" on stdout once listening; exits 0 on SIGTERM/SIGINT.
`;

class UsageError extends Error {}

function num(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${flag} expects a number, got '${value}'`);
  return n;
}

function parse(argv: string[]): SimWorkerOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        "model-path": { type: "string" },
        "num-gpus": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "master-port": { type: "string" },
        "scheduler-port": { type: "string" },
        "served-model-name": { type: "string" },
        "dp-size": { type: "string" },
        "batching-mode": { type: "string" },
        "batching-max-size": { type: "string" },
        "batching-delay-ms": { type: "string" },
        "batching-gain": { type: "string" },
        "attention-factor": { type: "string" },
        "output-ms": { type: "string" },
        "pixel-exponent": { type: "string" },
        "task-type": { type: "string" },
        speed: { type: "string" },
        "failure-rate": { type: "string" },
        "warmup-ms": { type: "string" },
        "weight-load-ms": { type: "string" },
        "scheduler-concurrency": { type: "string" },
        "rollout-bytes-per-sample": { type: "string" },
        "fail-updates": { type: "boolean" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help) return "help";
  const taskType = v["task-type"];
  if (taskType !== undefined && !isTaskType(taskType)) {
    throw new UsageError(`--task-type must be one of ${TASK_TYPES.join(", ")}, got '${taskType}'`);
  }
  const batchingMode = v["batching-mode"];
  if (batchingMode !== undefined && batchingMode !== "dynamic") throw new UsageError(`--batching-mode must be dynamic (the only mode simulated), got '${batchingMode}'`);
  const level = v["log-level"] ?? "warn";
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LEVELS.join(", ")}, got '${level}'`);
  const options: SimWorkerOptions = {
    modelPath: v["model-path"],
    servedModelName: v["served-model-name"],
    dpSize: num("dp-size", v["dp-size"]),
    batchingMode,
    numGpus: num("num-gpus", v["num-gpus"]),
    host: v.host,
    // `sglang serve` listens on 30000 unless told otherwise.
    port: num("port", v.port) ?? 30000,
    taskType,
    speed: num("speed", v.speed),
    failureRate: num("failure-rate", v["failure-rate"]),
    warmupMs: num("warmup-ms", v["warmup-ms"]),
    weightLoadMs: num("weight-load-ms", v["weight-load-ms"]),
    schedulerConcurrency: num("scheduler-concurrency", v["scheduler-concurrency"]),
    batchingMaxSize: num("batching-max-size", v["batching-max-size"]),
    batchingDelayMs: num("batching-delay-ms", v["batching-delay-ms"]),
    batchingGain: v["batching-gain"],
    attentionFactor: num("attention-factor", v["attention-factor"]),
    costShape: costShapeOf(num("output-ms", v["output-ms"]), num("pixel-exponent", v["pixel-exponent"])),
    rolloutBytesPerSample: num("rollout-bytes-per-sample", v["rollout-bytes-per-sample"]),
    failUpdates: v["fail-updates"],
    logLevel: level as LevelWithSilent,
  };
  // Drop absent flags so the library defaults apply.
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as SimWorkerOptions;
}

/** The sim-only cost terms given, or undefined (the default shape). */
function costShapeOf(outputMs: number | undefined, pixelExponent: number | undefined): SimWorkerOptions["costShape"] {
  if (outputMs === undefined && pixelExponent === undefined) return undefined;
  return { ...(outputMs !== undefined ? { outputMs } : {}), ...(pixelExponent !== undefined ? { pixelExponent } : {}) };
}

async function main(): Promise<void> {
  let options: SimWorkerOptions | "help";
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${NAME}: ${error instanceof Error ? error.message : String(error)}\nTry '${NAME} --help'.\n`);
    process.exit(2);
  }
  if (options === "help") {
    process.stdout.write(HELP);
    return;
  }
  let worker: Awaited<ReturnType<typeof startSimWorker>> | undefined;
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // Never hang on shutdown: a stuck close still ends the process.
    setTimeout(() => process.exit(0), 2000).unref();
    if (worker) void worker.close().then(() => process.exit(0));
    else process.exit(0);
  };
  // Before SIM_LISTENING is printed: a parent may signal as soon as it reads the line.
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  try {
    worker = await startSimWorker(options);
  } catch (error) {
    process.stderr.write(`${NAME}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof RangeError ? 2 : 1);
  }
  if (stopping) {
    await worker.close();
    process.exit(0);
  }
  process.stdout.write(`SIM_LISTENING ${worker.url}\n`);
}

void main();
