import { bodyTooLarge, type Dispatcher } from "../dispatch/dispatcher.js";
import type { RouteSpec } from "../dispatch/context.js";
import type { RouteSpecs } from "../dispatch/route-specs.js";
import type { TicketReader } from "../dispatch/ticket.js";
import type { Worker } from "../registry/worker.js";
import { readBody, type Req } from "./body.js";
import type { RestCall } from "./rest-call.js";
import { hasBody, restContext, routingKeyOf } from "./rest-context.js";

export interface DataPlaneOptions {
  dispatcher: Dispatcher;
  specs: RouteSpecs;
  /** Reads each request's ticket, refusing bodies over the request limits. */
  tickets: TicketReader;
  /** Most bytes of a request body forwarded to a worker (--max-body-bytes). */
  maxBodyBytes: number;
  /** Generation bodies up to this size are kept in memory so they can be retried; default 1 MiB. */
  maxRetryBodyBytes: number;
}

/**
 * The REST front door of the generation routes: it reads what the
 * dispatch core needs from the HTTP request (the body when it may be
 * retried, the model and work in it, the routing key) into a
 * RequestContext whose answer goes into the client's response. The core's
 * RouterErrors become answers in the REST handler.
 */
export function createDataPlane(options: DataPlaneOptions) {
  const { dispatcher, specs, tickets, maxBodyBytes, maxRetryBodyBytes } = options;

  /**
   * 413 before anything else happens (no queue slot, no worker) for a body
   * whose declared length is over --max-body-bytes; bodies of unknown length
   * are counted as they stream.
   */
  function checkDeclaredLength(req: Req): void {
    const declared = Number(req.headers["content-length"]);
    if (declared > maxBodyBytes) throw bodyTooLarge(`request body of ${declared} bytes`, maxBodyBytes);
  }

  /**
   * Small bodies of retryable routes are read whole so that a second worker
   * can get the same bytes; large or unknown-length bodies stream through and
   * are not retried.
   */
  async function retryableBody(req: Req, spec: RouteSpec): Promise<Buffer | null> {
    if (spec.retry === "none" || !hasBody(req)) return null;
    const len = Number(req.headers["content-length"]);
    if (!(len <= maxRetryBodyBytes)) return null;
    return readBody(req, maxRetryBodyBytes);
  }

  /** One generation request: admission places it, the core forwards it and fails over before the first answer byte. */
  async function dispatch(call: RestCall, path: string, spec: RouteSpec): Promise<void> {
    const arrivedMs = Date.now();
    const req = call.req;
    checkDeclaredLength(req);
    const body = await retryableBody(req, spec);
    const ticket = tickets(spec.kind, body, req.headers["content-type"], routingKeyOf(req));
    await dispatcher.dispatch(restContext(call, path, spec, body, ticket, arrivedMs));
  }

  return {
    /** Images generations and edits: remembers which worker holds each `url` image. */
    imageGeneration: (call: RestCall, path: string) => dispatch(call, path, specs.image),
    /** `/rollout/generate`, `/v1/diffusion/generate`: the whole request to one worker. */
    generation: (call: RestCall, path: string) => dispatch(call, path, specs.generation),
    /** Any other path: forwarded to a worker unchanged. */
    passthrough: (call: RestCall, path: string) => dispatch(call, path, specs.passthrough),
    createVideo: (call: RestCall, path: string) => dispatch(call, path, specs.videoCreate),
    /** `POST /v1/meshes`: to an I2M worker, once. */
    createMesh: (call: RestCall, path: string) => dispatch(call, path, specs.meshCreate),

    /**
     * Streams an exchange to one given worker (id affinity, admin
     * passthroughs): never held, capped or retried elsewhere.
     */
    async toWorker(call: RestCall, worker: Worker, path: string, spec: RouteSpec = specs.toOwner): Promise<void> {
      checkDeclaredLength(call.req);
      await dispatcher.toWorker(restContext(call, path, spec, null, null, Date.now()), worker);
    },
  };
}

export type DataPlane = ReturnType<typeof createDataPlane>;
