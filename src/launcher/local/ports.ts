import { createServer } from "node:net";
import { LauncherConfigError, LauncherError } from "../errors.js";

/**
 * Whether `port` can be bound on `host` right now. Binding, not connecting:
 * a connect test misses ports held by sockets that are bound but not yet
 * listening, and ports bound on another address of this host.
 *
 * @throws LauncherConfigError if `host` is not an address of this machine.
 */
export function isPortFree(host: string, port: number, hostKey = "launcher.worker_host"): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") {
        resolve(false);
      } else if (error.code === "EADDRNOTAVAIL" || error.code === "EAFNOSUPPORT" || error.code === "ENOTFOUND") {
        reject(
          new LauncherConfigError(`${hostKey} ${host} cannot be bound on this machine (${error.code})`, {
            source: "launch request",
            key: hostKey,
            cause: error,
          }),
        );
      } else {
        reject(error);
      }
    });
    // exclusive: never share the handle with cluster workers, the test must be real.
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** Options of {@link findFreePort}. */
export interface FindFreePortOptions {
  /** Address the port will be bound on. */
  host: string;
  /** The key that set `host`, for the error when it is not an address of this machine. Default "launcher.worker_host". */
  hostKey?: string;
  /** First port tried; the scan goes upward, then wraps to 1024. */
  preferred: number;
  /** Ports this launcher already handed out (possibly not bound yet); skipped without a bind test. */
  reserved: ReadonlySet<number>;
  /** Consecutive ports that must all be free, starting at the returned one. Default 1 (workers' HTTP port uses 2: port and port+1). */
  span?: number;
}

/**
 * First port at or above `preferred` (then from 1024 up, as the Python
 * launcher did) such that `span` consecutive ports are neither reserved nor
 * bound by anyone. The caller adds the result to its reserved set before
 * looking for the next port.
 *
 * @throws LauncherError when no such port exists.
 */
export async function findFreePort(options: FindFreePortOptions): Promise<number> {
  const span = options.span ?? 1;
  const last = 65536 - span;
  const candidates = function* (): Generator<number> {
    for (let port = Math.max(1, options.preferred); port <= last; port += 1) yield port;
    for (let port = 1024; port < Math.min(options.preferred, last + 1); port += 1) yield port;
  };
  for (const port of candidates()) {
    let usable = true;
    for (let p = port; p < port + span && usable; p += 1) {
      usable = !options.reserved.has(p) && (await isPortFree(options.host, p, options.hostKey));
    }
    if (usable) return port;
  }
  throw new LauncherError(
    `no free port on ${options.host}${span > 1 ? ` (with ${span - 1} free port(s) after it)` : ""} at or above ${options.preferred}`,
  );
}
