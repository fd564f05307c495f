import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createControl, type Control } from "./admin/control.js";
import { createAdmission } from "./admission/admission.js";
import { AffinityMap } from "./admission/affinity.js";
import { createPolicy } from "./balancer/index.js";
import type { RouterOptions } from "./config/options.js";
import { createHealthChecker, type HealthChecker } from "./health/health-checker.js";
import { createAdminRoutes } from "./http/admin-routes.js";
import { createDataPlane } from "./http/data-plane.js";
import { createRestHandler } from "./http/rest-handler.js";
import { createLauncher, loadLauncherConfig, type Launcher } from "./launcher/index.js";
import type { Logger } from "./log.js";
import { createUpstream, type Upstream } from "./proxy/upstream.js";
import { Registry } from "./registry/registry.js";
import { normalizeWorkerUrl } from "./registry/worker-url.js";
import { createListener, type Listener, type RequestHandler } from "./server/listener.js";
import { createAuth } from "./auth/api-keys.js";
import { AdminService } from "./gen/sgl/diffusion/router/v1/admin_pb.js";
import { createAdminServiceImpl } from "./rpc/admin-service.js";

/** A started router: its address and the parts tests and embedders need. */
export interface RunningRouter {
  readonly url: string;
  readonly port: number;
  readonly registry: Registry;
  readonly control: Control;
  readonly health: HealthChecker;
  readonly launcher: Launcher;
  /** Stops accepting, stops launched workers and closes connections. */
  close(): Promise<void>;
}

/**
 * Builds the router from its parts: one registry, one balancer policy, one
 * upstream pool, shared by the REST data plane, the REST admin API and the
 * launcher. Nothing here runs per request.
 */
export async function startRouter(options: RouterOptions, logger: Logger): Promise<RunningRouter> {
  const registry = new Registry();
  const policy = createPolicy(options.routingAlgorithm);
  const upstream: Upstream = createUpstream({ maxConnections: options.maxConnections, timeoutMs: options.timeoutMs });
  const images = new AffinityMap();
  const videos = new AffinityMap();
  const health = createHealthChecker({
    registry,
    upstream,
    logger,
    intervalMs: options.healthCheckIntervalMs,
    timeoutMs: options.healthCheckTimeoutMs,
    failureThreshold: options.healthCheckFailureThreshold,
    successThreshold: options.healthCheckSuccessThreshold,
  });
  const control = createControl({ registry, upstream, health, logger, probeTimeoutMs: options.healthCheckTimeoutMs, affinities: [images, videos] });
  const admission = createAdmission(registry, policy);
  const data = createDataPlane({ registry, admission, upstream, logger, images, videos, fanoutTimeoutMs: Math.max(options.healthCheckTimeoutMs, 10_000) });
  const admin = createAdminRoutes({ control, registry, maxBodyBytes: options.maxAdminBodyBytes });
  const auth = createAuth({ adminApiKey: options.adminApiKey, apiKey: options.apiKey });
  const rest = createRestHandler({ admin, data, logger, auth, accessLogExcludePrefixes: options.accessLogExcludePrefixes });

  const launcher = createLauncher({
    logger,
    register: async (url) => {
      await control.addWorker(url, { managed: true });
    },
    deregister: async (url) => {
      if (registry.get(url)) control.removeWorker(url);
    },
  });

  const requireAdmin: Interceptor = (next) => async (req) => {
    if (!auth.admin(req.header.get("authorization"))) throw new ConnectError("admin API key required: send Authorization: Bearer <admin key>", Code.Unauthenticated);
    return next(req);
  };
  const startedAtMs = Date.now();
  // RPC paths (/sgl.diffusion.router.v1.AdminService/...) are served by
  // Connect; everything else falls through to the REST handler.
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(AdminService, createAdminServiceImpl({ control, registry, launcher, routingAlgorithm: policy.name, startedAtMs }), { interceptors: [requireAdmin] });
    },
    fallback: rest as Parameters<typeof connectNodeAdapter>[0]["fallback"],
  }) as RequestHandler;

  // Bad worker URLs and launcher configs fail the start, before the port opens.
  for (const u of options.workerUrls) normalizeWorkerUrl(u);
  const launcherConfig = options.launcherConfig === null ? null : loadLauncherConfig(options.launcherConfig);

  const listener: Listener = await createListener({ host: options.host, port: options.port, handler });
  logger.info({ url: listener.url, host: options.host, port: listener.port, policy: policy.name }, "router listening");
  const loopback = options.host === "127.0.0.1" || options.host === "localhost" || options.host === "::1";
  if (!loopback && (!auth.adminRequired || !auth.dataRequired)) {
    logger.warn(
      { host: options.host, adminGuarded: auth.adminRequired, dataGuarded: auth.dataRequired },
      "listening on a non-loopback address without --admin-api-key/--api-key: anyone who reaches this port can register workers, reload weights or generate",
    );
  }

  await Promise.all(options.workerUrls.map((u) => control.addWorker(u)));
  health.start();

  if (launcherConfig) {
    // Workers register one by one as they become healthy; the router already serves.
    launcher.launch(launcherConfig).catch((err: unknown) => logger.error({ err }, "launcher failed"));
  }

  let closing: Promise<void> | null = null;
  return {
    url: listener.url,
    port: listener.port,
    registry,
    control,
    health,
    launcher,
    close() {
      closing ??= (async () => {
        health.stop();
        const stopped = listener.stopAccepting();
        listener.closeConnections();
        await launcher.stop();
        await stopped;
        await upstream.close();
      })();
      return closing;
    },
  };
}
