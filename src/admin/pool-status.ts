import type { Registry } from "../registry/registry.js";

/** Counts over the pool, for /health and GetRouterStatus. */
export interface PoolStatus {
  total: number;
  /** Neither dead nor sleeping (the original's healthy_workers). */
  healthy: number;
  dead: number;
  sleeping: number;
  /** May take new requests now. */
  routable: number;
  inFlight: number;
}

export function poolStatus(registry: Registry): PoolStatus {
  const s: PoolStatus = { total: 0, healthy: 0, dead: 0, sleeping: 0, routable: registry.routable().length, inFlight: 0 };
  for (const w of registry.all()) {
    s.total++;
    s.inFlight += w.activeRequests;
    if (w.dead) s.dead++;
    else if (w.sleeping) s.sleeping++;
    else s.healthy++;
  }
  return s;
}
