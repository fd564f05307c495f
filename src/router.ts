import type { Control } from "./admin/control.js";
import type { Audit } from "./audit/audit.js";
import type { RouterOptions } from "./config/options.js";
import type { HealthChecker } from "./health/health-checker.js";
import { loadLauncherConfig, type Launcher } from "./launcher/index.js";
import type { Logger } from "./log.js";
import type { Registry } from "./registry/registry.js";
import { normalizeWorkerUrl } from "./registry/worker-url.js";
import { buildCore } from "./router/core.js";
import { buildDoors } from "./router/doors.js";
import { buildLauncher } from "./router/launcher-wiring.js";
import { buildRequestHandler } from "./router/rpc-door.js";
import { shutDown } from "./router/shutdown.js";
import { registerStartingPool } from "./router/start-pool.js";
import { createListener, type Listener } from "./server/listener.js";
import { openRouterState } from "./state/router-state.js";

/** A started router: its address and the parts tests and embedders need. */
export interface RunningRouter {
  readonly url: string;
  readonly port: number;
  readonly registry: Registry;
  readonly control: Control;
  readonly health: HealthChecker;
  readonly launcher: Launcher;
  /** The audit trail of control actions. */
  readonly audit: Audit;
  /** Stops accepting, stops launched workers and closes connections. */
  close(): Promise<void>;
}

/**
 * The composition root: the core (registry, health, control, admission,
 * refit, metrics), the front doors over it (the dispatch core and REST, the
 * audited control actions, rollouts; then the launcher and the RPC door),
 * the port, the starting pool, the launcher's workers. Each step is a module
 * in src/router/; nothing here runs per request.
 */
export async function startRouter(options: RouterOptions, logger: Logger): Promise<RunningRouter> {
  // --state-file or --state-store: an etcd that does not answer fails the start.
  const core = buildCore(options, logger, await openRouterState(options, logger));
  const doors = buildDoors(core, options, logger);
  const launcher = buildLauncher(core, doors, logger);
  const handler = buildRequestHandler(core, doors, launcher, options, logger);

  // Bad worker URLs and launcher configs fail the start, before the port opens.
  for (const u of options.workerUrls) normalizeWorkerUrl(u);
  const launcherConfig = options.launcherConfig === null ? null : loadLauncherConfig(options.launcherConfig);

  const listener: Listener = await createListener({ host: options.host, port: options.port, handler, upgrade: doors.rest.upgrade, headersTimeoutMs: options.clientHeaderTimeoutMs });
  logger.info({ url: listener.url, host: options.host, port: listener.port, policy: options.routingAlgorithm }, "router listening");
  warnIfOpen(options, doors.auth, logger);

  await registerStartingPool(core, doors, options);
  core.health.start();
  // Launched workers register one by one as they become healthy; the router already serves. Those
  // the state file recorded are adopted if still running (restart recovery), not started twice.
  const recorded = core.state.launcher?.load() ?? [];
  if (launcherConfig) launcher.launch(launcherConfig, { adopt: recorded }).catch((err: unknown) => logger.error({ err }, "launcher failed"));
  else if (recorded.length > 0) logger.warn({ workers: recorded.map((r) => r.url) }, "state file: managed workers were recorded but no --launcher-config was given; they are not adopted (nor stopped)");

  let closing: Promise<void> | null = null;
  return {
    url: listener.url,
    port: listener.port,
    registry: core.registry,
    control: doors.control,
    health: core.health,
    launcher,
    audit: core.audit,
    close: () => (closing ??= shutDown({ core, doors, launcher, listener }, options, logger)),
  };
}

/** A router anyone on the network can drive says so at start. */
function warnIfOpen(options: RouterOptions, auth: { adminRequired: boolean; dataRequired: boolean }, logger: Logger): void {
  const loopback = options.host === "127.0.0.1" || options.host === "localhost" || options.host === "::1";
  if (loopback || (auth.adminRequired && auth.dataRequired)) return;
  logger.warn(
    { host: options.host, adminGuarded: auth.adminRequired, dataGuarded: auth.dataRequired },
    "listening on a non-loopback address without --admin-api-key/--api-key: anyone who reaches this port can register workers, reload weights or generate",
  );
}
