/**
 * The only fixed waits a test may use, each saying why time must pass.
 *
 * A test that waits for something to happen (a request queued, a probe run,
 * a log line, a state change) waits for that event with a deadline instead:
 * `waitFor` in ./router.ts, `router.waitForLog`, `expect.poll`, or `once`.
 * What is left are the two cases where the passing of time is the point:
 *
 * - {@link holdsFor}: something must NOT happen for a while (a held request
 *   stays held, a stopped worker stays exited);
 * - {@link waitOut}: a timer of the router under test must run out (a
 *   timeout, a backoff, an idle-connection expiry).
 *
 * Pacing a load generator (think time between a client's requests) is
 * neither, and stays where it is.
 */

const checkEveryMs = 50;

/**
 * Lets `ms` pass during which what `why` describes must not change. With an
 * `invariant`, that is also checked throughout (every 50 ms and at the end),
 * so a change that undoes itself within the window is caught too; the first
 * check that returns false throws, naming `why` and when it broke.
 */
export async function holdsFor(ms: number, why: string, invariant?: () => boolean | Promise<boolean>): Promise<void> {
  const started = Date.now();
  const end = started + ms;
  for (;;) {
    const left = end - Date.now();
    if (invariant !== undefined && !(await invariant())) throw new Error(`expected to hold for ${ms} ms, broke after ${Date.now() - started} ms: ${why}`);
    if (left <= 0) return;
    await new Promise((r) => setTimeout(r, invariant === undefined ? left : Math.min(left, checkEveryMs)));
  }
}

/**
 * Lets `ms` pass so that a timer of the system under test runs out; `timer`
 * names it (e.g. "--timeout 1 s on the idle pooled connection").
 */
export async function waitOut(ms: number, timer: string): Promise<void> {
  void timer; // for the reader: the wait is the test's subject, not a race
  await new Promise((r) => setTimeout(r, ms));
}
