import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { RouterOptions } from "../config/options.js";
import { AdminService } from "../gen/sgl/diffusion/router/v1/admin_pb.js";
import { RolloutService } from "../gen/sgl/diffusion/router/v1/rollout_pb.js";
import { MAX_SUBMISSION_BYTES } from "../http/rollout-routes.js";
import type { Launcher } from "../launcher/index.js";
import type { Logger } from "../log.js";
import { createAdminServiceImpl } from "../rpc/admin-service.js";
import { callLogInterceptor, rpcContextValues } from "../rpc/call-log.js";
import { registerReflection } from "../rpc/reflection.js";
import { requireAdminKey, requireDataKey } from "../rpc/require-key.js";
import { createRolloutServiceImpl } from "../rpc/rollout-service.js";
import type { RequestHandler } from "../server/listener.js";
import type { Core } from "./core.js";
import type { Doors } from "./doors.js";

/**
 * The one request listener of the port: RPC paths (/sgl.diffusion.router.v1.
 * AdminService/..., reflection) go to Connect, everything else straight to
 * the REST handler. Two Connect adapters because Connect's read limit is per
 * adapter: admin RPCs get the admin body limit (a body over it is refused
 * from its declared length, before it is read), rollout submissions carry
 * every item's body.
 */
export function buildRequestHandler(core: Core, doors: Doors, launcher: Launcher, options: RouterOptions, logger: Logger): RequestHandler {
  const { registry, admission, metrics, audit } = core;
  const callLog = callLogInterceptor({
    logger,
    excluded: (path) => options.accessLogExcludePrefixes.some((p) => path.startsWith(p)),
    onFinished: (service, method, code, seconds) => metrics.rpc(service, method, code, seconds),
  });
  const startedAtMs = Date.now();
  type AdapterOptions = Parameters<typeof connectNodeAdapter>[0];
  const common = {
    contextValues: rpcContextValues(doors.auth) as AdapterOptions["contextValues"],
    fallback: doors.rest.handle as AdapterOptions["fallback"],
  };
  const adminService = createAdminServiceImpl({ control: doors.control, refit: doors.refit, registry, launcher, routingAlgorithm: options.routingAlgorithm, startedAtMs, scheduling: () => admission.scheduling(), failedManaged: () => core.managed.failed(), lora: doors.lora, stateStore: core.state.kind, holdsRefitLock: core.state.holdsRefitLock });
  const adminRpc = connectNodeAdapter({
    ...common,
    routes(router) {
      router.service(AdminService, adminService, { interceptors: [callLog, requireAdminKey(doors.auth, audit)] });
      // Schema only (no data), so no admin key: buf curl/grpcurl work without --schema.
      registerReflection(router, [AdminService, RolloutService]);
    },
    readMaxBytes: options.maxAdminBodyBytes,
  }) as RequestHandler;
  const rolloutRpc = connectNodeAdapter({
    ...common,
    // Rollout jobs are the data plane: the data-plane key, like /v1/rollouts.
    routes: (router) => router.service(RolloutService, createRolloutServiceImpl(doors.rollouts, logger), { interceptors: [callLog, requireDataKey(doors.auth)] }),
    // As POST /v1/rollouts: a submission carries every item's body.
    readMaxBytes: MAX_SUBMISSION_BYTES,
  }) as RequestHandler;
  const rolloutPrefix = `/${RolloutService.typeName}/`;
  const rest = doors.rest;
  return (req, res) => {
    const url = req.url;
    if (url === undefined || !(url.startsWith("/sgl.") || url.startsWith("/grpc."))) rest.handle(req, res);
    else if (url.startsWith(rolloutPrefix)) rolloutRpc(req, res);
    else adminRpc(req, res);
  };
}
