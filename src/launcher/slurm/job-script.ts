import { splitShellArgs } from "../args.js";
import type { LauncherConfig } from "../config.js";
import { modelFlags } from "../worker-command.js";
import type { SlurmOptions } from "./config.js";

/** What a job runs, before the per-worker flags. */
export interface JobProgram {
  /** Executable (absolute, or looked up on the node's PATH after `setup`). */
  readonly command: string;
  readonly leadingArgs: readonly string[];
  /**
   * The interpreter that picks free ports on the node, for the port picker:
   * the Node binary for the simulated worker, `python3` for sglang (a node
   * that runs sglang has Python).
   */
  readonly picker: { readonly kind: "node" | "python"; readonly command: string };
}

/** Inputs of {@link buildJobScript}. */
export interface JobScriptInput {
  readonly config: LauncherConfig;
  readonly slurm: SlurmOptions;
  readonly program: JobProgram;
  /** Absolute folder where the job writes `<jobName>-<jobId>.json`. */
  readonly workDir: string;
  readonly jobName: string;
}

/** Path of the file the job writes once it chose its ports (shell expands $SLURM_JOB_ID; the router passes the id). */
export function reportPath(workDir: string, jobName: string, jobId: string): string {
  return `${workDir}/${jobName}-${jobId}.json`;
}

/** What a job's report file holds. */
export interface JobReport {
  /** `hostname` on the node. */
  readonly host: string;
  readonly port: number;
  /** CUDA_VISIBLE_DEVICES Slurm gave the job ("" without GPUs). */
  readonly gpus: string;
}

/** Parses a report file, or undefined when it is not (yet) complete. Pure. */
export function parseJobReport(text: string): JobReport | undefined {
  try {
    const r = JSON.parse(text) as Partial<JobReport>;
    if (typeof r.host !== "string" || r.host === "" || typeof r.port !== "number" || !Number.isInteger(r.port)) return undefined;
    return { host: r.host, port: r.port, gpus: typeof r.gpus === "string" ? r.gpus : "" };
  } catch {
    return undefined;
  }
}

// Holds all four sockets open until every port is chosen, so none repeats:
// the HTTP port and the one after it (sglang uses both), master and scheduler.
const NODE_PICKER = [
  'const n=require("net"),h=process.argv[1];',
  "const o=(p,a)=>new Promise(r=>{const s=n.createServer();s.once(\"error\",()=>r(null));s.listen({port:p,host:a,exclusive:true},()=>r(s))});",
  "(async()=>{for(let i=0;i<100;i++){const a=await o(0,h);if(!a)break;const p=a.address().port;const b=p<65535?await o(p+1,h):null;",
  'if(!b){a.close();continue}const m=await o(0,"127.0.0.1"),q=await o(0,"127.0.0.1");',
  "console.log(p,m.address().port,q.address().port);for(const s of [a,b,m,q])s.close();return}process.exit(1)})()",
].join("");

const PYTHON_PICKER = [
  "import socket, sys",
  "h = sys.argv[1]",
  "def o(p, a):",
  "    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET)",
  "    s.bind((a, p))",
  "    return s",
  "for _ in range(100):",
  "    a = o(0, h); p = a.getsockname()[1]",
  "    try:",
  "        b = o(p + 1, h)",
  "    except OSError:",
  "        a.close(); continue",
  "    m = o(0, '127.0.0.1'); q = o(0, '127.0.0.1')",
  "    print(p, m.getsockname()[1], q.getsockname()[1]); break",
  "else:",
  "    sys.exit(1)",
].join("\n");

/**
 * The batch script of one worker job. It chooses the worker's ports on the
 * node it landed on (free there, which the router cannot check from afar),
 * writes host, port and GPUs to the report file the router polls for, then
 * execs the worker so that scancel signals the worker itself. Pure.
 */
export function buildJobScript(input: JobScriptInput): string {
  const { config, slurm, program } = input;
  const pick =
    program.picker.kind === "node"
      ? `${q(program.picker.command)} -e ${q(NODE_PICKER)} ${q(config.worker_host)}`
      : `${q(program.picker.command)} -c ${q(PYTHON_PICKER)} ${q(config.worker_host)}`;
  const worker = [program.command, ...program.leadingArgs, ...modelFlags(config)].map(q);
  const extra = splitShellArgs(config.worker_extra_args).map(q);
  const report = `${q(input.workDir)}/${q(input.jobName)}-"$SLURM_JOB_ID".json`;
  return [
    "#!/bin/bash",
    `# One ${config.model} worker of sglang-d-router (backend slurm). Written and submitted by the router;`,
    "# the router reads the report file below to find the worker, and scancels the job when it stops.",
    "set -eo pipefail",
    ...slurm.setup,
    ...Object.entries(slurm.env).map(([k, v]) => `export ${k}=${q(v)}`),
    "export PYTHONUNBUFFERED=1",
    `ports=$(${pick})`,
    'read -r PORT MASTER_PORT SCHEDULER_PORT <<< "$ports"',
    `report=${report}`,
    'printf \'{"host":"%s","port":%s,"gpus":"%s"}\\n\' "$(hostname)" "$PORT" "${CUDA_VISIBLE_DEVICES:-}" > "$report.tmp"',
    'mv "$report.tmp" "$report"',
    `exec ${[...worker, '--port "$PORT" --master-port "$MASTER_PORT" --scheduler-port "$SCHEDULER_PORT"', ...extra].join(" ")}`,
    "",
  ].join("\n");
}

/** sbatch options of one worker job (before the script path). Pure. */
export function sbatchArgs(input: { config: LauncherConfig; slurm: SlurmOptions; workDir: string; jobName: string }): string[] {
  const { config, slurm } = input;
  const args = [
    `--job-name=${input.jobName}`,
    `--output=${input.workDir}/${input.jobName}-%j.log`,
    // The router's restart policy resubmits; Slurm requeueing too would run two.
    "--no-requeue",
    "--nodes=1",
    "--ntasks=1",
    `--gres=gpu:${config.num_gpus_per_worker}`,
  ];
  if (slurm.partition !== null) args.push(`--partition=${slurm.partition}`);
  if (slurm.account !== null) args.push(`--account=${slurm.account}`);
  if (slurm.qos !== null) args.push(`--qos=${slurm.qos}`);
  if (slurm.time !== null) args.push(`--time=${slurm.time}`);
  if (slurm.constraint !== null) args.push(`--constraint=${slurm.constraint}`);
  args.push(...splitShellArgs(slurm.sbatch_args, { key: "launcher.slurm.sbatch_args" }));
  return args;
}

/** Single-quoted for bash. */
function q(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
