/**
 * A TCP relay a test can cut: a network partition between one process and
 * another (a router and its etcd). It listens on a free 127.0.0.1 port and
 * pipes every connection to `target`; `cut()` destroys every open
 * connection and closes each new one at once (as a dead link would), until
 * `restore()`.
 */
import { createConnection, createServer, type Socket } from "node:net";
import { once } from "node:events";

export interface TcpCut {
  /** `127.0.0.1:PORT` to connect to instead of the target. */
  readonly hostPort: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpCut(target: string): Promise<TcpCut> {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const open = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host, port });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      // Either side failing ends the pair.
      s.on("error", () => undefined);
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the relay has no port");
  return {
    hostPort: `127.0.0.1:${address.port}`,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
    },
    restore() {
      cut = false;
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
