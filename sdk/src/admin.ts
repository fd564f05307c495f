import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { AdminService } from "./gen/sgl/diffusion/router/v1/admin_pb.js";
import { routerErrorTransport } from "./rpc-errors.js";

/** The generated AdminService client: every RPC of admin.proto, camelCase; failures are RouterClientErrors. */
export type AdminClient = Client<typeof AdminService>;

/**
 * How admin RPCs travel:
 * - `connect`: the Connect protocol over HTTP/1.1 (binary by default, JSON with `useBinaryFormat: false`);
 * - `grpc`: gRPC over HTTP/2 cleartext (h2c, prior knowledge) or TLS for https URLs;
 * - `grpc-web`: gRPC-Web over HTTP/1.1.
 */
export type AdminTransport = "connect" | "grpc" | "grpc-web";

export interface AdminSetup {
  baseUrl: string;
  transport: AdminTransport;
  adminApiKey: string | undefined;
  timeoutMs: number | undefined;
  useBinaryFormat: boolean | undefined;
  interceptors: Interceptor[];
}

/** Adds `Authorization: Bearer <key>` to every RPC. */
export function bearerInterceptor(key: string): Interceptor {
  const value = `Bearer ${key}`;
  return (next) => async (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

export function createAdmin(setup: AdminSetup): { client: AdminClient; transport: Transport; close(): void } {
  const interceptors = [...setup.interceptors];
  if (setup.adminApiKey !== undefined) interceptors.unshift(bearerInterceptor(setup.adminApiKey));
  const defaultTimeoutMs = setup.timeoutMs || undefined;
  const common = { baseUrl: setup.baseUrl, interceptors, defaultTimeoutMs };
  let transport: Transport;
  let close: () => void;
  if (setup.transport === "grpc") {
    // Our own session manager, so close() can end the HTTP/2 connection.
    const sessionManager = new Http2SessionManager(setup.baseUrl);
    transport = createGrpcTransport({ ...common, sessionManager });
    close = () => sessionManager.abort();
  } else if (setup.transport === "connect" || setup.transport === "grpc-web") {
    const agent = setup.baseUrl.startsWith("https:") ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    const options = { ...common, httpVersion: "1.1" as const, nodeOptions: { agent }, useBinaryFormat: setup.useBinaryFormat };
    transport = setup.transport === "connect" ? createConnectTransport(options) : createGrpcWebTransport(options);
    close = () => agent.destroy();
  } else {
    throw new TypeError(`transport must be "connect", "grpc" or "grpc-web", got ${JSON.stringify(setup.transport)}`);
  }
  transport = routerErrorTransport(transport);
  return { client: createClient(AdminService, transport), transport, close };
}

/**
 * A `google.protobuf.Value` (e.g. `WorkerResult.body`, the worker's JSON
 * answer to a broadcast) as plain JSON.
 */
export function valueToJson(value: Value | undefined): JsonValue {
  return value === undefined ? null : toJson(ValueSchema, value);
}
