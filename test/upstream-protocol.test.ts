/**
 * The data plane's own HTTP/1.1 client against a worker that speaks HTTP
 * byte by byte: answers split at awkward places, chunked bodies, 1xx
 * answers, bodies that end at connection close, keep-alive connections the
 * worker drops, and answers that are not HTTP. What a client of the router
 * sees must be the worker's answer, byte for byte, or a clean error.
 */
import { readFileSync } from "node:fs";
import { connect as http2Connect } from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import { connect as connectSocket, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, type RouterProcess } from "./helpers/router.js";
import { waitOut } from "./helpers/idle.js";
import { repoRoot } from "./helpers/sim.js";

const modelsAnswer = JSON.stringify({ object: "list", data: [{ id: "wire/model", object: "model", created: 1700000000, owned_by: "sglang", root: "wire/model", task_type: "T2I" }] });

interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  socketId: number;
}

/** A worker written against the socket: each route sends its answer as a list of byte pieces, with pauses. */
class WireWorker {
  readonly server: Server;
  readonly seen: Seen[] = [];
  sockets = 0;
  readonly open = new Set<Socket>();
  /** Connections the worker closes right after answering on them (keep-alive drops). */
  closeAfterAnswer = false;
  /**
   * The next `count` requests arriving on a connection that already served
   * one (`reused`), or on any connection (`any`), are dropped: the worker
   * closes the connection without answering.
   */
  drop: { on: "reused" | "any"; count: number } | null = null;
  /** Requests dropped so far. */
  dropped = 0;
  /** When each connection closed (ms since epoch), by socket id. */
  readonly closedAt = new Map<number, number>();
  port = 0;

