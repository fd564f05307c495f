/**
 * What a rollout job tells the outside as it runs (the router's metrics):
 * kept to plain events so that the job knows nothing of Prometheus.
 */
export interface JobObserver {
  started(): void;
  /** An item's final state, counted once per item (a held result dropped later is counted as cancelled then, not as succeeded). */
  itemEnded(state: "succeeded" | "failed" | "cancelled"): void;
  /** A prompt group had every item answer 2xx. */
  groupCompleted(): void;
  /** The job reached min_complete_groups, `ms` after its start. */
  reachedK(ms: number): void;
  /** The job ended; `reason` is why items were cancelled, or null (all ran). */
  ended(reason: string | null): void;
}

export const noJobObserver: JobObserver = {
  started: () => undefined,
  itemEnded: () => undefined,
  groupCompleted: () => undefined,
  reachedK: () => undefined,
  ended: () => undefined,
};
