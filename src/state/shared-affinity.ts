import type { Etcd3 } from "etcd3";
import { AffinityMap } from "../admission/affinity.js";
import { RouterError } from "../errors.js";
import type { Logger } from "../log.js";

/** Wait before the second read of an id etcd does not have yet. */
const SECOND_LOOK_MS = 250;

/**
 * An id-affinity map (image or video id -> the worker that holds it) shared
 * through `PREFIX/affinity/<id>`: every id this router learns is written
 * there (after the answer, never delaying it), and an id this router does
 * not know is read from there before it answers 404. Lookups stay in memory
 * for the ids this router made or has asked about once; a client that
 * alternates routers costs one etcd read per id and router.
 */
export class SharedAffinityMap extends AffinityMap {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #logger: Logger;

  constructor(client: Etcd3, prefix: string, logger: Logger) {
    super();
    this.#client = client;
    this.#prefix = `${prefix}/affinity/`;
    this.#logger = logger;
  }

  override remember(id: string, workerUrl: string): void {
    // A list of videos re-remembers every job it shows: only new facts are written.
    const known = this.lookup(id) === workerUrl;
    super.remember(id, workerUrl);
    if (known) return;
    this.#client
      .put(this.#prefix + id)
      .value(workerUrl)
      .exec()
      .catch((err: unknown) => this.#logger.error({ err, id }, "state store: could not share an id's worker; other routers answer 404 for it"));
  }

  /** The owner of an id this router does not know, as another router wrote it; undefined when nobody did. */
  async resolve(id: string): Promise<string | undefined> {
    const local = this.lookup(id);
    if (local !== undefined) return local;
    try {
      return await this.#read(id);
    } catch (err) {
      // Not a 404: the id may well exist; the client should retry.
      throw new RouterError("state_store_unavailable", `cannot look up id ${id} in the state store (etcd): ${(err as Error).message}`, { cause: err, details: { retryAfterS: 1 } });
    }
  }

  async #read(id: string): Promise<string | undefined> {
    let url = await this.#client.get(this.#prefix + id).string();
    if (url === null) {
      // The router that made the id sends its write as its answer ends, so a
      // client that asks here at once may be a few ms ahead of etcd: one
      // second look before a 404 (an unknown id is rare, and costs this once).
      await new Promise((r) => setTimeout(r, SECOND_LOOK_MS));
      url = await this.#client.get(this.#prefix + id).string();
    }
    if (url === null) return undefined;
    super.remember(id, url);
    return url;
  }
}
