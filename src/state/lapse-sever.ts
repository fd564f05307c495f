import type { GiveUp } from "../admission/gate.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PresenceListener } from "./presence-proof.js";
import { STORE_LOST_GIVE_UP_MS } from "./refit-follow.js";

/** What {@link severOnLapse} acts on. */
export interface LapseParts {
  /** Holds new generation requests here (admission.hold); the returned function releases them. */
  hold(reason: string, giveUp: GiveUp): () => void;
  /** Ends this router's generation exchanges open now with `error`; returns how many. */
  severInFlight(error: Error): number;
  /** Reads the refit state again and applies what the watch missed (refit-follow.ts). */
  catchUp(): Promise<void>;
  logger: Logger;
}

/** Seconds a client is told to wait (Retry-After), as for a request held while etcd is away. */
const RETRY_AFTER_S = 2;
const RETRY_CATCH_UP_MS = 1_000;

/**
 * A router that can no longer prove the others count it (its presence
 * lease may expire within the margin: presence-proof.ts) may be taken as
 * gone by a refit through another router, which then loads new weights
 * without waiting for it. So before that can happen it holds new
 * generation requests and severs every one in flight: each ends as 503
 * state_store_unavailable with Retry-After (an RL client retries it, here
 * or through another router); a rollout item in flight fails with the same
 * code. The workers keep running what was severed (the router cannot stop
 * a generation on the GPU; their FIFO queue runs it before a weight load
 * queued after it): no answer of it reaches a client. Once a keep-alive or
 * a new lease goes through again, the refit state is read again (a refit
 * committed meanwhile is taken first) and the hold released.
 */
export function severOnLapse(parts: LapseParts): PresenceListener {
  const { logger } = parts;
  let unhold: (() => void) | null = null;
  let lapsed = false;
  let why = "";
  const error = (): RouterError =>
    new RouterError("state_store_unavailable", `this router cannot prove to the other routers on its state store (etcd) that it is still present (${why}): its generation requests are ended or held, since another router may load new weights without waiting for them; retry later or through another router`, { details: { retryAfterS: RETRY_AFTER_S } });
  const release = (): void => {
    const held = unhold;
    if (held === null || lapsed) return;
    parts.catchUp().then(
      () => {
        if (unhold !== held || lapsed) return;
        held();
        unhold = null;
        logger.info("state store: this router is present on etcd again; generation requests flow");
      },
      (err: unknown) => {
        logger.warn({ err }, "state store: present again, but could not read the refit state; still holding, retrying in 1 s");
        setTimeout(release, RETRY_CATCH_UP_MS).unref();
      },
    );
  };
  return {
    lapsed(reason) {
      lapsed = true;
      why = reason;
      // Held first: a severed exchange frees its worker's slot, and no waiter may take it.
      unhold ??= parts.hold("this router's presence on the state store (etcd) lapsing", { afterMs: STORE_LOST_GIVE_UP_MS, error });
      const severed = parts.severInFlight(error());
      logger.error({ severed, why: reason }, `state store: this router can no longer prove the other routers count it; ended its ${severed} generation request(s) in flight (503 state_store_unavailable) and holds new ones`);
    },
    proven() {
      lapsed = false;
      release();
    },
  };
}
