import type { IncomingHttpHeaders } from "node:http";
import { answerFacts, flattenHeaders, type AnswerFacts } from "./headers.js";

/** What the router said about an answer besides its body. */
export interface ResponseMeta extends AnswerFacts {
  /** The HTTP status. */
  status: number;
  /** The answer's headers, lower-case names. */
  headers: Readonly<Record<string, string>>;
}

/** The result of `withResponse()`: the parsed answer and its {@link ResponseMeta}. */
export interface WithResponse<T> {
  data: T;
  meta: ResponseMeta;
}

export function responseMeta(status: number, headers: IncomingHttpHeaders): ResponseMeta {
  const flat = flattenHeaders(headers);
  return { status, headers: flat, ...answerFacts(flat) };
}

/**
 * The promise data-plane calls return, as the OpenAI client's `APIPromise`:
 * awaiting it gives the parsed answer; `withResponse()` gives `{ data, meta }`
 * (status, headers, request id, weight version, worker id) of the same single
 * HTTP exchange.
 */
export class RouterPromise<T> extends Promise<T> {
  // Promise methods that build a derived promise use this: a plain one, since
  // a RouterPromise can only be made from an answer.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  readonly #answer: Promise<WithResponse<T>>;

  constructor(answer: Promise<WithResponse<T>>) {
    // The base promise is never observed: then/catch/finally read `answer`,
    // so that a call awaited only through withResponse() leaves no second,
    // unhandled rejection behind.
    super((resolve) => resolve(undefined as T));
    this.#answer = answer;
  }

  /** The parsed answer together with its status, headers, request id, weight version and worker id. */
  withResponse(): Promise<WithResponse<T>> {
    return this.#answer;
  }

  override then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#answer.then((r) => r.data).then(onfulfilled, onrejected);
  }

  override catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.then(undefined, onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#answer.then((r) => r.data).finally(onfinally);
  }
}
