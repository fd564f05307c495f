/**
 * Optional tools: programs some tests run that a machine with only Node and
 * npm lacks (Debian packages; .ci/run installs them). A test that needs one
 * calls {@link needTools}: without the tool it is skipped, with a reason that
 * names the tool and its Debian package; with SGLANG_D_ROUTER_REQUIRE_TOOLS=1
 * (set by .ci/run) it fails with that reason instead, so CI cannot go green
 * by skipping.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import type { TestContext } from "vitest";

declare module "vitest" {
  interface TaskMeta {
    /** Why the test was skipped: the optional tools it lacks. */
    missingTools?: string;
  }
}

/** Set to 1 to make a missing optional tool fail the test instead of skipping it. */
export const requireToolsEnv = "SGLANG_D_ROUTER_REQUIRE_TOOLS";

/** An optional tool, looked up once. */
export interface Tool {
  /** What the test needs, as the reason names it: `ffprobe`, `python3 with the grpc module`. */
  readonly name: string;
  /** The Debian package(s) that provide it. */
  readonly debian: string;
  /** Absolute path of the executable to run, or undefined when the machine lacks it. */
  readonly path: string | undefined;
}

/** Every executable called `name` on PATH, in PATH order (like `which -a`). */
export function findExecutables(name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const found: string[] = [];
  for (const dir of (env["PATH"] ?? "").split(delimiter)) {
    if (dir === "" || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile() && !found.includes(candidate)) found.push(candidate);
    } catch {
      // not here
    }
  }
  return found;
}

/** A program found on PATH. */
export function binaryTool(name: string, debian: string): Tool {
  return { name, debian, path: findExecutables(name)[0] };
}

/**
 * The first `python3` on PATH that can import every module (none: any
 * python3). Not only the
 * first `python3`: a pyenv or venv interpreter often comes before Debian's
 * /usr/bin/python3, and apt's python3-* packages are importable only by
 * Debian's. Hiding every python3 from PATH hides the tool.
 */
export function pythonTool(modules: readonly string[], debian: string): Tool {
  const name = modules.length === 0 ? "python3" : `python3 with the ${modules.join(", ")} module${modules.length > 1 ? "s" : ""}`;
  const seen = new Set<string>();
  for (const python of findExecutables("python3")) {
    let real = python;
    try {
      real = realpathSync(python);
    } catch {
      // a dangling link: try it anyway
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const code = modules.length === 0 ? "pass" : `import ${modules.join(", ")}`;
    const check = spawnSync(python, ["-c", code], { stdio: "ignore", timeout: 30_000 });
    if (check.status === 0) return { name, debian, path: python };
  }
  return { name, debian, path: undefined };
}

/** Why the tools cannot be used (every missing one, with its package), or undefined when all are there. */
export function missingToolsReason(tools: readonly Tool[]): string | undefined {
  const missing = tools.filter((t) => t.path === undefined);
  if (missing.length === 0) return undefined;
  const names = missing.map((t) => `${t.name} (Debian: apt-get install ${t.debian})`);
  return `needs ${names.join(" and ")}; not found on PATH`;
}

/**
 * Call first in a test that runs optional tools. All there: returns. One
 * missing: skips the test with the reason (vitest reports it as skipped), or
 * throws it when SGLANG_D_ROUTER_REQUIRE_TOOLS=1.
 */
export function needTools(ctx: TestContext, ...tools: Tool[]): void {
  const reason = missingToolsReason(tools);
  if (reason === undefined) return;
  if (process.env[requireToolsEnv] === "1") {
    throw new Error(`${reason} (${requireToolsEnv}=1: missing tools fail instead of skipping; .ci/run installs them)`);
  }
  // The note shows beside the skipped test in vitest's default reporter; the
  // JSON reporter has only meta (.ci/check-optional-tools.mjs reads it).
  ctx.task.meta.missingTools = reason;
  ctx.skip(reason);
}

/** etcd, for the tests of --state-store (Debian's etcd-server; test/helpers/etcd.ts starts it). */
export function etcdTool(): Tool {
  return binaryTool("etcd", "etcd-server");
}
