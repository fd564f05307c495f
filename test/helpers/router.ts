import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const routerCli = `${repoRoot}dist/src/cli.js`;

export interface RouterProcess {
  url: string;
  port: number;
  pid: number;
  proc: ChildProcess;
  /** Every JSON log line the router printed so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/**
 * Starts the built router as a child process on a free port (127.0.0.1:0) and
 * waits for its "router listening" log line.
 */
export async function startRouterProcess(args: string[] = [], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RouterProcess> {
  const proc = spawn(process.execPath, [routerCli, "--host", "127.0.0.1", "--port", "0", ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }>();
  let stderr = "";
  let buf = "";
  proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line);
      } catch {
        continue;
      }
      logs.push(parsed);
      for (const w of waiters) if (w.pred(parsed)) {
        waiters.delete(w);
        w.resolve(parsed);
      }
    }
  });
  proc.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const entry = { pred, resolve: (l: Record<string, unknown>) => (clearTimeout(t), resolve(l)) };
      const t = setTimeout(() => {
        waiters.delete(entry);
        reject(new Error(`router log line not seen in ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      waiters.add(entry);
    });
  };

  const exited = once(proc, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const listening = waitForLog((l) => l.msg === "router listening", opts.timeoutMs ?? 15_000);
  const early = exited.then(([code]) => {
    throw new Error(`router exited with ${code} before listening: ${stderr}`);
  });
  let line: Record<string, unknown>;
  try {
    line = (await Promise.race([listening, early])) as Record<string, unknown>;
  } catch (err) {
    // Never leave a router behind when start-up did not go as expected.
    proc.kill("SIGKILL");
    throw err;
  } finally {
    early.catch(() => undefined);
  }
  const url = String(line.url);
  return {
    url,
    port: Number(line.port),
    pid: proc.pid!,
    proc,
    logs,
    waitForLog,
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const [code] = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs the router CLI to completion (it must exit by itself, e.g. --help or a refused flag). */
export function runRouterCli(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [routerCli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    p.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** fetch + JSON, returning status, headers and parsed body. */
export async function jsonRequest(url: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const { json, ...rest } = init;
  const res = await fetch(url, {
    ...rest,
    headers: { ...(json !== undefined ? { "content-type": "application/json" } : {}), ...(rest.headers as Record<string, string>) },
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain-text answers stay strings
  }
  return { status: res.status, headers: res.headers, body };
}

export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Routes that are the router's own (no such route in the original): their errors are OpenAI's error object. */
const ownErrorShapePaths = [/^\/refit(\/|$)/, /^\/get_weights_checksum$/, /^\/update_weights_from_tensor$/, /^\/workers\/[^/]+\/update_weights_from_tensor$/];

/**
 * The router's error code in an error body, after checking the body has the
 * shape its route promises: on the original router's routes
 * `{"error": "<message>", "code"}` (a string, as the original's clients read
 * it), on the router's own routes `{"error": {"message", "type", "code"}}`.
 */
export function routerErrorCode(path: string, body: any): string {
  const route = path.split("?")[0]!;
  if (ownErrorShapePaths.some((re) => re.test(route))) {
    if (typeof body?.error?.message !== "string") throw new Error(`${path}: expected OpenAI's error object, got ${JSON.stringify(body)}`);
    return body.error.code;
  }
  if (typeof body?.error !== "string" || typeof body?.code !== "string") throw new Error(`${path}: expected {"error": "<message>", "code"}, got ${JSON.stringify(body)}`);
  return body.code;
}
