/**
 * The router's own exact paths, in one place: the REST handler decides
 * admin vs data-plane auth with them, metrics use them as route labels.
 */

/** Admin routes of the original API, its aliases and the refit routes. */
export const adminPaths: ReadonlySet<string> = new Set([
  "/workers",
  "/add_worker",
  "/remove_worker",
  "/list_workers",
  "/update_weights_from_disk",
  "/release_memory_occupation",
  "/resume_memory_occupation",
  "/get_weights_checksum",
  "/update_weights_from_tensor",
  "/refit",
  "/refit/begin",
  "/refit/commit",
  "/refit/abort",
  "/audit",
]);

/** Paths anyone may read: probes from load balancers and orchestrators, scrapers. */
export const openPaths: ReadonlySet<string> = new Set(["/health", "/metrics"]);

/** Data-plane routes the router handles itself (everything else is forwarded as is). */
export const dataPlanePaths: ReadonlySet<string> = new Set([
  "/v1/images/generations",
  "/v1/images/edits",
  "/v1/videos",
  "/v1/models",
  "/rollout/generate",
  "/v1/diffusion/generate",
]);

export function isAdminPath(path: string): boolean {
  return adminPaths.has(path) || path.startsWith("/workers/") || path.startsWith("/refit/");
}

/**
 * Routes that are ours alone (the original router had no such route, or
 * forwarded the path to a random worker): their errors use OpenAI's error
 * object. Every other route keeps the original's `{"error": "<message>"}`.
 */
export function hasOwnErrorShape(path: string): boolean {
  return (
    path === "/refit" ||
    path.startsWith("/refit/") ||
    path === "/update_weights_from_tensor" ||
    path === "/get_weights_checksum" ||
    path === "/metrics" ||
    path === "/v1/rollouts" ||
    path.startsWith("/v1/rollouts/") ||
    (path.startsWith("/workers/") && path.endsWith("/update_weights_from_tensor"))
  );
}
