import { constants } from "node:fs";
import { fileURLToPath } from "node:url";
import type { BackendDefinition } from "../backend.js";
import { LauncherError } from "../errors.js";
import { createProcessBackend } from "../local/process-backend.js";
import { isExecutableFile, type BackendProgram } from "../worker-command.js";

/**
 * Path of the simulated worker's CLI. Resolved relative to this module, so
 * from `dist/src/launcher/sim/` it is `dist/src/sim/cli.js`.
 */
export function simCliPath(): string {
  return fileURLToPath(new URL("../../sim/cli.js", import.meta.url));
}

/**
 * The simulated worker of this repo, run by the router's own Node binary
 * (not whatever `node` PATH finds: same version as the router).
 *
 * @throws LauncherError if the simulator is not built.
 */
export function resolveSim(): BackendProgram {
  const cli = simCliPath();
  if (!isExecutableFile(cli, constants.R_OK)) {
    throw new LauncherError(`launcher backend "sim" needs the simulated worker at ${cli}; run \`npm run build\` first`);
  }
  return { command: process.execPath, leadingArgs: [cli] };
}

/** Backend `sim`: like `local`, with the simulated worker in place of `sglang serve`. */
export const simBackend: BackendDefinition = {
  usesBasePort: true,
  create: (ctx) => createProcessBackend(ctx, resolveSim),
};
