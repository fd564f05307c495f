/**
 * An HTTP hop in front of a worker that holds the requests a test picks (by
 * their body) until it lets them go: a slow link or a slow answer, for as
 * long as the test needs, instead of hoping a loaded machine makes it slow.
 * Every other request, and a held one once let go, goes to the worker as
 * sent, and its answer comes back as the worker gave it.
 */
import { Agent, createServer, request, type IncomingMessage } from "node:http";
import { once } from "node:events";

export interface HeldLink {
  /** `http://127.0.0.1:PORT`: the worker's URL as the router should know it. */
  readonly url: string;
  /** Requests held right now. */
  readonly held: number;
  /** Lets every held request (and every later one) through. */
  release(): void;
  close(): Promise<void>;
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startHeldLink(target: string, hold: (body: string) => boolean): Promise<HeldLink> {
  const to = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const waiting: (() => void)[] = [];
  let released = false;
  const server = createServer(async (req, res) => {
    const body = await bodyOf(req);
    if (!released && hold(body.toString("utf8"))) await new Promise<void>((go) => waiting.push(go));
    const out = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on("error", () => res.destroy());
    out.end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const release = (): void => {
    released = true;
    for (const go of waiting.splice(0)) go();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    get held() {
      return waiting.length;
    },
    release,
    async close() {
      release();
      server.closeAllConnections();
      agent.destroy();
      await new Promise((res) => server.close(res));
    },
  };
}
