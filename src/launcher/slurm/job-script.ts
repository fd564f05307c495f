import { splitShellArgs } from "../args.js";
import type { LauncherConfig } from "../config.js";
import { isWildcardHost, modelFlags } from "../worker-command.js";
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

// Both pickers take the address to bind ("" = the node's address on its route
// to the router's host, SLURM_SUBMIT_HOST) and the port range ("" = any free
// port), and print "PORT MASTER_PORT SCHEDULER_PORT BIND_HOST". They hold all
// four sockets open until every port is chosen, so none repeats: the HTTP
// port and the one after it (sglang uses both), master and scheduler (on
// loopback). A random start in the range keeps jobs landing on one node
// apart.
const NODE_PICKER = `const n=require("net"),d=require("dgram");
const [h0,range]=process.argv.slice(1);
const route=()=>new Promise((res,rej)=>{const t=process.env.SLURM_SUBMIT_HOST;
if(!t)return rej(new Error("SLURM_SUBMIT_HOST is not set: cannot tell the address the router reaches this node at; set launcher.worker_bind_host"));
const s=d.createSocket(t.includes(":")?"udp6":"udp4");s.on("error",rej);s.connect(9,t,()=>{const a=s.address().address;s.close();res(a)})});
const o=(p,a)=>new Promise(r=>{const s=n.createServer();s.once("error",()=>r(null));s.listen({port:p,host:a,exclusive:true},()=>r(s))});
(async()=>{const h=h0||await route();
const [lo,hi]=range?range.split("-").map(Number):[0,0];const span=hi-lo,start=Math.floor(Math.random()*Math.max(span,1));
for(let i=0;i<(range?span:100);i++){const a=await o(range?lo+(start+i)%span:0,h);if(!a){if(range)continue;break}
const p=a.address().port;const b=p<65535?await o(p+1,h):null;if(!b){a.close();continue}
const m=await o(0,"127.0.0.1"),q=await o(0,"127.0.0.1");
console.log(p,m.address().port,q.address().port,h);for(const s of [a,b,m,q])s.close();return}
console.error("no free port and port after it"+(range?" in "+range:"")+" on "+h);process.exit(1)})().catch(e=>{console.error(String(e.message||e));process.exit(1)})`;

const PYTHON_PICKER = [
  "import os, random, socket, sys",
  "h, rng = sys.argv[1], sys.argv[2]",
  "def route():",
  "    t = os.environ.get('SLURM_SUBMIT_HOST')",
  "    if not t:",
  "        sys.exit('SLURM_SUBMIT_HOST is not set: cannot tell the address the router reaches this node at; set launcher.worker_bind_host')",
  "    fam, _, _, _, addr = socket.getaddrinfo(t, 9, 0, socket.SOCK_DGRAM)[0]",
  "    s = socket.socket(fam, socket.SOCK_DGRAM); s.connect(addr); a = s.getsockname()[0]; s.close()",
  "    return a",
  "def o(p, a):",
  "    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET)",
  "    s.bind((a, p))",
  "    return s",
  "h = h or route()",
  "lo, hi = map(int, rng.split('-')) if rng else (0, 0)",
  "span = hi - lo",
  "start = random.randrange(max(span, 1))",
  "for i in range(span if rng else 100):",
  "    try:",
  "        a = o(lo + (start + i) % span if rng else 0, h)",
  "    except OSError:",
  "        continue",
  "    p = a.getsockname()[1]",
  "    try:",
  "        b = o(p + 1, h)",
  "    except (OSError, OverflowError):",
  "        a.close(); continue",
  "    m = o(0, '127.0.0.1'); q = o(0, '127.0.0.1')",
  "    print(p, m.getsockname()[1], q.getsockname()[1], h); break",
  "else:",
  "    sys.exit('no free port and port after it' + (' in ' + rng if rng else '') + ' on ' + h)",
].join("\n");

/**
 * The batch script of one worker job. It chooses the worker's ports on the
 * node it landed on (free there, which the router cannot check from afar),
 * writes host, port and GPUs to the report file the router polls for, then
 * execs the worker so that scancel signals the worker itself. Pure.
 */
export function buildJobScript(input: JobScriptInput): string {
  const { config, slurm, program } = input;
  // Bind where the router reaches the worker: worker_bind_host, or worker_host if it names an address, or ("") the route to the router.
  const bind = config.worker_bind_host ?? (isWildcardHost(config.worker_host) ? "" : config.worker_host);
  const pickerArgs = `${q(bind)} ${q(slurm.port_range ?? "")}`;
  const pick =
    program.picker.kind === "node"
      ? `${q(program.picker.command)} -e ${q(NODE_PICKER)} ${pickerArgs}`
      : `${q(program.picker.command)} -c ${q(PYTHON_PICKER)} ${pickerArgs}`;
  // A worker bound to every address is reported by its node's name; otherwise by the address it is bound to.
  const reportHost = isWildcardHost(bind) ? '"$(hostname)"' : '"$BIND_HOST"';
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
    'read -r PORT MASTER_PORT SCHEDULER_PORT BIND_HOST <<< "$ports"',
    `report=${report}`,
    `printf '{"host":"%s","port":%s,"gpus":"%s"}\\n' ${reportHost} "$PORT" "\${CUDA_VISIBLE_DEVICES:-}" > "$report.tmp"`,
    'mv "$report.tmp" "$report"',
    `exec ${[...worker, '--host "$BIND_HOST" --port "$PORT" --master-port "$MASTER_PORT" --scheduler-port "$SCHEDULER_PORT"', ...extra].join(" ")}`,
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
