/**
 * Waits for a one-shot event with a limit: `arm` installs the function that
 * signals the event (and gets null to remove it again). Resolves true when
 * it fired, false when `timeoutMs` passed first. For shutdown's waits (open
 * requests, open connections), where the event is a counter reaching zero.
 */
export function firedWithin(timeoutMs: number, arm: (fire: (() => void) | null) => void): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => {
      arm(null);
      resolve(false);
    }, timeoutMs);
    arm(() => {
      clearTimeout(t);
      arm(null);
      resolve(true);
    });
  });
}
