/** The prefix of the router's own environment variables (its API keys among them). */
export const ROUTER_ENV_PREFIX = "SGLANG_D_ROUTER_";

/**
 * `env` without the router's own variables. A worker needs none of them, and
 * one that holds the router's keys could act as the router's operator (or
 * leak them through its logs and /proc): they never reach a launched process
 * or a Slurm job.
 */
export function withoutRouterVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) if (!name.startsWith(ROUTER_ENV_PREFIX)) out[name] = value;
  return out;
}
