import type { Logger } from "../log.js";
import type { Upstream } from "../proxy/upstream.js";
import type { Registry } from "../registry/registry.js";
import type { Worker } from "../registry/worker.js";

/**
 * Recognises a worker put to sleep behind the router's back
 * (`POST /release_memory_occupation` sent to it directly).
 *
 * The real server tells no one it sleeps: `/health` says ok, no route
 * reports the state, and a generation on the OpenAI routes fails with
 * Starlette's plain-text 500 "Internal Server Error" (the scheduler's
 * "Server is sleeping. Call resume_memory_occupation first." stays in its
 * log), exactly like a generation that failed for any other reason. Only
 * `/rollout/generate` wraps the scheduler's error, as 500
 * `{"detail": "Server is sleeping. ..."}`. So after a generation's 500 the
 * router asks once: a one-step 64×64 `/rollout/generate`, the worker out of
 * rotation (suspect, `sleep_check`) until it answers. An answer naming
 * the sleep marks the worker asleep (registry `found_sleeping`: out of
 * rotation, its failures forgotten); anything else, and the 500 counts as
 * the failure it was (outlier detection). On a worker that is awake and
 * failing the check costs one tiny generation per failure streak.
 *
 * A worker found asleep is asked again every `recheckMs`; once it answers
 * anything but the sleep it is back (`found_awake`). The router's own wake
 * (`/resume_memory_occupation` through the router) wakes it too.
 */
export interface SleepCheck {
  /**
   * A generation on `worker` answered 500. `countFailure` runs unless the
   * worker turns out to be asleep; while a check of it runs, further 500s
   * wait for its result.
   */
  onServerError(worker: Worker, countFailure: () => void): void;
  /** Stops the rechecks (shutdown). */
  stop(): void;
}

export interface SleepCheckOptions {
  registry: Registry;
  upstream: Upstream;
  logger: Logger;
  /** How long one check may take (--health-check-timeout). */
  timeoutMs: number;
  /** How often a worker found asleep is asked again (--health-check-interval). */
  recheckMs: number;
}

/** What the scheduler raises while memory is released (SGLang managers/scheduler.py). */
const SLEEPING = "Server is sleeping";

/** The smallest generation the worker accepts: one step, 64×64, no rollout extras. */
const CHECK_BODY = JSON.stringify({ prompt: "sglang-d-router sleep check", width: 64, height: 64, num_inference_steps: 1, seed: 0 });

/** Whether the worker says it sleeps; null when it could not be asked (network error, timeout). */
export async function probeSleeping(upstream: Upstream, url: string, timeoutMs: number): Promise<boolean | null> {
  try {
    const answer = await upstream.requestJson(url, "POST", "/rollout/generate", { body: CHECK_BODY, timeoutMs });
    const detail = (answer.body as { detail?: unknown } | null)?.detail;
    return answer.status === 500 && typeof detail === "string" && detail.includes(SLEEPING);
  } catch {
    return null;
  }
}

export function createSleepCheck(options: SleepCheckOptions): SleepCheck {
  const { registry, upstream, logger } = options;
  /** Failures waiting for a running check, by worker URL. */
  const pending = new Map<string, (() => void)[]>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  function later(fn: () => void): void {
    if (stopped) return;
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, options.recheckMs);
    t.unref();
    timers.add(t);
  }

  /** Asks a worker found asleep whether it still sleeps, until it does not (or it left, or the router woke it). */
  function recheck(worker: Worker): void {
    later(async () => {
      if (registry.get(worker.url) !== worker || !worker.sleepFound) return;
      const asleep = await probeSleeping(upstream, worker.url, options.timeoutMs);
      if (registry.get(worker.url) !== worker || !worker.sleepFound) return;
      if (asleep === false) {
        registry.markFoundAwake(worker.url);
        logger.info({ worker: worker.url }, "a worker found asleep answers again: back in rotation");
        return;
      }
      recheck(worker);
    });
  }

  async function check(worker: Worker): Promise<void> {
    // Suspect until the answer: a new request sent now would most likely fail
    // too, and on a loaded machine a slow check let one or two through.
    registry.setSleepCheck(worker.url, true);
    const asleep = await probeSleeping(upstream, worker.url, options.timeoutMs);
    const waiting = pending.get(worker.url) ?? [];
    pending.delete(worker.url);
    const current = registry.get(worker.url) === worker;
    if (asleep === true && current && !worker.sleeping) {
      registry.markFoundSleeping(worker.url);
      logger.warn({ worker: worker.url, failed: waiting.length }, "worker is sleeping (put to sleep behind the router's back): out of rotation until woken, not counted as failing");
      recheck(worker);
      return;
    }
    if (asleep !== true) for (const countFailure of waiting) countFailure();
    // After the failures are counted, so that a worker they eject is never back in rotation in between.
    if (current) registry.setSleepCheck(worker.url, false);
  }

  return {
    onServerError(worker, countFailure) {
      // Known asleep: its 500 is the sleep, not a fault.
      if (worker.sleeping) return;
      const waiting = pending.get(worker.url);
      if (waiting !== undefined) {
        waiting.push(countFailure);
        return;
      }
      // Within a failure streak the worker already proved awake: count at once.
      if (worker.consecutiveFailures > 0) {
        countFailure();
        return;
      }
      pending.set(worker.url, [countFailure]);
      void check(worker);
    },
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
