/** What a model card's `created` says about the process behind a worker URL. */
export interface FingerprintVerdict {
  /** The fingerprint to keep for the worker: the card's value once it qualified, else the one kept before. */
  fingerprint: string | null;
  /** Set when a qualified value differs from the one kept: another process answers now. */
  change: { previous: string; current: string } | null;
}

const LAUNCHER_PREFIX = "launcher:";

/**
 * The fingerprint of a launcher-managed worker: its launcher's handle of the
 * process (group id, Slurm job), which a model card cannot give (SGLang's
 * `created` is the request time). Recorded with the worker's version in the
 * state file, it lets a router restarted with its workers still running
 * (adopted, same handle) put them back in rotation without replaying the
 * refit; a new start has a new handle, so it is re-synced.
 */
export function launcherProcessId(handle: string): string {
  return `${LAUNCHER_PREFIX}${handle}`;
}

/**
 * Tells a process fingerprint from a clock. A model card's `created` that
 * stays the same for `stableMs` is the process start time, and a new one
 * means a restarted process. A value that keeps moving (SGLang answers the
 * request time, in seconds) never qualifies, so it cannot raise a false alarm.
 */
export function createFingerprintJudge(stableMs = 3_000) {
  /** Each worker's last `created` and since when it has not changed. */
  const lastSeen = new Map<string, { value: string | null; sinceMs: number }>();
  return {
    judge(url: string, raw: string | null, stored: string | null, nowMs: number): FingerprintVerdict {
      // The launcher's word on its own worker's process beats any card: it sees that process end.
      if (stored !== null && stored.startsWith(LAUNCHER_PREFIX)) return { fingerprint: stored, change: null };
      let seen = lastSeen.get(url);
      if (seen === undefined || seen.value !== raw) {
        seen = { value: raw, sinceMs: nowMs };
        lastSeen.set(url, seen);
      }
      if (raw === null || nowMs - seen.sinceMs < stableMs) return { fingerprint: stored, change: null };
      return { fingerprint: raw, change: stored !== null && stored !== raw ? { previous: stored, current: raw } : null };
    },
    /** A removed worker's history goes with it. */
    forget(url: string): void {
      lastSeen.delete(url);
    },
  };
}
