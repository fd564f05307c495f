// An upstream that costs almost nothing: nginx (one worker process) serving
// worker-shaped answers from a temp dir it shares with nothing else.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const SMALL_BYTES = 2048;
export const BIG_BYTES = 2 * 1024 * 1024;
export const HUGE_BYTES = 256 * 1024 * 1024;
export const MODEL_ID = "bench/nginx-image-model";

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An images answer (`url` form, as a worker sends by default), padded to exactly `size` bytes. */
export function smallImagesAnswer(size = SMALL_BYTES) {
  const id = "bench0000000000000000000000000001";
  const make = (pad) =>
    JSON.stringify({
      id,
      created: 1700000000,
      data: [{ b64_json: null, url: `/v1/images/${id}/content`, revised_prompt: pad, file_path: `outputs/${id}.png` }],
      peak_memory_mb: 20480.5,
      inference_time_s: 0.012,
    });
  const base = make("").length;
  const body = make("p".repeat(size - base));
  if (Buffer.byteLength(body) !== size) throw new Error("small answer size");
  return body;
}

/** A `b64_json` images answer of exactly `size` bytes (a 1024x1024 PNG is about this big). */
function bigImagesAnswer(size = BIG_BYTES) {
  const head = `{"id":"bench-b64","created":1700000000,"data":[{"b64_json":"`;
  const tail = `","url":null,"revised_prompt":null,"file_path":null}],"peak_memory_mb":20480.5,"inference_time_s":0.012}`;
  const n = size - head.length - tail.length;
  const b64 = randomBytes(Math.ceil((n * 3) / 4) + 3).toString("base64").slice(0, n - (n % 4));
  return head + b64 + "=".repeat(n % 4) + tail;
}

const modelsAnswer = JSON.stringify({ object: "list", data: [{ id: MODEL_ID, object: "model", created: 1700000000, owned_by: "sglang", root: MODEL_ID, task_type: "T2I" }] });
const healthAnswer = JSON.stringify({ status: "ok" });

/** nginx `return` text: single-quoted; the answers contain no quote, backslash or `$`. */
function q(text) {
  if (/['\\$]/.test(text)) throw new Error("answer text must not contain ' \\ or $");
  return `'${text}'`;
}

function workerLocations(dir) {
  return `
    location = /health { default_type application/json; return 200 ${q(healthAnswer)}; }
    location = /v1/models { default_type application/json; return 200 ${q(modelsAnswer)}; }
    location /files/ { alias ${dir}/files/; }`;
}

/** Temp-path directives for the modules this nginx build has (others would be unknown directives). */
function tempPaths(nginxBin, dir) {
  const v = spawnSync(nginxBin, ["-V"], { encoding: "utf8" });
  const conf = `${v.stdout}${v.stderr}`;
  const lines = [`client_body_temp_path ${dir}/tmp/body;`];
  for (const m of ["proxy", "fastcgi", "uwsgi", "scgi"]) {
    if (conf.includes(`--http-${m}-temp-path`) && !conf.includes(`--without-http_${m}_module`)) lines.push(`${m}_temp_path ${dir}/tmp/${m};`);
  }
  return lines.join("\n  ");
}

/**
 * Writes the answers and nginx.conf into `dir` and returns the ports:
 * - small: POST /v1/images/generations answers 2 KB JSON (`return 200`, no file I/O);
 * - big:   POST /v1/images/generations answers a 2 MB b64_json file (static file,
 *          sendfile; POST on a static file is a 405 that `error_page 405 =200 $uri`
 *          turns into the file, one internal redirect);
 * - many:  the small worker on 127.0.0.N:port for N in 1..hosts x `manyPorts` ports;
 * - every server answers GET /health, GET /v1/models and GET /files/256m.bin
 *   (a video-sized download, forwarded by the router as a passthrough GET).
 */
export async function prepareUpstream(nginxBin, dir, { manyHosts = 250, manyPortCount = 4, hugeFile = true } = {}) {
  mkdirSync(path.join(dir, "files"), { recursive: true });
  mkdirSync(path.join(dir, "tmp"), { recursive: true });
  // The worker process runs as an unprivileged user when nginx starts as root.
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, "files"), 0o755);
  writeFileSync(path.join(dir, "files", "image-2m.json"), bigImagesAnswer());
  if (hugeFile) {
    const block = randomBytes(1 << 20);
    const fd = openSync(path.join(dir, "files", "256m.bin"), "w");
    for (let i = 0; i < HUGE_BYTES / block.length; i++) writeSync(fd, block);
    fsyncSync(fd); // no write-back of 256 MB during the measurements
    closeSync(fd);
  }

  const small = await freePort();
  const big = await freePort();
  const manyPorts = [];
  while (manyPorts.length < manyPortCount) {
    const p = await freePort();
    if (p !== small && p !== big && !manyPorts.includes(p)) manyPorts.push(p);
  }
  const manyListen = [];
  const manyUrls = [];
  for (let h = 1; h <= manyHosts; h++) {
    for (const p of manyPorts) {
      manyListen.push(`    listen 127.0.0.${h}:${p};`);
      manyUrls.push(`http://127.0.0.${h}:${p}`);
    }
  }
  const smallAnswer = smallImagesAnswer();
  const conf = `# written by bench/lib/nginx.mjs
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  server_tokens off;
  ${tempPaths(nginxBin, dir)}
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  open_file_cache max=16 inactive=300s;
  client_body_buffer_size 64k;

  server {
    listen 127.0.0.1:${small} backlog=4096;
    location = /v1/images/generations { default_type application/json; return 200 ${q(smallAnswer)}; }${workerLocations(dir)}
  }
  server {
    listen 127.0.0.1:${big} backlog=4096;
    location = /v1/images/generations { alias ${dir}/files/image-2m.json; default_type application/json; error_page 405 =200 $uri; }${workerLocations(dir)}
  }
  server {
${manyListen.join("\n")}
    location = /v1/images/generations { default_type application/json; return 200 ${q(smallAnswer)}; }${workerLocations(dir)}
  }
}
`;
  const confPath = path.join(dir, "nginx.conf");
  writeFileSync(confPath, conf);
  const test = spawnSync(nginxBin, ["-t", "-q", "-p", dir, "-c", confPath], { encoding: "utf8" });
  if (test.status !== 0) throw new Error(`nginx -t failed:\n${test.stderr}`);
  return { confPath, small, big, manyUrls, smallAnswer };
}

/** Starts nginx in the foreground (its master is our child); resolves once /health answers. */
export async function startNginx(nginxBin, dir, confPath, port, pinPrefix) {
  const argv = [...pinPrefix, nginxBin, "-p", dir, "-c", confPath];
  // Its own process group, so that master and worker can be stopped together (see killNow).
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], detached: true });
  child.killNow = () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${stderr}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      await r.arrayBuffer();
      if (r.ok) return child;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  child.killNow();
  throw new Error(`nginx did not answer on ${port}: ${stderr}`);
}

export async function stopNginx(child) {
  if (!child || child.exitCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGQUIT");
  const t = setTimeout(() => child.killNow(), 5000);
  await done;
  clearTimeout(t);
}
