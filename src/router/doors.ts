import type { Control } from "../admin/control.js";
import { createAuth, type Auth } from "../auth/api-keys.js";
import { auditedControl, auditedRefit } from "../audit/audited.js";
import type { RouterOptions } from "../config/options.js";
import { requestLimitsOf } from "../config/options.js";
import { Dispatcher } from "../dispatch/dispatcher.js";
import { InFlight } from "../dispatch/in-flight.js";
import { createRouteSpecs } from "../dispatch/route-specs.js";
import { ticketReader } from "../dispatch/ticket.js";
import { createAdminRoutes } from "../http/admin-routes.js";
import { createAffinityRoutes } from "../http/affinity-routes.js";
import { createDataPlane } from "../http/data-plane.js";
import { createFanoutRoutes } from "../http/fanout-routes.js";
import { createOwnerLookup } from "../http/owner-lookup.js";
import { createRealtimeProxy } from "../http/realtime-proxy.js";
import { createRestHandler, type RestHandler } from "../http/rest-handler.js";
import { createRolloutRoutes } from "../http/rollout-routes.js";
import { createLoraRoutes } from "../http/lora-routes.js";
import { auditedLora, refitBesideLora } from "../lora/audited-lora.js";
import type { LoraPool } from "../lora/lora-action.js";
import type { Logger } from "../log.js";
import type { RefitCoordinator } from "../refit/coordinator.js";
import { createRollouts, type Rollouts } from "../rollouts/rollouts.js";
import type { Core } from "./core.js";

/** What the front doors share: the audited control actions, the rollout jobs, the keys, and the REST handler. */
export interface Doors {
  /** Control and refit as both admin doors call them: every action on the audit trail. */
  readonly control: Control;
  readonly refit: RefitCoordinator;
  /** The pool's LoRA changes, audited. */
  readonly lora: LoraPool;
  readonly rollouts: Rollouts;
  readonly auth: Auth;
  readonly rest: RestHandler;
  /** The generation exchanges open now (severed when this router loses its place on etcd). */
  readonly inFlight: InFlight;
}

/**
 * The dispatch core every generation request goes through, and the REST
 * door over it and over the audited control actions. The RPC door
 * (rpc-door.ts) calls the same audited actions and the same rollouts.
 */
export function buildDoors(core: Core, options: RouterOptions, logger: Logger): Doors {
  const { registry, admission, upstream, images, videos, meshes, audit } = core;
  const inFlight = new InFlight();
  const dispatcher = new Dispatcher({ admission, proxy: upstream.proxy, outliers: core.outliers, sleepCheck: core.sleepCheck, logger, maxRetries: options.maxRetries, retryBudgetMs: options.retryBudgetMs, maxBodyBytes: options.maxBodyBytes, inFlight });
  const specs = createRouteSpecs(admission, images, videos, meshes);
  // Request limits are checked where a ticket reads the body: REST requests and rollout items alike.
  const tickets = ticketReader(requestLimitsOf(options));
  const data = createDataPlane({ dispatcher, specs, tickets, maxRetryBodyBytes: 1 << 20, maxBodyBytes: options.maxBodyBytes });
  const control = auditedControl(core.control, audit);
  const lora = auditedLora(core.lora, audit);
  // A refit or sleep is refused while a LoRA change runs (and the reverse, in the LoRA action);
  // with --state-store, it runs under the refit lock every router on the prefix shares.
  const refit = auditedRefit(refitBesideLora(core.lockedRefit, core.lora), audit);
  const rollouts = createRollouts({ registry, dispatch: (ctx) => dispatcher.dispatch(ctx), tickets, routes: specs.byPath, weightVersion: () => core.refit.version, observer: core.metrics.rolloutJobs });
  const admin = createAdminRoutes({ control, registry, refit, audit, data, maxBodyBytes: options.maxAdminBodyBytes, scheduling: () => admission.scheduling(), managed: core.managed, lora: (w) => core.lora.state.viewOf(w), stateStore: core.state.kind, holdsRefitLock: core.state.holdsRefitLock });
  const auth = createAuth({ adminApiKey: options.adminApiKey, apiKey: options.apiKey });
  // An id the router does not know is read from etcd (--state-store), then asked of the pool, each worker within a probe's time limit.
  const lookup = createOwnerLookup({ registry, upstream, logger, timeoutMs: options.healthCheckTimeoutMs });
  const affinity = createAffinityRoutes({ registry, data, specs, images, videos, meshes, lookup, resolveOwner: core.state.resolveOwner });
  const fanout = createFanoutRoutes({ registry, upstream, logger, data, affinity, videos, meshes, fanoutTimeoutMs: Math.max(options.healthCheckTimeoutMs, 10_000) });
  const rest = createRestHandler({
    admin,
    data,
    affinity,
    fanout,
    rollouts: createRolloutRoutes(rollouts, logger),
    realtime: createRealtimeProxy({ auth, registry, logger }),
    lora: createLoraRoutes({ lora, registry, upstream, maxBodyBytes: options.maxAdminBodyBytes, listTimeoutMs: Math.max(options.healthCheckTimeoutMs, 10_000) }),
    logger,
    auth,
    audit,
    metrics: core.metrics,
    accessLogExcludePrefixes: options.accessLogExcludePrefixes,
    clientBodyTimeoutMs: options.clientBodyTimeoutMs,
  });
  return { control, refit, lora, rollouts, auth, rest, inFlight };
}