  constructor(readonly routes: Record<string, (req: Seen, socket: Socket) => Promise<void> | void>) {
    this.server = createServer((socket) => {
      this.open.add(socket);
      const id = ++this.sockets;
      socket.once("close", () => {
        this.open.delete(socket);
        this.closedAt.set(id, Date.now());
      });
      this.serve(socket, id);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.port}`;
  }

  private serve(socket: Socket, socketId: number): void {
    let buf = Buffer.alloc(0);
    let busy = false;
    let served = 0;
    socket.on("error", () => undefined);
    const next = async () => {
      if (busy) return;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const lines = buf.toString("latin1", 0, end).split("\r\n");
      const [method, path] = lines[0]!.split(" ");
      const drop = this.drop;
      const probe = path!.startsWith("/health") || path === "/v1/models";
      if (drop !== null && !probe && (drop.on === "any" || served > 0)) {
        if (--drop.count === 0) this.drop = null;
        this.dropped++;
        socket.destroy();
        return;
      }
      served++;
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
      if (path === "/early-413") {
        // Answers before reading the body, keeps the connection, and never
        // reads from it again (as a server refusing an upload may).
        busy = true;
        socket.pause();
        // Late enough that the router's upload to it is already held back.
        setTimeout(() => socket.write(answer(413, '{"detail":"too large"}')), 300);
        return;
      }
      let bodyEnd = end + 4;
      let body: Buffer;
      if (headers["transfer-encoding"] === "chunked") {
        const parts: Buffer[] = [];
        let at = end + 4;
        for (;;) {
          const nl = buf.indexOf("\r\n", at);
          if (nl < 0) return;
          const size = parseInt(buf.toString("latin1", at, nl), 16);
          if (buf.length < nl + 2 + size + 2) return;
          if (size === 0) {
            bodyEnd = nl + 4;
            break;
          }
          parts.push(buf.subarray(nl + 2, nl + 2 + size));
          at = nl + 2 + size + 2;
        }
        body = Buffer.concat(parts);
      } else {
        const len = Number(headers["content-length"] ?? 0);
        if (buf.length < end + 4 + len) return;
        body = buf.subarray(end + 4, end + 4 + len);
        bodyEnd = end + 4 + len;
      }
      buf = buf.subarray(bodyEnd);
      const req: Seen = { method: method!, path: path!, headers, body: Buffer.from(body), socketId };
      if (!path!.startsWith("/health") && path !== "/v1/models") this.seen.push(req);
      busy = true;
      const route = this.routes[path!] ?? ((_r, s) => void s.write(answer(200, path === "/v1/models" ? modelsAnswer : '{"status":"ok"}')));
      await route(req, socket);
      busy = false;
      if (this.closeAfterAnswer && !path!.startsWith("/health") && path !== "/v1/models") socket.end();
      else void next();
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      void next();
    });
  }

  /** Closes the server and every connection (some routes never answer). */
  close(): Promise<void> {
    for (const s of this.open) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A raw client connection to the router; `text()` is everything it has received so far. */
function rawClient(base: string): { sock: Socket; text: () => string } {
  const u = new URL(base);
  const sock = connectSocket(Number(u.port), u.hostname);
  sock.on("error", () => undefined);
  let got = "";
  sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
  return { sock, text: () => got };
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(20);
  }
}

function answer(status: number, body: string, extra = ""): string {
  return `HTTP/1.1 ${status} X\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

/** Writes the pieces one by one, with a pause between them, so they reach the router as separate reads. */
async function dribble(socket: Socket, pieces: (string | Buffer)[], pauseMs = 15): Promise<void> {
  for (const p of pieces) {
    socket.write(p);
    await sleep(pauseMs);
  }
}

const big = Buffer.alloc(300_000, "abcdefghij");

const routes: Record<string, (req: Seen, socket: Socket) => Promise<void> | void> = {
  // The head split inside the status line, inside a header name, and between CR and LF.
  "/split-head": (_r, s) => dribble(s, ["HTT", "P/1.1 200 OK\r\ncontent-ty", "pe: application/json\r\nx-worker: a\r", "\ncontent-length: 11\r\n\r", '\n{"ok":true}']),
  // Chunked, with extensions, split chunk-size lines, a split CRLF and trailers.
  "/chunked": (_r, s) =>
    dribble(s, ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n", "5;ext=1\r\nhello\r", "\n", "1", "\r\n \r\n0\r\nx-trailer: t\r\n", "\r\n"]),
  // A big chunked answer in one write (many chunks per read).
  "/chunked-big": (_r, s) => {
    const parts: (string | Buffer)[] = ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"];
    for (let at = 0; at < big.length; at += 1000) {
      const piece = big.subarray(at, at + 1000);
      parts.push(`${piece.length.toString(16)}\r\n`, piece, "\r\n");
    }
    parts.push("0\r\n\r\n");
    s.write(Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p))));
  },
  // 100 Continue and 103 Early Hints before the real answer.
  "/informational": (_r, s) => dribble(s, ["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n", answer(201, '{"created":1}')]),
  // No length: the body ends when the worker closes the connection.
  "/until-close": (_r, s) =>
    dribble(s, ["HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", "part one, ", "part two"]).then(() => {
      s.end();
    }),
  // HTTP/1.0 without keep-alive, with a length.
  "/http10": (_r, s) => {
    s.end("HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nold!");
  },
  "/no-content": (_r, s) => void s.write("HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n"),
  // UTF-8 in header values: "à" is C3 A0, and A0 is U+00A0 in latin1 (which String#trim() cuts).
  "/utf8-headers": (_r, s) => void s.write(Buffer.from("HTTP/1.1 200 OK\r\nx-name: voil\xc3\xa0\r\nx-nbsp:\t\xa0x\xa0 \r\ncontent-length: 2\r\n\r\nok", "latin1")),
  // The worker says it closes idle connections after 2 s.
  "/keep-alive-2s": (_r, s) => void s.write(answer(200, '{"ok":true}', "keep-alive: timeout=2\r\n")),
  "/repeated-headers": (_r, s) => void s.write("HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-many: 1\r\nx-many: 2\r\ncontent-length: 2\r\n\r\nok"),
  "/hop-by-hop": (_r, s) => void s.write("HTTP/1.1 200 OK\r\nconnection: keep-alive, x-private\r\nx-private: secret\r\nkeep-alive: timeout=5\r\nx-kept: yes\r\ncontent-length: 2\r\n\r\nok"),
  "/garbage": (_r, s) => {
    s.end("SMTP ready\r\n\r\n");
  },
  "/bad-length": (_r, s) => {
    s.end("HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\nhello");
  },
  "/huge-head": (_r, s) => {
    s.end(`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(100_000)}\r\ncontent-length: 2\r\n\r\nok`);
  },
  // The answer stops half way: the client must not get a complete-looking answer.
  "/cut": (_r, s) => {
    s.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + "x".repeat(400));
    setTimeout(() => s.destroy(), 30);
  },
  // An images answer whose image url arrives split over three reads, with
  // more reads before it ends: the router must still learn which worker holds the image.
  "/v1/images/generations": (_r, s) => {
    const body = `{"id":"wire-img","created":1,"data":[{"b64_json":null,"url":"/v1/images/wire-img-7/content","revised_prompt":"${"p".repeat(3000)}"}]}`;
    const at = body.indexOf("wire-img-7");
    return dribble(s, [`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, at + 3)}`, body.slice(at + 3, at + 8), body.slice(at + 8, 2000), body.slice(2000)]);
  },
  "/v1/images/wire-img-7/content": (_r, s) => void s.write("HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 7\r\n\r\nPNGDATA"),
  // Content-Length and Transfer-Encoding both: refused (as node's own client does).
  "/te-and-cl": (_r, s) => void s.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n"),
  // Broken framing of several kinds (each refused by node's client too).
  "/space-before-colon": (_r, s) => void s.write("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"),
  "/bare-lf-after-chunk": (_r, s) => void s.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloX\n0\r\n\r\n"),
  "/obs-fold": (_r, s) => void s.write("HTTP/1.1 200 OK\r\nx-a: one\r\n two\r\ncontent-length: 2\r\n\r\nok"),
  // Never answers.
  "/silent": () => new Promise<void>(() => undefined),
  // Starts a 1 GB answer, sends 64 MB of it, then goes silent for good.
  "/stall-big": (_r, s) => {
    s.write("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 1073741824\r\n\r\n");
    const piece = Buffer.alloc(1 << 20, "b");
    let sent = 0;
    const more = () => {
      while (sent < 64) {
        sent++;
        if (!s.write(piece)) return void s.once("drain", more);
      }
    };
    more();
    return new Promise<void>(() => undefined);
  },
  "/echo": (r, s) => void s.write(answer(200, JSON.stringify({ method: r.method, bytes: r.body.length, te: r.headers["transfer-encoding"] ?? null, cl: r.headers["content-length"] ?? null, sha: r.body.toString("latin1").slice(0, 20) }))),
};

