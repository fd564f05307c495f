import type { OutgoingHttpHeaders } from "node:http";
import { performance } from "node:perf_hooks";
import { detailError, internalError } from "./http.js";
import { generationMs, type Work } from "./latency.js";
import type { SimState } from "./state.js";

/** The real worker's answer to a generation while its memory is released. */
export const SLEEPING_DETAIL = { message: "[SLEEPING] Server is sleeping. Call resume_memory_occupation first." };

/** The seed SGLang's SamplingParams uses when a request has none. */
export const DEFAULT_SEED = 1024;

export function assertAwake(state: SimState): void {
  if (state.sleeping) throw detailError(400, SLEEPING_DETAIL);
}

export interface Generated<T> {
  result: T;
  /** The weights that made it (an update can run between arrival and turn). */
  weights: string;
  inferenceTimeS: number;
}

/**
 * Runs one generation through the scheduler queue: waits its turn, fails like
 * the real worker when asleep or when the dice say so (`failureRate`), then
 * takes the time of the work and finally draws the output with `make`.
 */
export function runGeneration<T>(state: SimState, work: Work, make: () => T | Promise<T>): Promise<Generated<T>> {
  return state.scheduler.run(async () => {
    assertAwake(state);
    if (state.shouldFail()) throw internalError();
    const started = performance.now();
    await state.delay(generationMs(work, state.config.speed));
    const result = await make();
    return { result, weights: state.weights, inferenceTimeS: (performance.now() - started) / 1000 };
  });
}

/** Headers that let tests prove which worker and which weights made an answer. */
export function simHeaders(state: SimState, weights = state.weights): OutgoingHttpHeaders {
  return { "x-sim-weights": weights, "x-sim-worker": state.url };
}
