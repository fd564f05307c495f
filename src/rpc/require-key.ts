import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Auth } from "../auth/api-keys.js";
import type { Audit } from "../audit/audit.js";
import { currentCall } from "../audit/call-context.js";

/**
 * Refuses an RPC without the admin key (`unauthenticated`). The refusal goes
 * on the audit trail with the method and the caller, which the call-log
 * interceptor (outside this one) has already entered.
 */
export function requireAdminKey(auth: Auth, audit: Audit): Interceptor {
  return (next) => async (req) => {
    if (!auth.admin(req.header.get("authorization"))) {
      audit.refused(`/${req.service.typeName}/${req.method.name}`, currentCall());
      throw new ConnectError("admin API key required: send Authorization: Bearer <admin key>", Code.Unauthenticated);
    }
    return next(req);
  };
}

/** Refuses an RPC without the data-plane key (`unauthenticated`); the data plane stays off the audit trail. */
export function requireDataKey(auth: Auth): Interceptor {
  return (next) => async (req) => {
    if (!auth.data(req.header.get("authorization"))) throw new ConnectError("API key required: send Authorization: Bearer <key>", Code.Unauthenticated);
    return next(req);
  };
}