let worker: WireWorker;
let router: RouterProcess;

beforeAll(async () => {
  worker = new WireWorker(routes);
  const url = await worker.listen();
  router = await startRouterProcess(["--worker-urls", url, "--access-log-exclude-prefixes", "/", "--max-retries", "0"]);
});

afterAll(async () => {
  await router?.stop();
  await worker?.close();
});

describe("answers the router passes through unchanged", () => {
  it("a head split across reads (inside the status line, a header name, and CR|LF)", async () => {
    const r = await fetch(`${router.url}/split-head`);
    expect(r.status).toBe(200);
    expect(r.headers.get("x-worker")).toBe("a");
    expect(await r.json()).toEqual({ ok: true });
  });

  it("a chunked answer with extensions, split size lines, split CRLFs and trailers", async () => {
    const r = await fetch(`${router.url}/chunked`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("hello ");
  });

  it("a 300 KB chunked answer of 1,000-byte chunks, byte for byte", async () => {
    const r = await fetch(`${router.url}/chunked-big`);
    expect(Buffer.from(await r.arrayBuffer()).equals(big)).toBe(true);
  });

  it("skips 100 and 103 answers and passes on the final one", async () => {
    const r = await fetch(`${router.url}/informational`);
    expect(r.status).toBe(201);
    expect(await r.json()).toEqual({ created: 1 });
  });

  it("a body that ends when the worker closes the connection", async () => {
    const r = await fetch(`${router.url}/until-close`);
    expect(await r.text()).toBe("part one, part two");
  });

  it("an HTTP/1.0 answer, and a 204 without a body", async () => {
    expect(await (await fetch(`${router.url}/http10`)).text()).toBe("old!");
    const r = await fetch(`${router.url}/no-content`);
    expect(r.status).toBe(204);
    expect(r.headers.get("x-a")).toBe("1");
  });

  it("repeated headers stay repeated; hop-by-hop headers and the ones Connection names are dropped", async () => {
    const r = await fetch(`${router.url}/repeated-headers`);
    expect(r.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(r.headers.get("x-many")).toBe("1, 2");
    const h = await fetch(`${router.url}/hop-by-hop`);
    expect(h.headers.get("x-kept")).toBe("yes");
    expect(h.headers.get("x-private")).toBeNull();
    // The router's own keep-alive header (node's server adds it), not the worker's.
    expect(h.headers.get("keep-alive")).not.toBe("timeout=5");
  });

  it("header values reach the client byte for byte: UTF-8 'à' (C3 A0) keeps its A0, only SP/HTAB are trimmed", async () => {
    const r = await fetch(`${router.url}/utf8-headers`);
    expect(r.status).toBe(200);
    // fetch reads header bytes as latin1: back to bytes to compare.
    expect(Buffer.from(r.headers.get("x-name")!, "latin1").toString("hex")).toBe(Buffer.from("voil\xc3\xa0", "latin1").toString("hex"));
    expect(Buffer.from(r.headers.get("x-nbsp")!, "latin1").toString("hex")).toBe("a078a0");
    expect(await r.text()).toBe("ok");
  });
});

describe("answers read in pieces", () => {
  it("an image url split across reads is still remembered: its content is fetched from that worker", async () => {
    const gen = await jsonRequest(`${router.url}/v1/images/generations`, { method: "POST", json: { prompt: "x", response_format: "url" } });
    expect(gen.status).toBe(200);
    expect(gen.body.data[0].url).toBe("/v1/images/wire-img-7/content");
    expect(gen.body.data[0].revised_prompt).toHaveLength(3000);
    const img = await fetch(`${router.url}/v1/images/wire-img-7/content`);
    expect(img.status).toBe(200);
    expect(await img.text()).toBe("PNGDATA");
  });
});

describe("requests the router sends", () => {
  it("a buffered JSON body, a streamed body of known length, and a chunked body of unknown length", async () => {
    const small = await jsonRequest(`${router.url}/echo`, { method: "POST", json: { prompt: "x" } });
    expect(small.body).toMatchObject({ method: "POST", bytes: 14, cl: "14", te: null });
    // Above the 1 MiB retry buffer: streamed with its length.
    const large = Buffer.alloc(3 << 20, "z");
    const streamed = await jsonRequest(`${router.url}/echo`, { method: "PUT", body: large, headers: { "content-type": "application/octet-stream" } });
    expect(streamed.body).toMatchObject({ method: "PUT", bytes: 3 << 20, cl: String(3 << 20), te: null });
    // A client that streams without a length: the worker gets it chunked.
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode("abc"));
        c.enqueue(new TextEncoder().encode("defgh"));
        c.close();
      },
    });
    const chunked = await fetch(`${router.url}/echo`, { method: "POST", body: stream, duplex: "half" } as RequestInit);
    expect(await chunked.json()).toMatchObject({ bytes: 8, te: "chunked", cl: null, sha: "abcdefgh" });
  });

  it("a POST with an empty body carries content-length: 0", async () => {
    const r = await jsonRequest(`${router.url}/echo`, { method: "POST" });
    expect(r.body).toMatchObject({ bytes: 0, cl: "0" });
  });

  it("reuses its connection to the worker for sequential requests", async () => {
    const before = worker.seen.length;
    for (let i = 0; i < 5; i++) await jsonRequest(`${router.url}/echo`, { method: "POST", json: { i } });
    const ids = new Set(worker.seen.slice(before).map((s) => s.socketId));
    expect(ids.size).toBe(1);
  });

  it("a worker's Keep-Alive: timeout=2 is honoured: the idle connection is reused before, and closed about 1 s before the worker would", async () => {
    const first = await jsonRequest(`${router.url}/keep-alive-2s`);
    expect(first.status).toBe(200);
    const answeredAt = Date.now();
    const id = worker.seen.at(-1)!.socketId;
    // Right away, the connection is still good for another request.
    await jsonRequest(`${router.url}/keep-alive-2s`);
    const lastAnswerAt = Date.now();
    expect(worker.seen.at(-1)!.socketId).toBe(id);
    await waitUntil(() => worker.closedAt.has(id), 3_000);
    const idleMs = worker.closedAt.get(id)! - lastAnswerAt;
    // The router's limit is the worker's 2 s minus a 1 s margin (checked every 250 ms).
    expect(idleMs).toBeGreaterThanOrEqual(800);
    expect(worker.closedAt.get(id)! - answeredAt).toBeLessThan(2_000);
  });

  it("a reused connection the worker closes before answering: the request is resent on a fresh one, transparently", async () => {
    // --max-retries is 0 here: only the resend on a fresh connection can save it.
    await jsonRequest(`${router.url}/echo`, { method: "POST", json: {} });
    worker.dropped = 0;
    worker.drop = { on: "reused", count: 1 };
    const r = await jsonRequest(`${router.url}/echo`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ method: "GET" });
    expect(worker.dropped).toBe(1);
  });

  it("the resend happens once: a fresh connection that also closes is a 502", async () => {
    await jsonRequest(`${router.url}/echo`, { method: "POST", json: {} });
    worker.dropped = 0;
    worker.drop = { on: "any", count: 5 };
    try {
      const r = await jsonRequest(`${router.url}/echo`);
      expect(r.status).toBe(502);
      expect(r.body.code).toBe("upstream_unreachable");
      expect(worker.dropped).toBe(2);
    } finally {
      worker.drop = null;
    }
  });

  it("a streamed request body is never resent: the client gets the failure", async () => {
    await jsonRequest(`${router.url}/echo`, { method: "POST", json: {} });
    worker.dropped = 0;
    worker.drop = { on: "reused", count: 1 };
    try {
      // A forwarded POST body streams through the router (only generation bodies are buffered).
      const r = await jsonRequest(`${router.url}/echo`, { method: "POST", json: { streamed: true } });
      expect(r.status).toBe(502);
      expect(worker.dropped).toBe(1);
    } finally {
      worker.drop = null;
    }
  });

  it("a worker that drops every keep-alive connection after answering costs no request", async () => {
    worker.closeAfterAnswer = true;
    try {
      for (let i = 0; i < 10; i++) {
        const r = await jsonRequest(`${router.url}/echo`, { method: "POST", json: { i } });
        expect(r.status).toBe(200);
        // The next request goes out once the router has closed its end of the dropped connection.
        const socketId = worker.seen.at(-1)!.socketId;
        await waitUntil(() => worker.closedAt.has(socketId), 2000);
      }
    } finally {
      worker.closeAfterAnswer = false;
    }
  });
});

