import { RouterError } from "../errors.js";
import type { ErrorShape } from "../error-body.js";
import type { AdminRoutes } from "./admin-routes.js";
import type { AffinityRoutes } from "./affinity-routes.js";
import type { Req } from "./body.js";
import type { DataPlane } from "./data-plane.js";
import type { FanoutRoutes } from "./fanout-routes.js";
import type { Res } from "./respond.js";
import type { RestCall } from "./rest-call.js";
import type { RolloutRoutes } from "./rollout-routes.js";
import type { LoraRoutes } from "./lora-routes.js";
import type { DashboardFiles } from "../dashboard/static-files.js";

/** Which key a route needs: none, the admin key, or the data-plane key. */
export type AuthClass = "open" | "admin" | "data";

/**
 * The key a forwarded path (one the router does not know) needs: `worker`
 * means the admin key whenever one is set, else the data key (none without
 * keys). A worker's own routes (`/sim/config`, LoRA loading, whatever a
 * newer worker adds) can change it, so a data-plane client must not reach
 * them behind the operator's back; without an admin key nothing changes.
 */
export type MatchAuth = AuthClass | "worker";

/** What a handler gets: the exchange, the path's `{param}` values (decoded), and the query when asked for. */
export interface RouteContext {
  /** The request as the REST front door keeps it (the answer's sink, the access log's notes). */
  call: RestCall;
  req: Req;
  res: Res;
  method: string;
  path: string;
  /** Path and query as received, forwarded unchanged to workers. */
  rawUrl: string;
  params: string[];
  query(): URLSearchParams;
}

export type RouteHandler = (ctx: RouteContext) => Promise<void> | void;

/** One row of the REST route table: everything the handler, auth, metrics and error shaping need. */
export interface Route {
  /** `/workers/{id}`: a `{...}` segment matches one non-empty path segment. */
  path: string;
  /** Handler per method; `*` takes any method not listed. */
  methods: Readonly<Record<string, RouteHandler>>;
  auth: AuthClass;
  /** The Prometheus `route` label (the template, never the raw path: bounded cardinality). */
  label: string;
  /** `original`: the Python router's `{"error": "..."}`; `openai`: OpenAI's error object (routes that are ours alone). */
  shape: ErrorShape;
  /** Path parameters passed as sent (worker ids: the handler decodes them itself, raw URLs included). */
  rawParams?: boolean;
}

/** What a request matched: a route and its parameters, or a reserved prefix (the router's own 404/405), or a worker path. */
export interface Match {
  /** `route`: a row of the table; `reserved`: under a router prefix but no route (404); `worker`: forwarded as is. */
  kind: "route" | "reserved" | "worker";
  route: Route | null;
  params: string[];
  auth: MatchAuth;
  label: string;
  shape: ErrorShape;
}

/**
 * Path prefixes that belong to the router: a request under one that no
 * route matches is the router's 404, never forwarded to a worker (the
 * original sent unknown admin paths to a random worker), and it needs the
 * key of the prefix's class, so an unknown admin path cannot be reached
 * with the data-plane key.
 */
const reservedPrefixes: readonly { prefix: string; auth: AuthClass; shape: ErrorShape }[] = [
  { prefix: "/workers", auth: "admin", shape: "original" },
  { prefix: "/refit", auth: "admin", shape: "openai" },
  { prefix: "/router", auth: "admin", shape: "original" },
  { prefix: "/admin", auth: "admin", shape: "original" },
  { prefix: "/audit", auth: "admin", shape: "original" },
  { prefix: "/dashboard", auth: "open", shape: "original" },
  { prefix: "/metrics", auth: "open", shape: "openai" },
  { prefix: "/v1/rollouts", auth: "data", shape: "openai" },
  // A video job's sub-resources are the router's (affinity to the job's worker).
  { prefix: "/v1/videos/", auth: "data", shape: "original" },
  { prefix: "/v1/meshes/", auth: "data", shape: "original" },
  { prefix: "/sgl.diffusion.router.", auth: "admin", shape: "original" },
  { prefix: "/grpc.reflection.", auth: "open", shape: "original" },
];

/** Every other path goes to a worker unchanged (LoRA routes, newer worker routes). */
export const workerPath = { auth: "worker" as const, label: "other", shape: "original" as const };

/** The key class a match needs under the keys configured: a forwarded path takes the admin key when there is one. */
export function effectiveAuth(auth: MatchAuth, adminKeySet: boolean): AuthClass {
  if (auth !== "worker") return auth;
  return adminKeySet ? "admin" : "data";
}

/**
 * The REST API as one table. A new route is one row here: its handler, key,
 * metrics label and error shape cannot disagree, because nothing else lists
 * routes.
 */
