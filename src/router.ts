import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createControl, type Control } from "./admin/control.js";
import { createAdmission } from "./admission/admission.js";
import { AffinityMap } from "./admission/affinity.js";
import { createPolicy } from "./balancer/index.js";
import { requestLimitsOf, type RouterOptions } from "./config/options.js";
import { ticketReader } from "./dispatch/ticket.js";
import { createHealthChecker, type HealthChecker } from "./health/health-checker.js";
import { createOutlierDetector } from "./health/outlier-detector.js";
import { createMetrics } from "./metrics/metrics.js";
import { createRefitCoordinator } from "./refit/coordinator.js";
import { openStateFile } from "./state/state-file.js";
import { recordPool, restorePool } from "./state/pool-record.js";
import { createAdminRoutes } from "./http/admin-routes.js";
import { createDataPlane } from "./http/data-plane.js";
import { createAffinityRoutes } from "./http/affinity-routes.js";
import { createFanoutRoutes } from "./http/fanout-routes.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { createRouteSpecs } from "./dispatch/route-specs.js";
import { createRestHandler } from "./http/rest-handler.js";
import { createLauncher, loadLauncherConfig, type Launcher } from "./launcher/index.js";
import type { Logger } from "./log.js";
import { createUpstream, type Upstream } from "./proxy/upstream.js";
import { RouterError } from "./errors.js";
import { Registry } from "./registry/registry.js";
import { normalizeWorkerUrl } from "./registry/worker-url.js";
import { createListener, type Listener, type RequestHandler } from "./server/listener.js";
import { createAuth } from "./auth/api-keys.js";
import { AdminService } from "./gen/sgl/diffusion/router/v1/admin_pb.js";
import { createAdminServiceImpl } from "./rpc/admin-service.js";
import { createRolloutServiceImpl } from "./rpc/rollout-service.js";
import { RolloutService } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";
import { createRollouts } from "./rollouts/rollouts.js";
import { createRolloutRoutes, MAX_SUBMISSION_BYTES } from "./http/rollout-routes.js";
import { registerReflection } from "./rpc/reflection.js";
import { createAudit, type Audit } from "./audit/audit.js";
import { auditedControl, auditedLauncher, auditedRefit } from "./audit/audited.js";
import { callLogInterceptor, rpcContextValues } from "./rpc/call-log.js";
import { requireAdminKey, requireDataKey } from "./rpc/require-key.js";

/** How long idle keep-alive connections stay open at shutdown, answering 503 + Connection: close. */
const SHUTDOWN_LINGER_MS = 1_000;

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
 * Builds the router from its parts: one registry, one balancer policy, one
 * upstream pool, shared by the REST data plane, the REST admin API and the
 * launcher. Nothing here runs per request.
 */