describe("answers with both framings, early answers, HTTP/2 clients", () => {
  it("Content-Length next to Transfer-Encoding is refused: 502 naming it, not a guess at the framing", async () => {
    const r = await jsonRequest(`${router.url}/te-and-cl`);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe("upstream_unreachable");
    expect(r.body.error).toMatch(/transfer-encoding next to content-length/);
  });

  it("a worker that answers 413 before reading a 64 MB upload: the client can finish sending and gets the 413", async () => {
    const { sock, text } = rawClient(router.url);
    const total = 64 << 20;
    sock.write(`POST /early-413 HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: ${total}\r\n\r\n`);
    const piece = Buffer.alloc(1 << 20, "u");
    const started = Date.now();
    for (let sent = 0; sent < total; sent += piece.length) {
      if (!sock.write(piece)) {
        const drained = await Promise.race([new Promise((r) => sock.once("drain", () => r(true))), sleep(20_000).then(() => false)]);
        // A stuck upload: the router stopped reading the client's body.
        expect(drained, `upload stuck after ${sent >> 20} MB`).toBe(true);
      }
    }
    // Every byte left this client (the router read and dropped the rest).
    expect(Date.now() - started).toBeLessThan(20_000);
    await waitUntil(() => text().includes("\r\n\r\n"), 5000);
    expect(text().startsWith("HTTP/1.1 413")).toBe(true);
    sock.destroy();
  });

  it("an HTTP/2 client's POST without content-length reaches the worker with its body", async () => {
    const session = http2Connect(router.url);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/echo", "content-type": "application/json" });
      stream.end(JSON.stringify({ prompt: "h2" }));
      let text = "";
      stream.setEncoding("utf8").on("data", (d: string) => (text += d));
      await new Promise((r) => stream.on("end", r));
      expect(JSON.parse(text)).toMatchObject({ method: "POST", bytes: 15 });
    } finally {
      session.close();
    }
  });
});