export function restRoutes(parts: { admin: AdminRoutes; data: DataPlane; affinity: AffinityRoutes; fanout: FanoutRoutes; rollouts: RolloutRoutes; lora: LoraRoutes; metrics: (call: RestCall) => void; dashboard: DashboardFiles }): Route[] {
  const { admin, data, affinity, fanout, rollouts, lora, dashboard } = parts;
  // The label is the template without the `*` of greedy parameters.
  const route = (path: string, auth: AuthClass, methods: Record<string, RouteHandler>, shape: ErrorShape = "original"): Route => ({ path, methods, auth, label: path.replace("*}", "}"), shape, rawParams: path.startsWith("/workers/") });
  return [
    // Probes and scrapes: open.
    route("/health", "open", { GET: ({ res }) => admin.health(res), HEAD: ({ res }) => admin.health(res) }),
    route("/metrics", "open", { GET: ({ call }) => parts.metrics(call) }, "openai"),
    // The live dashboard's files hold no data (the page calls the API with the operator's key): open.
    route("/dashboard", "open", { GET: ({ res }) => dashboard.serve(res, "index.html") }),
    route("/dashboard/", "open", { GET: ({ res }) => dashboard.serve(res, "index.html") }),
    route("/dashboard/app.js", "open", { GET: ({ res }) => dashboard.serve(res, "app.js") }),
    route("/dashboard/app.css", "open", { GET: ({ res }) => dashboard.serve(res, "app.css") }),
    route("/dashboard/rollouts.js", "open", { GET: ({ res }) => dashboard.serve(res, "rollouts.js") }),

    // The original admin API and the aliases RL frameworks call.
    route("/workers", "admin", { GET: ({ res }) => admin.listWorkers(res), POST: ({ req, res, query }) => admin.createWorker(req, res, query()) }),
    route("/workers/{id*}", "admin", {
      GET: ({ res, params }) => admin.getWorker(res, params[0]!),
      PUT: ({ req, res, params }) => admin.updateWorker(req, res, params[0]!),
      DELETE: ({ res, params }) => admin.deleteWorker(res, params[0]!),
    }),
    route("/add_worker", "admin", { POST: ({ req, res, query }) => admin.addWorkerAlias(req, res, query()) }),
    route("/remove_worker", "admin", { POST: ({ req, res, query }) => admin.removeWorkerAlias(req, res, query()), DELETE: ({ req, res, query }) => admin.removeWorkerAlias(req, res, query()) }),
    route("/managed_workers", "admin", { GET: ({ res }) => admin.listManagedWorkers(res) }),
    route("/list_workers", "admin", { GET: ({ res }) => admin.listWorkersAlias(res) }),
    route("/update_weights_from_disk", "admin", { POST: ({ req, res, query }) => admin.updateWeightsFromDisk(req, res, query()) }),
    route("/release_memory_occupation", "admin", { POST: ({ req, res, query }) => admin.releaseMemory(req, res, query()) }),
    route("/resume_memory_occupation", "admin", { POST: ({ req, res }) => admin.resumeMemory(req, res) }),
    route("/get_weights_checksum", "admin", { POST: ({ req, res }) => admin.weightsChecksum(req, res) }, "openai"),
    route("/update_weights_from_tensor_checker", "admin", { POST: ({ req, res }) => admin.tensorChecker(req, res) }, "openai"),
    route("/audit", "admin", { GET: ({ res, query }) => admin.auditTrail(res, query()) }),
    // Every client's running jobs (ids that can cancel them): an operator's list, on the admin key.
    route("/rollouts", "admin", { GET: ({ res }) => rollouts.list(res) }, "openai"),

    // Refit (ours).
    route("/refit", "admin", { GET: ({ res }) => admin.refitStatus(res) }, "openai"),
    route("/refit/begin", "admin", { POST: ({ req, res }) => admin.refitBegin(req, res) }, "openai"),
    route("/refit/commit", "admin", { POST: ({ req, res }) => admin.refitCommit(req, res) }, "openai"),
    route("/refit/abort", "admin", { POST: ({ req, res }) => admin.refitAbort(req, res) }, "openai"),
    route("/workers/{id*}/update_weights_from_tensor", "admin", { POST: ({ call, params }) => admin.tensorUpdate(call, params[0]!, "/update_weights_from_tensor") }, "openai"),
    route(
      "/update_weights_from_tensor",
      "admin",
      {
        // Each worker gets its own CUDA-IPC payload: sending it to a random worker would be wrong.
        "*": () => {
          throw new RouterError("invalid_request", "update_weights_from_tensor carries a per-worker payload: POST it to /workers/{worker_id}/update_weights_from_tensor");
        },
      },
      "openai",
    ),

    // LoRA: a control action over the whole pool (hold, drain, every worker), like a refit.
    route("/v1/set_lora", "admin", { POST: ({ req, res, query }) => lora.setLora(req, res, query()) }),
    route("/v1/merge_lora_weights", "admin", { POST: ({ req, res, query }) => lora.mergeLora(req, res, query()) }),
    route("/v1/unmerge_lora_weights", "admin", { POST: ({ req, res, query }) => lora.unmergeLora(req, res, query()) }),
    route("/v1/list_loras", "data", { GET: ({ res }) => lora.listLoras(res) }),

    // The data plane.
    route("/v1/images/generations", "data", { POST: ({ call, rawUrl }) => data.imageGeneration(call, rawUrl), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/v1/images/edits", "data", { POST: ({ call, rawUrl }) => data.imageGeneration(call, rawUrl), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/v1/images/{id}/content", "data", { GET: ({ call, rawUrl, params }) => affinity.imageContent(call, rawUrl, params[0]!), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/rollout/generate", "data", { POST: ({ call, rawUrl }) => data.generation(call, rawUrl), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/v1/diffusion/generate", "data", { POST: ({ call, rawUrl }) => data.generation(call, rawUrl), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/v1/videos", "data", { POST: ({ call, rawUrl }) => data.createVideo(call, rawUrl), GET: ({ call, query }) => fanout.listVideos(call, query()) }),
    route("/v1/videos/{id}", "data", { GET: ({ call, rawUrl, params }) => affinity.videoById(call, rawUrl, params[0]!), DELETE: ({ call, rawUrl, params }) => affinity.videoById(call, rawUrl, params[0]!) }),
    route("/v1/videos/{id}/content", "data", { GET: ({ call, rawUrl, params }) => affinity.videoById(call, rawUrl, params[0]!) }),
    route("/v1/meshes", "data", { POST: ({ call, rawUrl }) => data.createMesh(call, rawUrl), GET: ({ call, query }) => fanout.listMeshes(call, query()) }),
    route("/v1/meshes/{id}", "data", { GET: ({ call, rawUrl, params }) => affinity.meshById(call, rawUrl, params[0]!), DELETE: ({ call, rawUrl, params }) => affinity.meshById(call, rawUrl, params[0]!) }),
    route("/v1/meshes/{id}/content", "data", { GET: ({ call, rawUrl, params }) => affinity.meshById(call, rawUrl, params[0]!) }),
    route("/v1/models", "data", { GET: ({ call }) => fanout.listModels(call) }),
    route("/v1/models/{id*}", "data", { GET: ({ call, rawUrl, params }) => fanout.getModel(call, rawUrl, params[0]!), "*": ({ call, rawUrl }) => data.passthrough(call, rawUrl) }),
    route("/v1/rollouts", "data", { POST: ({ call }) => rollouts.submit(call) }, "openai"),
    route("/v1/rollouts/{id}", "data", { GET: ({ res, params }) => rollouts.get(res, params[0]!) }, "openai"),
    route("/v1/rollouts/{id}/cancel", "data", { POST: ({ res, params }) => rollouts.cancel(res, params[0]!) }, "openai"),
  ];
}

interface Template {
  route: Route;
  prefix: string;
  suffix: string;
  /** `{id*}`: the parameter may span segments (raw worker URLs, model ids with a slash). */
  greedy: boolean;
}

/**
 * Matching, compiled once: exact paths in a map (one lookup for most
 * requests), then the few templates (`prefix{param}suffix`, longest suffix
 * first). A `{param}` is one non-empty segment, a `{param*}` one or more;
 * percent-decoded (a malformed one is a 400) unless the route takes them raw.
 */
export class RouteTable {
  readonly routes: readonly Route[];
  readonly #exact = new Map<string, Route>();
  readonly #templates: Template[] = [];

  constructor(routes: readonly Route[]) {
    this.routes = routes;
    for (const route of routes) {
      const open = route.path.indexOf("{");
      if (open < 0) {
        this.#exact.set(route.path, route);
        continue;
      }
      const close = route.path.indexOf("}", open);
      this.#templates.push({ route, prefix: route.path.slice(0, open), suffix: route.path.slice(close + 1), greedy: route.path[close - 1] === "*" });
    }
    this.#templates.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  match(path: string): Match {
    const exact = this.#exact.get(path);
    if (exact !== undefined) return { kind: "route", route: exact, params: [], auth: exact.auth, label: exact.label, shape: exact.shape };
    for (const t of this.#templates) {
      if (!path.startsWith(t.prefix) || !path.endsWith(t.suffix) || path.length <= t.prefix.length + t.suffix.length) continue;
      const param = path.slice(t.prefix.length, path.length - t.suffix.length);
      if (!t.greedy && param.includes("/")) continue;
      return { kind: "route", route: t.route, params: [t.route.rawParams ? param : decodeSegment(param)], auth: t.route.auth, label: t.route.label, shape: t.route.shape };
    }
    for (const r of reservedPrefixes) {
      if (path.startsWith(r.prefix)) return { kind: "reserved", route: null, params: [], auth: r.auth, label: "other", shape: r.shape };
    }
    return { kind: "worker", route: null, params: [], ...workerPath };
  }
}

/** The handler for `method` on a matched route, or a 405 naming the allowed methods. */
export function handlerFor(route: Route, method: string, path: string): RouteHandler {
  const h = route.methods[method] ?? route.methods["*"];
  if (h !== undefined) return h;
  const allow = Object.keys(route.methods).join(", ");
  throw new RouterError("method_not_allowed", `${method} is not allowed on ${path} (allowed: ${allow})`, { details: { allow } });
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RouterError("invalid_request", `path segment is not valid percent-encoding: ${JSON.stringify(s)}`);
  }
}
