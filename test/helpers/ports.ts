import { createServer } from "node:net";

/** A TCP port free on 127.0.0.1 right now (bound, read, released): for a process that must be told its port. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const { port } = server.address() as { port: number };
  await new Promise((res) => server.close(res));
  return port;
}