describe("worker answers that are not HTTP, or are cut", () => {
  it.each([
    ["/garbage", /not an HTTP\/1.0 or 1.1 answer/],
    ["/bad-length", /bad content-length/],
    ["/huge-head", /answer head larger than/],
    // Not a header named "Content-Length" to some parsers and framing to others: refused.
    ["/space-before-colon", /bad header line "Content-Length : 5"/],
    ["/obs-fold", /bad header line " two"/],
  ])("%s is a 502 naming the problem, and the router keeps serving", async (path, message) => {
    const r = await jsonRequest(`${router.url}${path}`);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe("upstream_unreachable");
    expect(r.body.error).toMatch(message);
    const ok = await fetch(`${router.url}/split-head`);
    expect(ok.status).toBe(200);
  });

  it("a chunk not followed by CRLF exactly cuts the client's connection: no byte after it is taken for data", async () => {
    let got: Buffer | Error;
    try {
      got = Buffer.from(await (await fetch(`${router.url}/bare-lf-after-chunk`)).arrayBuffer());
    } catch (err) {
      got = err as Error;
    }
    expect(got).toBeInstanceOf(Error);
  });

  it("an answer cut in the middle reaches the client as a cut connection, not a short body", async () => {
    let got: Buffer | Error;
    try {
      got = Buffer.from(await (await fetch(`${router.url}/cut`)).arrayBuffer());
    } catch (err) {
      got = err as Error;
    }
    expect(got).toBeInstanceOf(Error);
  });
});

