import type { RouterOptions } from "../config/options.js";
import { RouterError } from "../errors.js";
import type { Launcher } from "../launcher/index.js";
import type { Logger } from "../log.js";
import type { Listener } from "../server/listener.js";
import type { Core } from "./core.js";
import type { Doors } from "./doors.js";
import { drainVideoJobs } from "./video-drain.js";

/** How long idle keep-alive connections stay open at shutdown, answering 503 + Connection: close. */
const SHUTDOWN_LINGER_MS = 1_000;

/**
 * Graceful shutdown: refuse new work, let what is in flight finish (within
 * --shutdown-timeout), answer what waits in the queue, then stop launched
 * workers, close the upstream pool and the state store.
 */
export async function shutDown(parts: { core: Core; doors: Doors; launcher: Launcher; listener: Listener }, options: RouterOptions, logger: Logger): Promise<void> {
  const { core, doors, launcher, listener } = parts;
  const deadline = Date.now() + options.shutdownTimeoutMs;
  core.health.stop();
  core.sleepCheck.stop();
  doors.rest.startShutdown();
  const stopped = listener.stopAccepting();
  listener.goAway();
  core.admission.rejectAll(new RouterError("shutting_down", "the router is shutting down", { details: { retryAfterS: 1 } }));
  const idle = await doors.rest.whenIdle(options.shutdownTimeoutMs);
  if (!idle) logger.warn({ open: doors.rest.open }, "shutdown timeout: closing requests still in flight");
  await drainManagedVideos(core, launcher, deadline, logger);
  // Idle keep-alive connections are not closed at once: a client may be
  // sending on one right then, and would see a reset instead of an answer.
  // For a short while, whatever arrives on them gets 503 shutting_down with
  // Connection: close (and the client closes); only then are the remaining
  // ones closed.
  if (idle) await listener.whenNoConnections(Math.max(0, Math.min(SHUTDOWN_LINGER_MS, deadline - Date.now())));
  listener.closeConnections();
  await launcher.stop();
  await stopped;
  await core.upstream.close();
  await core.state.close();
}

/**
 * Video jobs on workers the launcher is about to stop: waited for within
 * the deadline, the rest logged by id and worker. Jobs on workers given by
 * URL keep running (the router does not stop those workers).
 */
async function drainManagedVideos(core: Core, launcher: Launcher, deadline: number, logger: Logger): Promise<void> {
  const stopping = new Set(launcher.list().filter((m) => m.url !== "" && m.state !== "exited" && m.state !== "failed").map((m) => m.url));
  const jobs = core.admission.openJobs().filter((j) => stopping.has(j.workerUrl));
  await drainVideoJobs({ jobs, deadline, logger, onEnded: (id, ok) => core.admission.jobEnded(id, ok) });
}
