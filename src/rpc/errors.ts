import { Code, ConnectError } from "@connectrpc/connect";
import { RouterError } from "../errors.js";

function codeFor(err: RouterError): Code {
  switch (err.code) {
    case "unauthenticated":
      return Code.Unauthenticated;
    case "refit_in_progress":
    case "no_refit_in_progress":
    case "weight_version_mismatch":
    case "weight_version_unchanged":
      return Code.FailedPrecondition;
    case "body_too_large":
      return Code.ResourceExhausted;
    case "drain_timeout":
    case "upstream_timeout":
      return Code.DeadlineExceeded;
  }
  if (err.status === 404) return Code.NotFound;
  if (err.status === 503 || err.status === 502) return Code.Unavailable;
  if (err.status >= 400 && err.status < 500) return Code.InvalidArgument;
  return Code.Internal;
}

/**
 * A RouterError as a ConnectError: the Connect code for its class, the same
 * message as REST, and the router's stable code in `x-router-error-code`.
 */
export function toConnectError(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  const err = RouterError.from(reason);
  return new ConnectError(err.message, codeFor(err), { "x-router-error-code": err.code }, undefined, err);
}
