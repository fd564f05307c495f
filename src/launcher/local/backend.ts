import type { BackendDefinition } from "../backend.js";
import { LauncherError } from "../errors.js";
import { findExecutable, type BackendProgram } from "../worker-command.js";
import { createProcessBackend } from "./process-backend.js";

/**
 * `sglang serve`, found on PATH.
 *
 * @throws LauncherError if there is no executable `sglang` on `env.PATH`.
 */
export function resolveSglang(env: NodeJS.ProcessEnv): BackendProgram {
  const sglang = findExecutable("sglang", env);
  if (sglang === null) {
    throw new LauncherError(
      `launcher backend "local" runs \`sglang serve\`, but no executable \`sglang\` was found on PATH ` +
        `(${env["PATH"] ?? "PATH unset"}); install it with \`pip install "sglang[diffusion]"\`, or use backend "sim" for simulated workers`,
    );
  }
  return { command: sglang, leadingArgs: ["serve"] };
}

/** Backend `local`: each worker is `sglang serve` in its own process group on this machine. */
export const localBackend: BackendDefinition = {
  usesBasePort: true,
  create: (ctx) => createProcessBackend(ctx, resolveSglang),
};