export async function startRouter(options: RouterOptions, logger: Logger): Promise<RunningRouter> {
  const registry = new Registry();
  // earliest-finish plans in admission; the policy then only breaks ties nowhere: least-request is kept for completeness.
  const planned = options.routingAlgorithm === "earliest-finish";
  const policy = createPolicy(planned ? "least-request" : options.routingAlgorithm);
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
    onEjectedProbeFailed: (w) => outliers.probeFailed(w),
    // Another process answers behind the URL: it holds its base weights and
    // is awake, whatever the router knew of the old one.
    onProcessChanged: (w, previous, current) => {
      logger.warn({ worker: w.url, previous, current }, "the process behind a worker URL changed: treated as a new worker");
      registry.processChanged(w.url);
    },
  });
  // Control actions are audited where REST and RPC meet (the decorators in
  // audit/audited.ts); the refit coordinator and health checks use the plain
  // Control, whose broadcasts are parts of an action already audited.
  const audit = createAudit({ logger, onFinished: (e) => metrics.controlAction(e) });
  const control = createControl({ registry, upstream, health, logger, probeTimeoutMs: options.healthCheckTimeoutMs, broadcastTimeoutMs: options.weightCallTimeoutMs, affinities: [images, videos] });
  const admission = createAdmission({
    registry,
    policy,
    mode: planned ? "earliest-finish" : "policy",
    workerBatchSize: options.workerBatchSize,
    maxConcurrencyPerWorker: options.maxConcurrencyPerWorker,
    queueSize: options.queueSize,
    queueTimeoutMs: options.queueTimeoutMs,
  });
  // One --state-file: the refit's weights and the pool's workers, each written by its owner.
  const stateFile = options.stateFile === null ? null : openStateFile(options.stateFile);
  const refit = createRefitCoordinator({
    registry,
    admission,
    control,
    logger,
    drainTimeoutMs: options.drainTimeoutMs,
    refitTimeoutMs: options.refitTimeoutMs,
    store: stateFile?.refit ?? null,
  });
  const metrics = createMetrics({ registry, admission, weightVersion: () => refit.version });
  const outliers = createOutlierDetector({
    registry,
    logger,
    consecutiveFailures: options.ejectAfterFailures,
    baseEjectionMs: 1_000,
    maxEjectionMs: 60_000,
    probe: (w) => void health.checkOne(w).catch(() => undefined),
    onEject: (w) => metrics.ejected(w.displayId),
  });
  const dispatcher = new Dispatcher({ admission, proxy: upstream.proxy, outliers, logger, maxRetries: options.maxRetries, retryBudgetMs: options.retryBudgetMs, maxBodyBytes: options.maxBodyBytes });
  const specs = createRouteSpecs(admission, images, videos);
  const tickets = ticketReader(requestLimitsOf(options));
  const data = createDataPlane({ dispatcher, specs, tickets, maxRetryBodyBytes: 1 << 20, maxBodyBytes: options.maxBodyBytes });
  const adminControl = auditedControl(control, audit);
  const adminRefit = auditedRefit(refit, audit);
  const rollouts = createRollouts({ registry, dispatch: (ctx) => dispatcher.dispatch(ctx), tickets, routes: specs.byPath, weightVersion: () => refit.version });
  const admin = createAdminRoutes({ control: adminControl, registry, refit: adminRefit, audit, data, maxBodyBytes: options.maxAdminBodyBytes, scheduling: () => admission.scheduling() });
  const auth = createAuth({ adminApiKey: options.adminApiKey, apiKey: options.apiKey });
  const affinity = createAffinityRoutes({ registry, data, specs, images, videos });
  const fanout = createFanoutRoutes({ registry, upstream, logger, data, affinity, videos, fanoutTimeoutMs: Math.max(options.healthCheckTimeoutMs, 10_000) });
  const rest = createRestHandler({ admin, data, affinity, fanout, rollouts: createRolloutRoutes(rollouts), logger, auth, audit, metrics, accessLogExcludePrefixes: options.accessLogExcludePrefixes, clientBodyTimeoutMs: options.clientBodyTimeoutMs });

  const launcher = auditedLauncher(
    createLauncher({
      logger,
      register: async (url) => {
        await adminControl.addWorker(url, { managed: true });
      },
      deregister: async (url) => {
        if (registry.get(url)) adminControl.removeWorker(url);
      },
      // A restart is an action of the router's own: on the audit trail and counted.
      onRestart: (w) => {
        metrics.workerRestarted(w.url.slice(w.url.indexOf("://") + 3));
        const span = audit.begin("launcher.restart", { url: w.url, restarts: w.restarts, exit_code: w.exitCode ?? null, exit_signal: w.exitSignal ?? null });
        return (o) => span.end({ workers: [{ worker: o.url, ok: o.state === "ready", ...(o.state === "ready" || !o.error ? {} : { error: o.error }) }] });
      },
    }),
    audit,
  );

  const requireAdmin = requireAdminKey(auth, audit);
  const requireData = requireDataKey(auth);
  const callLog = callLogInterceptor({
    logger,
    excluded: (path) => options.accessLogExcludePrefixes.some((p) => path.startsWith(p)),
    onFinished: (service, method, code, seconds) => metrics.rpc(service, method, code, seconds),
  });
  const startedAtMs = Date.now();
  // RPC paths (/sgl.diffusion.router.v1.AdminService/...) are served by
  // Connect; everything else falls through to the REST handler. Two
  // adapters because Connect's read limit is per adapter: admin RPCs get the
  // admin body limit (a body over it is refused from its declared length,
  // before it is read), rollout submissions carry every item's body.
  type AdapterOptions = Parameters<typeof connectNodeAdapter>[0];
  const common = {
    contextValues: rpcContextValues(auth) as AdapterOptions["contextValues"],
    fallback: rest.handle as AdapterOptions["fallback"],
  };
  const adminRpc = connectNodeAdapter({
    ...common,
    routes(router) {
      router.service(AdminService, createAdminServiceImpl({ control: adminControl, refit: adminRefit, registry, launcher, routingAlgorithm: options.routingAlgorithm, startedAtMs, scheduling: () => admission.scheduling() }), { interceptors: [callLog, requireAdmin] });
      // Schema only (no data), so no admin key: buf curl/grpcurl work without --schema.
      registerReflection(router, [AdminService, RolloutService]);
    },
    readMaxBytes: options.maxAdminBodyBytes,
  }) as RequestHandler;
  const rolloutRpc = connectNodeAdapter({
    ...common,
    routes(router) {
      // Rollout jobs are the data plane: the data-plane key, like /v1/rollouts.
      router.service(RolloutService, createRolloutServiceImpl(rollouts), { interceptors: [callLog, requireData] });
    },
    // As POST /v1/rollouts: a submission carries every item's body.
    readMaxBytes: MAX_SUBMISSION_BYTES,
  }) as RequestHandler;
  const rolloutPrefix = `/${RolloutService.typeName}/`;
  // Only RPC paths go through a Connect adapter; REST goes straight to its handler.
  const handler: RequestHandler = (req, res) => {
    const url = req.url;
    if (url === undefined || !(url.startsWith("/sgl.") || url.startsWith("/grpc."))) rest.handle(req, res);
    else if (url.startsWith(rolloutPrefix)) rolloutRpc(req, res);
    else adminRpc(req, res);
  };

  // Bad worker URLs and launcher configs fail the start, before the port opens.
  for (const u of options.workerUrls) normalizeWorkerUrl(u);
  const launcherConfig = options.launcherConfig === null ? null : loadLauncherConfig(options.launcherConfig);

  const listener: Listener = await createListener({ host: options.host, port: options.port, handler, headersTimeoutMs: options.clientHeaderTimeoutMs });
  logger.info({ url: listener.url, host: options.host, port: listener.port, policy: options.routingAlgorithm }, "router listening");
  const loopback = options.host === "127.0.0.1" || options.host === "localhost" || options.host === "::1";
  if (!loopback && (!auth.adminRequired || !auth.dataRequired)) {
    logger.warn(
      { host: options.host, adminGuarded: auth.adminRequired, dataGuarded: auth.dataRequired },
      "listening on a non-loopback address without --admin-api-key/--api-key: anyone who reaches this port can register workers, reload weights or generate",
    );
  }

  // A restarted router serves the pool it had (RL frameworks register once,
  // at start), then what the command line adds.
  const recordedPool = stateFile?.pool.load() ?? null;
  if (recordedPool !== null) {
    await restorePool(
      recordedPool,
      {
        addWorker: (url) => adminControl.addWorker(url),
        quarantine: (url) => registry.setQuarantined(url, true),
        drain: (url) => registry.setDraining(url, true),
        markSleeping: (url) => registry.markSleeping(url),
      },
      logger,
    );
  }
  // Recorded from here on (not during the restore: a crash then must not leave half the pool on disk).
  if (stateFile !== null) recordPool(registry, stateFile.pool, logger);
  await Promise.all(options.workerUrls.map((u) => adminControl.addWorker(u)));
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
    control: adminControl,
    health,
    launcher,
    audit,
    close() {
      closing ??= (async () => {
        // Graceful: refuse new work, let what is in flight finish (bounded),
        // answer what waits in the queue, then stop launched workers.
        const deadline = Date.now() + options.shutdownTimeoutMs;
        health.stop();
        rest.startShutdown();
        const stopped = listener.stopAccepting();
        listener.goAway();
        admission.rejectAll(new RouterError("shutting_down", "the router is shutting down", { details: { retryAfterS: 1 } }));
        const idle = await rest.whenIdle(options.shutdownTimeoutMs);
        if (!idle) logger.warn({ open: rest.open }, "shutdown timeout: closing requests still in flight");
        // Idle keep-alive connections are not closed at once: a client may be
        // sending on one right then, and would see a reset instead of an
        // answer. For a short while, whatever arrives on them gets 503
        // shutting_down with Connection: close (and the client closes);
        // only then are the remaining ones closed.
        if (idle) await listener.whenNoConnections(Math.max(0, Math.min(SHUTDOWN_LINGER_MS, deadline - Date.now())));
        listener.closeConnections();
        await launcher.stop();
        await stopped;
        await upstream.close();
      })();
      return closing;
    },
  };
}
