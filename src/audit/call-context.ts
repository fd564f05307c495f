import { AsyncLocalStorage } from "node:async_hooks";

/** Who made a control call, as the audit trail records it (never the key itself). */
export interface Caller {
  /** Remote address and port of the client's connection. */
  remote: string;
  /** Which key the call carried: `admin`, `data`, or `none` (no key required, or none matched). */
  key: "admin" | "data" | "none";
  /** How it came in: `rest`, `connect`, `grpc`, `grpc-web`, or `router` for the router's own actions (launcher restarts, timeouts). */
  transport: "rest" | "connect" | "grpc" | "grpc-web" | "router";
}

export interface CallContext {
  requestId: string;
  caller: Caller;
}

/**
 * The caller of the control call in progress. The REST handler and the RPC
 * interceptor enter it for admin calls only (never on the data plane), so
 * that the audit decorators around Control, the refit coordinator and the
 * launcher learn who called without every layer passing it along.
 */
export const callContext = new AsyncLocalStorage<CallContext>();

const internal: CallContext = Object.freeze({ requestId: "", caller: Object.freeze({ remote: "", key: "none", transport: "router" }) }) as CallContext;

/** The current caller, or the router itself when no client call is in progress. */
export function currentCall(): CallContext {
  return callContext.getStore() ?? internal;
}

/** `1.2.3.4:5678` or `[::1]:5678`; empty when the socket is gone. */
export function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined } | null | undefined): string {
  const a = socket?.remoteAddress;
  if (!a) return "";
  const host = a.includes(":") ? `[${a}]` : a;
  return socket?.remotePort === undefined ? host : `${host}:${socket.remotePort}`;
}
