import { Call, Connection, UpstreamError, type ConnectionOwner, type H1Handler, type H1Request } from "./h1-connection.js";

export interface H1PoolOptions {
  /** Connections per worker at most; further requests wait in a FIFO. Default 100. */
  maxConnections?: number;
  /** Idle limit on a connection with a request on it (headers or body); 0 = none. */
  timeoutMs?: number;
  /**
   * An idle connection is closed after this long. Below uvicorn's default
   * keep-alive timeout (5 s), so a worker never closes a connection the
   * router is about to reuse. Default 4 s. A worker that announces a
   * shorter `Keep-Alive: timeout=N` gets N s minus 1 s on that connection.
   */
  keepAliveMs?: number;
  connectTimeoutMs?: number;
}

/** The connections to one worker. */
class OriginPool implements ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly hostHeader: string;
  /** Idle connections, most recently used last (reused first: its socket is warm). */
  readonly idle: Connection[] = [];
  /** Requests waiting for a connection (FIFO; `head` is the next one). */
  waiting: (Call | undefined)[] = [];
  head = 0;
  /** Open connections, idle or busy. */
  open = 0;

  constructor(
    readonly client: H1Client,
    origin: string,
  ) {
    const u = new URL(origin);
    this.tls = u.protocol === "https:";
    this.host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    this.port = Number(u.port || (this.tls ? 443 : 80));
    this.hostHeader = u.host;
  }

  get timeoutMs(): number {
    return this.client.timeoutMs;
  }
  get connectTimeoutMs(): number {
    return this.client.connectTimeoutMs;
  }
  get keepAliveMs(): number {
    return this.client.keepAliveMs;
  }

  send(call: Call): void {
    let conn: Connection | undefined;
    const now = Date.now();
    while ((conn = this.idle.pop()) !== undefined) {
      // idleLimitMs: the pool's limit, or the worker's shorter Keep-Alive timeout.
      if (now - conn.idleSince < conn.idleLimitMs) {
        conn.start(call);
        return;
      }
      conn.close();
    }
    if (this.open < this.client.maxConnections) {
      this.open++;
      new Connection(this).start(call);
      return;
    }
    this.waiting.push(call);
  }

  /** The next waiting request that is still wanted. */
  private nextWaiting(): Call | null {
    while (this.head < this.waiting.length) {
      const call = this.waiting[this.head];
      // Dropped from the array so a finished request is not kept alive by the queue.
      this.waiting[this.head++] = undefined;
      if (this.head === this.waiting.length) {
        this.waiting = [];
        this.head = 0;
      }
      if (call !== undefined && !call.done) return call;
    }
    return null;
  }

  resend(call: Call): void {
    // Called while the failed connection still counts as open: its slot
    // passes to the new one, ahead of waiting requests.
    this.open++;
    new Connection(this).start(call);
  }

  released(conn: Connection): void {
    if (this.client.closed) {
      conn.close();
      return;
    }
    const next = this.nextWaiting();
    if (next !== null) {
      conn.start(next);
      return;
    }
    conn.idleSince = Date.now();
    this.idle.push(conn);
  }

  gone(conn: Connection): void {
    this.open--;
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A connection slot is free: a waiting request gets a new connection.
    if (!this.client.closed && this.open < this.client.maxConnections) {
      const next = this.nextWaiting();
      if (next !== null) {
        this.open++;
        new Connection(this).start(next);
      }
    }
    if (this.open === 0) this.client.emptied();
  }

  /** Closes connections idle for longer than their keep-alive limit. */
  sweep(now: number): void {
    // Backwards: close() takes the connection out of `idle`.
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const conn = this.idle[i]!;
      if (now - conn.idleSince >= conn.idleLimitMs) conn.close();
    }
  }
}

/**
 * The data plane's HTTP/1.1 client: a keep-alive pool per worker origin.
 * Requests beyond `maxConnections` to one worker wait for a free connection
 * in FIFO order. See h1-connection.ts for why this is not undici.
 */
export class H1Client {
  readonly maxConnections: number;
  readonly timeoutMs: number;
  readonly keepAliveMs: number;
  readonly connectTimeoutMs: number;
  closed = false;
  readonly #pools = new Map<string, OriginPool>();
  readonly #sweeper: NodeJS.Timeout;
  #onEmpty: (() => void) | null = null;

  constructor(options: H1PoolOptions = {}) {
    this.maxConnections = options.maxConnections ?? 100;
    this.timeoutMs = options.timeoutMs ?? 0;
    this.keepAliveMs = options.keepAliveMs ?? 4_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    // Often enough that a connection is closed soon after its limit (a
    // worker's Keep-Alive timeout minus 1 s), before the worker closes it.
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const pool of this.#pools.values()) pool.sweep(now);
    }, 250);
    this.#sweeper.unref();
  }

  /** Sends a request to `origin` (`http://host:port`); the handler hears the answer. */
  request(origin: string, req: H1Request, handler: H1Handler): Call {
    const call = new Call(req, handler);
    if (this.closed) {
      call.abort(new UpstreamError("UPSTREAM_CLIENT_CLOSED", "the router is shutting down"));
      return call;
    }
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new OriginPool(this, origin);
      this.#pools.set(origin, pool);
    }
    pool.send(call);
    return call;
  }

  /** Connections open to every worker (idle or busy). */
  get openConnections(): number {
    let n = 0;
    for (const pool of this.#pools.values()) n += pool.open;
    return n;
  }

  emptied(): void {
    if (this.#onEmpty !== null && this.openConnections === 0) this.#onEmpty();
  }

  /**
   * Refuses new requests, closes idle connections and resolves when the busy
   * ones have finished (the router's shutdown bounds how long that takes).
   */
  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.#sweeper);
    for (const pool of this.#pools.values()) {
      for (const conn of [...pool.idle]) conn.close();
      let call: Call | undefined;
      while ((call = pool.waiting.pop()) !== undefined) call?.abort(new UpstreamError("UPSTREAM_CLIENT_CLOSED", "the router is shutting down"));
    }
    if (this.openConnections === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onEmpty = resolve;
    });
  }

}
