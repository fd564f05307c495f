import type { RolloutResult, RunResponse } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";
import { RouterClientError } from "./errors.js";
import type { RolloutJobResult, RolloutJobRun, RolloutJobSummary } from "./rollout-jobs.js";

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  // Nobody may await it; an unobserved rejection must not crash the caller.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function jobResult(r: RolloutResult): RolloutJobResult {
  const body = r.body;
  return {
    index: r.index,
    group: r.group,
    status: r.status,
    ok: r.status >= 200 && r.status < 300,
    workerId: r.workerId,
    weightVersion: r.weightVersion,
    queueMs: r.queueMs,
    serviceMs: r.serviceMs,
    attempts: r.attempts,
    hedgeWorkerId: r.hedgeWorkerId,
    hedgeWinner: r.hedgeWinner,
    contentType: r.contentType,
    body,
    json: <T>() => JSON.parse(new TextDecoder().decode(body)) as T,
  };
}

export interface RunStream {
  events: AsyncIterator<RunResponse>;
  /** Closes the stream (the router then cancels the job). */
  close(): void;
  /** The Cancel RPC. */
  cancel(id: string): Promise<void>;
}

/**
 * A running job's stream, read on demand: the first line (the job's id) at
 * once, results as the caller iterates, and everything once someone asks
 * for the summary (results read before the caller iterates wait in memory).
 * Reading only on demand keeps a slow consumer's results in the router
 * and the socket's flow control, not in this process.
 */
export class RolloutRun implements RolloutJobRun {
  readonly #stream: RunStream;
  readonly #id = deferred<string>();
  readonly #summary = deferred<RolloutJobSummary>();
  readonly #results: RolloutJobResult[] = [];
  #idKnown = false;
  #wantAll = false;
  #consumerWaiting = false;
  #wake: (() => void) | null = null;
  #reading = false;
  #ended = false;
  #error: unknown = undefined;
  #iterated = false;

  constructor(stream: RunStream) {
    this.#stream = stream;
    // The first line, so that `id` resolves and a refused call surfaces even if nobody iterates.
    this.#read();
  }

  get id(): Promise<string> {
    return this.#id.promise;
  }

  get summary(): Promise<RolloutJobSummary> {
    this.#wantAll = true;
    this.#read();
    return this.#summary.promise;
  }

  async cancel(): Promise<void> {
    await this.#stream.cancel(await this.#id.promise);
  }

  [Symbol.asyncIterator](): AsyncIterator<RolloutJobResult> {
    return this.#iterate();
  }

  async *#iterate(): AsyncGenerator<RolloutJobResult> {
    if (this.#iterated) throw new TypeError("a rollout job's results can be iterated once");
    this.#iterated = true;
    let finished = false;
    try {
      for (;;) {
        const next = this.#results.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.#ended) {
          finished = true;
          if (this.#error !== undefined) throw this.#error;
          return;
        }
        await new Promise<void>((wake) => {
          this.#wake = wake;
          this.#consumerWaiting = true;
          this.#read();
        });
        this.#consumerWaiting = false;
      }
    } finally {
      // Leaving the loop early closes the stream, which cancels the job.
      if (!finished && !this.#ended) this.#stream.close();
    }
  }

  #needMore(): boolean {
    return !this.#ended && (!this.#idKnown || this.#wantAll || (this.#consumerWaiting && this.#results.length === 0));
  }

  /** Reads lines while someone needs them; one reader at a time. */
  #read(): void {
    if (this.#reading || !this.#needMore()) return;
    this.#reading = true;
    void this.#readLines();
  }

  async #readLines(): Promise<void> {
    try {
      while (this.#needMore()) {
        const r = await this.#stream.events.next();
        if (r.done) this.#end(undefined);
        else this.#take(r.value);
        this.#notify();
      }
    } catch (err) {
      this.#end(err);
      this.#notify();
    } finally {
      this.#reading = false;
    }
  }

  #take(line: RunResponse): void {
    const ev = line.event;
    if (ev.case === "started") {
      this.#idKnown = true;
      this.#id.resolve(ev.value.id);
    } else if (ev.case === "result") {
      this.#results.push(jobResult(ev.value));
    } else if (ev.case === "summary") {
      const s = ev.value;
      this.#summary.resolve({ id: s.id, completed: s.completed, failed: s.failed, cancelled: s.cancelled, reason: s.reason, completedGroups: [...s.completedGroups] });
    }
  }

  #end(err: unknown): void {
    this.#ended = true;
    this.#error = err;
    const reason = err ?? new RouterClientError({ status: 0, code: "invalid_response", message: "the rollout stream ended before the router sent the job's id and summary" });
    // No-ops when they were already resolved.
    this.#id.reject(reason);
    this.#summary.reject(reason);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
