/**
 * Every named way a registered worker's state changes, and who makes it. The
 * registry's named methods (`Registry.markSleeping`, `Registry.weightsLoaded`, ...) each apply one of them, they are the
 * `reason` of WatchWorkers events, and listeners (the refit coordinator,
 * eligibility, admission) branch on them: a closed set, so a misspelt or
 * retired name is a compile error rather than a branch that never runs.
 */
export const transitions = {
  // Probes and registration (health/, admin/control.ts)
  capabilities: "a /v1/models probe read the worker's model, task type and video support",
  capabilities_unknown: "the /v1/models probe failed; the last error says why",
  unreachable_at_registration: "registered, but not reachable: out of rotation until a probe succeeds",
  starting: "registered while warming up (its /health answers, its model card is held): out of rotation until the card arrives",
  health_probe_ok: "an active health probe succeeded (a dead worker counts toward coming back)",
  health_probe_failed: "an active health probe failed (enough of them: dead)",
  process_changed: "another process answers behind the URL: base weights, awake",
  // Passive health (health/outlier-detector.ts)
  request_ok: "a proxied request succeeded",
  request_failed: "a proxied request failed (enough of them: ejected)",
  ejection_extended: "an ejected worker's probe failed: its ejection lasts longer",
  // Operator actions (admin/control.ts)
  quarantined: "PUT is_dead: true",
  recovered: "PUT is_dead: false",
  draining: "PUT draining: true: no new requests",
  undrained: "PUT draining: false",
  // Memory (admin/control.ts)
  sleeping: "release_memory_occupation succeeded on the worker",
  awake: "resume_memory_occupation succeeded on the worker",
  found_sleeping: "a generation answered 500 and the sleep check found the worker asleep (put to sleep behind the router's back): out of rotation, not failing",
  sleep_check: "a generation answered 500: out of rotation (suspect) while the router asks the worker once whether it sleeps",
  sleep_check_done: "the sleep check after a 500 answered: not asleep, so the 500 counted as a failure and the worker is back in rotation unless that ejected it",
  found_awake: "a worker found asleep answers generations again (woken behind the router's back)",
  // Weights (refit/coordinator.ts)
  weights: "the worker loaded the pool's weights (refit, commit or replay)",
  weights_restored: "the worker still holds the version the state file remembers for its process",
  weights_current: "the worker holds the pool's version: back in sync",
  refit_failed: "the worker failed to load a disk refit: stale, without a version",
  stale_weights: "the worker's weights are not the pool's (missed or uncommitted refit)",
  syncing: "the last disk refit is being replayed to the worker",
  sync_failed: "replaying the last disk refit failed: stale, retried with backoff",
} as const;

export type Transition = keyof typeof transitions;

/** A load counter changed (per request; only sent to listeners that ask for it). */
export type RegistryReason = Transition | "load";