describe("an https worker", () => {
  // A self-signed certificate for 127.0.0.1 made for this test only
  // (test/fixtures/tls, valid until 2126); the router trusts it through
  // NODE_EXTRA_CA_CERTS, as a user would trust a private CA.
  const certPath = `${repoRoot}/test/fixtures/tls/cert.pem`;
  const payload = Buffer.alloc(5 << 20, "0123456789abcdef");

  it("proxies over TLS: a JSON generation, and a 5 MB answer byte for byte", async () => {
    const server = createHttpsServer({ key: readFileSync(`${repoRoot}/test/fixtures/tls/key.pem`), cert: readFileSync(certPath) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/v1/models") return void res.end(modelsAnswer);
        if (req.url === "/v1/images/generations") {
          res.setHeader("content-type", "application/json");
          return void res.end(JSON.stringify({ data: [{ b64_json: null, url: null }], echoed: JSON.parse(Buffer.concat(chunks).toString()) }));
        }
        if (req.url === "/big") {
          // Streamed without a length: chunked over TLS.
          let at = 0;
          const next = () => {
            while (at < payload.length) {
              const piece = payload.subarray(at, at + 100_000);
              at += piece.length;
              if (!res.write(piece)) return void res.once("drain", next);
            }
            res.end();
          };
          return next();
        }
        res.end('{"status":"ok"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
    const tlsRouter = await startRouterProcess(["--worker-urls", url, "--access-log-exclude-prefixes", "/"], { env: { NODE_EXTRA_CA_CERTS: certPath } });
    try {
      const gen = await jsonRequest(`${tlsRouter.url}/v1/images/generations`, { method: "POST", json: { prompt: "over tls" } });
      expect(gen.status).toBe(200);
      expect(gen.body.echoed).toEqual({ prompt: "over tls" });
      const big = Buffer.from(await (await fetch(`${tlsRouter.url}/big`)).arrayBuffer());
      expect(big.length).toBe(payload.length);
      expect(big.equals(payload)).toBe(true);
    } finally {
      await tlsRouter.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("--timeout", () => {
  let timed: RouterProcess;
  beforeAll(async () => {
    timed = await startRouterProcess(["--worker-urls", `http://127.0.0.1:${worker.port}`, "--access-log-exclude-prefixes", "/", "--timeout", "1", "--max-retries", "0"]);
  });
  afterAll(async () => {
    await timed?.stop();
  });

  it("a worker that sends nothing is a 504 upstream_timeout after about --timeout", async () => {
    const started = Date.now();
    const r = await jsonRequest(`${timed.url}/silent`);
    expect(r.status).toBe(504);
    expect(r.body.code).toBe("upstream_timeout");
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a connection that sat idle longer than --timeout still times out its next request", async () => {
    expect((await jsonRequest(`${timed.url}/echo`, { method: "POST", json: { warm: 1 } })).status).toBe(200);
    await waitOut(1500, "--timeout 1 s of the idle pooled connection: it fires with nobody waiting");
    const started = Date.now();
    const r = await jsonRequest(`${timed.url}/silent`);
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a worker that goes silent after the client paused longer than --timeout is still cut off", async () => {
    const u = new URL(timed.url);
    const sock = connectSocket(Number(u.port), u.hostname);
    sock.on("error", () => undefined);
    let bytes = 0;
    sock.on("data", (d: Buffer) => (bytes += d.length));
    const closed = new Promise<number>((r) => sock.once("close", () => r(Date.now())));
    sock.write("GET /stall-big HTTP/1.1\r\nhost: x\r\n\r\n");
    // The client reads nothing for 3 s (the router pauses the worker), then drains.
    sock.pause();
    await waitOut(3000, "--timeout 1 s, three times over, while the router holds the worker back for the paused client");
    const resumed = Date.now();
    sock.resume();
    const closedAt = await Promise.race([closed, sleep(10_000).then(() => -1)]);
    expect(closedAt, "the router never cut the stalled answer").toBeGreaterThan(0);
    expect(closedAt - resumed).toBeLessThan(8000);
    expect(bytes).toBeLessThan(1 << 30);
  });

  it("a client that pauses mid-upload longer than --timeout is not the worker's timeout", async () => {
    const { sock, text } = rawClient(timed.url);
    const body = Buffer.alloc(2 << 20, "s"); // above the 1 MiB retry buffer: streamed to the worker
    sock.write(`POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: ${body.length}\r\n\r\n`);
    sock.write(body.subarray(0, 1000));
    await waitOut(2000, "--timeout 1 s, twice over, while the client sends nothing");
    sock.write(body.subarray(1000));
    await waitUntil(() => text().includes("}"), 10_000);
    expect(text().startsWith("HTTP/1.1 200")).toBe(true);
    expect(text()).toContain(`"bytes":${body.length}`);
    sock.destroy();
  });
});
