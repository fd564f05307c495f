#!/usr/bin/env node
// The fresh-machine check: runs the test files that use optional tools
// (ffprobe, protoc, grpc_python_plugin, python3 with grpc or requests, the
// Slurm daemons and client) with
// those tools hidden from PATH and SGLANG_D_ROUTER_REQUIRE_TOOLS unset, as on
// a machine with only Node and npm. Passes when vitest passes and reports
// exactly the tests below as skipped, each with a reason that names the
// missing tool and its Debian package. Run after `npm run build` (the tests
// use dist/); .ci/run runs it after `npm test`.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const files = ["test/sim.test.ts", "test/rpc-interop.test.ts", "test/readme.test.ts", "test/slurm.test.ts", "test/dashboard.test.ts", "test/state-store.test.ts", "test/multi-router.test.ts", "test/multi-router-memory.test.ts", "test/etcd-partition.test.ts"];
// Slurm's daemons live in /usr/sbin, which the PATH below never has; its client commands are in /usr/bin.
const hidden = /^(ffprobe|ffmpeg|protoc.*|grpc_python_plugin|python3.*|sbatch|squeue|scancel|sinfo|scontrol|srun|salloc|munge.*|chromium.*|etcd.*)$/;
const slurm = ["slurmctld (Debian: apt-get install slurmctld)", "slurmd", "sbatch", "slurm-client", "munged", "munge"];
const pythonGrpc = [
  "python3 with the grpc, grpc_tools, google.protobuf modules",
  "python3-grpcio python3-grpc-tools",
  "protoc",
  "protobuf-compiler",
  "grpc_python_plugin",
  "protobuf-compiler-grpc",
];
/** file > full test name -> what its skip reason must mention. */
const chromiumTool = ["chromium", "apt-get install chromium"];
const etcdTool = ["etcd", "apt-get install etcd-server"];
const expectedSkips = new Map([
  ["test/state-store.test.ts > --state-store etcd, one router a router SIGKILLed and restarted on the same store serves the REST-registered workers at the refit's version within 2 s; retrying clients lose nothing", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, one router refuses to start with both --state-file and --state-store, or when etcd does not answer", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, two routers on one prefix a worker registered through A serves through B; drained and removed through A, B follows within 1 s", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, two routers on one prefix a video created through A is polled and downloaded through B", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, two routers on one prefix refit lock: a refit or sleep through B while A's two-phase refit is open is a 409 refit_in_progress; after A's abort B's refit runs", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, two routers on one prefix B follows A's refits: held while A's refit is open, answered at A's committed version; a disk refit through A moves B's X-Weight-Version within 1 s", etcdTool],
  ["test/state-store.test.ts > --state-store etcd, etcd lost a router that loses etcd holds generation, then answers 503 state_store_unavailable with Retry-After after a short wait (not --queue-timeout), nothing sent to the worker, and serves again once etcd is back", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: distributed drain before a refit a refit through A waits for B's requests in flight: they end on the old weights before the load reaches the worker, later ones carry the new version; no answer mixes versions", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: distributed drain before a refit when B does not drain within the refit's drain timeout, the refit through A changes nothing (504 drain_timeout naming B's wait) and both routers serve the old weights again", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: the refit router dies A SIGKILLed during a refit's load: B settles it when A's lease expires (rolled forward, the worker re-synced), serves one version, frees the lock; clients retrying through B lose nothing", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: the refit router dies before the load A SIGKILLed while it waits for B's drain: B's requests end on the old weights, B rolls the refit forward when A's lease expires, and the one load that reaches the worker finds nothing open; a request held meanwhile gets the new weights", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: a refit state left in progress a live router's refit left in progress without the lock (its last write lost while etcd was away) is settled by the other within ~3 s: both routers then serve its target, the worker re-synced", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: ids a worker's ids leave etcd when it is removed, a deleted video's at once; a mesh made through A is found through B from etcd", etcdTool],
  ["test/multi-router.test.ts > several routers on etcd: ids an image id's keys leave etcd by themselves affinity_ttl_s after it was made (a lease nobody keeps alive); B still serves the image by asking the workers; a bad affinity_ttl_s refuses the start", etcdTool],
  ["test/multi-router-memory.test.ts > several routers on etcd: sleep and wake a sleep through A waits for B's requests in flight (all 200 before the release reaches the worker); B sends nothing to the sleeping worker, holds its requests, and serves them after a wake through A", etcdTool],
  ["test/multi-router-memory.test.ts > several routers on etcd: sleep and wake when B does not drain within the sleep's drain timeout, nothing sleeps (504 drain_timeout naming the other router) and both routers serve on", etcdTool],
  ["test/multi-router-memory.test.ts > several routers on etcd: LoRA changes a set_lora through A waits for B's requests in flight (they end on no adapter before the call reaches the worker), later ones carry the new adapter, and B answers with the pool's LoRA; an unmerge through A reaches B's view too", etcdTool],
  ["test/etcd-partition.test.ts > a router cut off from etcd while another router refits B severs its request and rollout item in flight (503 state_store_unavailable, Retry-After) before etcd counts it gone, holds new ones; A's refit loads only after B's lease expired; back on etcd, B serves the new version only, and clients retrying through B lose nothing", etcdTool],
  ["test/dashboard.test.ts > GET /dashboard in headless chromium shows every worker with state, model and weight version; a removal and a refit show within 2 s", chromiumTool],
  ["test/dashboard.test.ts > GET /dashboard in headless chromium a two-phase refit shows open within 2 s of its begin and idle within 2 s of its abort, with both actions", chromiumTool],
  ["test/dashboard.test.ts > GET /dashboard in headless chromium the rollout panel shows a running job (items done, groups complete) within 2 s, and drops it within 2 s of its end", chromiumTool],
  ["test/dashboard.test.ts > GET /dashboard in headless chromium with --admin-api-key and no key the page is read-only (workers, requests, refusals), asks for the key only when clicked, says when one is refused", chromiumTool],
  ["test/dashboard.test.ts > GET /dashboard in headless chromium a launched worker past max_restarts stays on the page as failed, with or without the key", chromiumTool],
  ["test/sim.test.ts > videos writes MP4s that ffprobe decodes, every frame", ["ffprobe", "apt-get install ffmpeg"]],
  ["test/rpc-interop.test.ts > Python grpcio with generated stubs generates stubs from admin.proto", pythonGrpc],
  ["test/rpc-interop.test.ts > Python grpcio with generated stubs ListWorkers from Python, without and with an admin key", pythonGrpc],
  ["test/readme.test.ts > README examples the curl command that saves output.png works (python3)", ["python3", "apt-get install python3"]],
  ["test/readme.test.ts > README examples the Python example works (python3 with requests)", ["python3 with the requests module", "python3-requests"]],
  ["test/slurm.test.ts > backend slurm launches two jobs, registers them, serves images from both; a scancelled job leaves rotation at once and is resubmitted", slurm],
  ["test/slurm.test.ts > backend slurm ScaleManagedWorkers adds and removes jobs; after SIGTERM no job is left in squeue", slurm],
  ["test/slurm.test.ts > backend slurm killAllSync (the process.on('exit') path) scancels jobs synchronously", slurm],
  ["test/slurm.test.ts > backend slurm a job whose worker dies on the node ends, leaves rotation at once and is resubmitted (restart policy)", slurm],
  ["test/slurm.test.ts > backend slurm a router SIGKILLed and restarted with the same --state-file adopts its running jobs by job id (no second sbatch); a job cancelled while it was down is submitted again", slurm],
  ["test/slurm.test.ts > backend slurm a job sbatch refuses (unknown partition) fails the launch as a config error naming launcher.slurm; nothing is queued", slurm],
  ["test/slurm.test.ts > backend slurm a job gets none of the router's keys (job environment file, worker's /proc environ), binds where the router reaches it, on a port of port_range", slurm],
]);

const dir = mkdtempSync(join(tmpdir(), "sglang-d-router-no-tools-"));
const problems = [];
try {
  // PATH = one folder of links to /usr/local/bin and /usr/bin (in PATH order), minus the tools.
  const bin = join(dir, "bin");
  const linked = new Set();
  mkdirSync(bin);
  for (const source of ["/usr/local/bin", "/usr/bin"]) {
    for (const name of readdirSync(source)) {
      if (hidden.test(name) || linked.has(name)) continue;
      symlinkSync(join(source, name), join(bin, name));
      linked.add(name);
    }
  }
  const env = { ...process.env, PATH: bin };
  delete env.SGLANG_D_ROUTER_REQUIRE_TOOLS;

  const report = join(dir, "report.json");
  console.log(`check-optional-tools: vitest run ${files.join(" ")} with PATH=${bin} (no ffprobe, protoc, grpc_python_plugin, python3, Slurm, etcd)`);
  const run = spawnSync(
    process.execPath,
    [join(root, "node_modules", "vitest", "vitest.mjs"), "run", ...files, "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
    { cwd: root, env, stdio: "inherit" },
  );
  if (run.status !== 0) problems.push(`vitest exited with ${run.status ?? run.signal}`);

  const results = JSON.parse(readFileSync(report, "utf8"));
  const seen = new Set();
  for (const file of results.testResults) {
    const rel = file.name.slice(root.length + 1);
    for (const t of file.assertionResults) {
      const id = `${rel} > ${t.fullName}`;
      const expected = expectedSkips.get(id);
      if (expected === undefined) {
        if (t.status !== "passed") problems.push(`${id}: ${t.status}, expected passed`);
        continue;
      }
      seen.add(id);
      const reason = t.meta?.missingTools;
      if (t.status !== "skipped") problems.push(`${id}: ${t.status}, expected skipped`);
      else if (typeof reason !== "string") problems.push(`${id}: skipped without a missing-tools reason`);
      else for (const word of expected) if (!reason.includes(word)) problems.push(`${id}: reason "${reason}" does not mention ${word}`);
      if (typeof reason === "string") console.log(`check-optional-tools: skipped as expected: ${id}: ${reason}`);
    }
  }
  for (const id of expectedSkips.keys()) if (!seen.has(id)) problems.push(`${id}: not in the report`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (problems.length > 0) {
  console.error(`check-optional-tools: FAILED\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`check-optional-tools: ok (${expectedSkips.size} tests skipped with reasons, the rest passed)`);
