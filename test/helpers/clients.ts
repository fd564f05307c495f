/**
 * Clients as RL frameworks run them against the router, shared by the
 * restart, launcher-adoption, etcd and refit tests: one request retried the
 * way their HTTP clients retry, and closed loops of requests under load.
 */

/**
 * Sends one request the way RL frameworks retry it: again on a 503 or a
 * connection error, 1 s apart, up to `tries` times. A connection error on
 * the last try becomes `failed(err)`.
 */
export async function retryLikeRl<A extends { status: number }>(send: () => Promise<A>, failed: (err: unknown) => A, tries = 60): Promise<A & { attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const a = await send();
      if (a.status !== 503 || attempt >= tries) return { ...a, attempts: attempt };
    } catch (err) {
      if (attempt >= tries) return { ...failed(err), attempts: attempt };
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** `clients` loops, each sending its next request as soon as the last answered, until stop(). */
export function requestLoops<A>(send: () => Promise<A>, clients: number) {
  const answers: A[] = [];
  const errors: unknown[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        answers.push(await send());
      } catch (err) {
        errors.push(err);
      }
    }
  });
  return {
    answers,
    errors,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** A small image generation (64x64, 2 steps) as an RL client retries it: its status and the X-Weight-Version it was answered at. */
export function imageRetrying(base: string, body: object = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" }) {
  return retryLikeRl(
    async () => {
      const res = await fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      await res.arrayBuffer();
      return { status: res.status, version: res.headers.get("x-weight-version") };
    },
    (err) => ({ status: 0, version: String(err) }),
  );
}
