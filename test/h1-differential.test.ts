/**
 * The proxy's own HTTP/1.1 answer parser (src/proxy/h1-connection.ts)
 * against node's (llhttp, through node:http with default options): the same
 * worker answers, valid and broken, split at random points, served by a raw
 * socket server. Both must give the same status, headers (names lower-cased,
 * value bytes) and body bytes, or both must refuse the answer.
 *
 * What the router changes on purpose is modelled here, not hidden: hop-by-hop
 * headers and the ones `Connection` names are dropped, repeated headers are
 * arrays, 1xx answers are skipped. Some choices differ from llhttp on
 * purpose and are not generated (example tests below pin them): versions
 * other than HTTP/1.0 and 1.1, status codes below 100, empty lines before
 * the status line and chunk sizes of more than 12 significant hex digits
 * are refused; bytes after a complete answer close the connection without
 * failing the answer (not generated either).
 */
import { request as httpRequest } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnswerHeaders, H1Handler } from "../src/proxy/h1-connection.js";
import { H1Client } from "../src/proxy/h1-pool.js";
import { hopByHop } from "../src/proxy/headers.js";

/** What a client made of an answer. */
type Outcome = { ok: true; status: number; headers: Record<string, string[]>; body: string } | { ok: false; why: string };

/** A server that answers each connection's first request with the pieces of `script`, one write each, then closes. */
class ScriptServer {
  readonly server: Server;
  script: Buffer[] = [];
  port = 0;
  readonly open = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      this.open.add(socket);
      socket.once("close", () => this.open.delete(socket));
      socket.setNoDelay(true);
      socket.on("error", () => undefined);
      const pieces = this.script;
      let got = "";
      const onData = (d: Buffer) => {
        got += d.toString("latin1");
        if (!got.includes("\r\n\r\n")) return;
        socket.removeListener("data", onData);
        void this.play(socket, pieces);
      };
      socket.on("data", onData);
    });
  }

  private async play(socket: Socket, pieces: Buffer[]): Promise<void> {
    for (let i = 0; i < pieces.length; i++) {
      if (socket.destroyed) return;
      socket.write(pieces[i]!);
      // A pause, so that each piece reaches the client as a read of its own.
      if (i < pieces.length - 1) await sleep(1);
    }
    socket.end();
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    for (const s of this.open) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, "");
}

/** node's raw headers as the router passes them on (see the file comment). */
function asRouterPassesThem(raw: string[]): Record<string, string[]> {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "connection") continue;
    const v = raw[i + 1]!.toLowerCase();
    if (v !== "close" && v !== "keep-alive") for (const n of v.split(",")) named.add(trimOws(n));
  }
  const out: Record<string, string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (hopByHop.has(name) || named.has(name)) continue;
    (out[name] ??= []).push(raw[i + 1]!);
  }
  return out;
}

function viaNode(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (o: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const req = httpRequest({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (res.complete) settle({ ok: true, status: res.statusCode!, headers: asRouterPassesThem(res.rawHeaders), body: Buffer.concat(chunks).toString("latin1") });
      });
      res.on("error", (e: Error) => settle({ ok: false, why: `node: ${e.message}` }));
      res.on("close", () => settle({ ok: false, why: "node: answer incomplete" }));
    });
    req.on("error", (e: NodeJS.ErrnoException) => settle({ ok: false, why: `node: ${e.code} ${e.message}` }));
    req.end();
  });
}

/** Collects what the proxy's client hands on. */
class Collector implements H1Handler {
  status = 0;
  headers: Record<string, string[]> = {};
  readonly chunks: Buffer[] = [];
  constructor(readonly settle: (o: Outcome) => void) {}
  onHead(status: number, headers: AnswerHeaders): void {
    this.status = status;
    for (const [k, v] of Object.entries(headers)) this.headers[k] = typeof v === "string" ? [v] : [...v];
  }
  onData(chunk: Buffer): boolean {
    this.chunks.push(Buffer.from(chunk)); // a view of a read buffer that is reused
    return true;
  }
  holdsBytes(): boolean {
    return false;
  }
  onEnd(): void {
    this.settle({ ok: true, status: this.status, headers: this.headers, body: Buffer.concat(this.chunks).toString("latin1") });
  }
  onError(err: Error): void {
    this.settle({ ok: false, why: `ours: ${err.message}` });
  }
}

async function viaOurs(port: number): Promise<Outcome> {
  // A client per answer: a connection the server has just closed is never reused.
  const client = new H1Client({ connectTimeoutMs: 5_000, timeoutMs: 5_000 });
  try {
    return await new Promise<Outcome>((resolve) => {
      client.request(`http://127.0.0.1:${port}`, { method: "GET", path: "/", headers: {}, body: null }, new Collector(resolve));
    });
  } finally {
    await client.close();
  }
}

/** Both clients must agree; when both accept, on everything. */
function expectSame(ours: Outcome, node: Outcome, wire: string): void {
  const context = `answer on the wire: ${JSON.stringify(wire)}\nours: ${JSON.stringify(ours)}\nnode: ${JSON.stringify(node)}`;
  expect(ours.ok, context).toBe(node.ok);
  if (ours.ok && node.ok) expect(ours, context).toEqual(node);
}

// ---- generators of worker answers (latin1 strings: one char per byte) ----

const tokenChars = "abcdexyzABCXYZ0129-_!#$%&'*+.^`|~";
const token = (max: number) => fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: max });
const plainValueChar = fc.constantFrom(..."abcdefxyz0129 -_/=;,.:\"()".split(""));
/** Bytes a field value may hold, though String#trim() or a UTF-8 decoder would change them. */
const rareValueChar = fc.constantFrom(" ", "\t", "\xa0", "\xc3", "\x80", "\xff", "\x85");
const badValueChar = fc.constantFrom("\x01", "\x00", "\x7f", "\x0b", "\x0c", "\r", "\n");
const oddNameChar = fc.constantFrom(" ", "\t", "@", ",", "(", '"', "/", "\xe9", "\xa0", "\x00", "\x7f", "[");

/**
 * `clean` and, in broken answers only, now and then `broken`: a broken
 * answer has a few defects, not one on every line, so that both the defects
 * and what follows them get exercised.
 */
function sometimes<T>(broken: boolean, clean: fc.Arbitrary<T>, cleanWeight: number, odd: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return broken ? fc.oneof({ weight: cleanWeight, arbitrary: clean }, { weight: 1, arbitrary: odd }) : clean;
}

/** Worker answers as latin1 strings (one char per byte); `broken`: with defects of every kind, most of them refused. */
function answers(broken: boolean): fc.Arbitrary<string> {
  const valueChar = fc.oneof({ weight: 12, arbitrary: plainValueChar }, { weight: 2, arbitrary: rareValueChar }, ...(broken ? [{ weight: 1, arbitrary: badValueChar }] : []));
  const value = fc.oneof(
    { weight: 8, arbitrary: fc.string({ unit: valueChar, maxLength: 16 }) },
    // UTF-8 "à" is C3 A0: String#trim() used to cut its last byte.
    { weight: 1, arbitrary: fc.constantFrom("voil\xc3\xa0", "\xc3\xa0", " \xa0x\xa0 ", "\t", " ", "a, b, c", "\xa0") },
  );
  const name = sometimes(
    broken,
    fc.oneof({ weight: 2, arbitrary: fc.constantFrom("content-type", "x-a", "X-Trace", "set-cookie", "x-many", "date", "Server", "Keep-Alive", "x-private", "Trailer", "TE", "upgrade") }, { weight: 1, arbitrary: token(10) }),
    6,
    fc.oneof(
      fc.tuple(token(4), oddNameChar, fc.string({ unit: fc.constantFrom(..."ab-"), maxLength: 3 })).map(([a, b, c]) => a + b + c),
      fc.tuple(oddNameChar, token(4)).map(([a, b]) => a + b),
      fc.constant(""),
    ),
  );
  const separator = sometimes(broken, fc.constantFrom(": ", ":", ":\t", ":  ", ": \t "), 10, fc.constantFrom(" :", " : ", "\t:"));
  const eol = sometimes(broken, fc.constant("\r\n"), 25, fc.constantFrom("\n", "\r", "\r\r\n", " \r\n"));
  const connection = fc.constantFrom("close", "keep-alive", "Keep-Alive", "x-private", "keep-alive, x-private", "close, X-A", "x-a , x-many");
  const headerLine = fc.oneof(
    { weight: 20, arbitrary: fc.tuple(name, separator, value, eol).map(([n, s, v, e]) => `${n}${s}${v}${e}`) },
    { weight: 2, arbitrary: fc.tuple(connection, eol).map(([v, e]) => `Connection: ${v}${e}`) },
    // obs-fold: a line continued on the next one
    ...(broken ? [{ weight: 1, arbitrary: fc.tuple(token(6), value, fc.constantFrom(" ", "\t", "  "), value).map(([n, v, ws, more]) => `${n}: ${v}\r\n${ws}${more}\r\n`) }] : []),
  );
  const statusLine = sometimes(
    broken,
    fc
      .tuple(
        fc.oneof({ weight: 5, arbitrary: fc.constant("HTTP/1.1") }, { weight: 1, arbitrary: fc.constant("HTTP/1.0") }),
        fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 200, max: 599 }) }, { weight: 1, arbitrary: fc.constantFrom(204, 304, 999) }),
        fc.oneof(
          { weight: 5, arbitrary: fc.constantFrom(" OK", " X", " Not Found", "", " ", " O\tK") },
          { weight: 1, arbitrary: fc.string({ unit: fc.oneof(plainValueChar, rareValueChar, fc.constantFrom("\x00", "\x01", "\x7f")), maxLength: 8 }).map((r) => ` ${r}`) },
        ),
        eol,
      )
      .map(([v, s, r, e]) => `${v} ${s}${r}${e}`),
    20,
    fc.constantFrom("HTTP/1.2 200 OK\r\n", "HTTP/1.1 2000 OK\r\n", "HTTP/1.1 20 OK\r\n", "HTTP/1.1 1e2 OK\r\n", "HTTP/1.1  200 OK\r\n", "HTTP/1.1 200OK\r\n", "HTTP/1.1 200\tOK\r\n", "http/1.1 200 OK\r\n", "HTTP/1.1 +20 OK\r\n", "HTTP /1.1 200 OK\r\n", "SMTP ready\r\n", "HTTP/1.1 200 O\rK\r\n", "HTTP/1.1 200 O\nK\r\n", "HTTP/1.1 102 Processing\r\n"),
  );
  const informational = fc.constantFrom("HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n", "HTTP/1.1 100 Continue\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n");
  const bodyByte = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(..."abc012\r\n ") }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => String.fromCharCode(b)) });
  const body = fc.string({ unit: bodyByte, maxLength: 40 });
  const chunkExt = fc.oneof(
    { weight: 10, arbitrary: fc.constant("") },
    { weight: 3, arbitrary: fc.constantFrom(";a=b", ";name", ';q="x y"', ';q="a\\"b"', ";a=b;c", ";a=1;b=2", ';a="\xff\t"', ";=b", ";a=", ";a;;b", ';a=b"c"') },
    ...(broken ? [{ weight: 3, arbitrary: fc.constantFrom("; a=b", " ;a=b", ";a = b", ";", ';q="unclosed', ";a=b ", ";a\x01", ";a;", ";;", ";a=b;", ";=;", ";a==b", ';a="x"y', ';a="\\\x01"', ';a="\x7f"', ";a=\xff", ";a\t=b", ';"x"', '\t') }] : []),
  );
  const chunkSize = (n: number) =>
    sometimes(broken, fc.constantFrom(n.toString(16), n.toString(16).toUpperCase(), `000${n.toString(16)}`), 10, fc.constantFrom(` ${n.toString(16)}`, `${n.toString(16)} `, `0x${n.toString(16)}`, `+${n.toString(16)}`));
  const chunkDataEnd = sometimes(broken, fc.constant("\r\n"), 25, fc.constantFrom("\n", "\r", "X\n", "\rX", "", "\r\r\n"));
  const trailers = sometimes(
    broken,
    fc.constantFrom("", "", "", "x-trailer: t\r\n", "a: 1\r\nb: 2\r\n", "Checksum:\t abc \r\n", "transfer-encoding: gzip\r\n"),
    4,
    fc.constantFrom("x t: 1\r\n", "x-t: 1\n", " x: 1\r\n", "x-t: a\x01b\r\n", ": v\r\n", "x-t: 1\r\n  more\r\n", "Content-Length: 2\r\n"),
  );

  /** A chunked body: pieces of `data`, each chunk's size line and end, the last chunk, trailers. */
  const chunked = (data: string): fc.Arbitrary<string> =>
    fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 4 }).chain((cuts) => {
      const sizes: number[] = [];
      let left = data.length;
      for (const c of cuts) {
        if (left === 0) break;
        const n = Math.min(c, left);
        sizes.push(n);
        left -= n;
      }
      if (left > 0) sizes.push(left);
      const chunks = sizes.map((n) => fc.tuple(chunkSize(n), chunkExt, eol, chunkDataEnd));
      return fc.tuple(fc.tuple(...chunks), fc.tuple(fc.constantFrom("0", "000"), chunkExt, eol), trailers, eol).map(([cs, [z, zx, ze], t, end]) => {
        let out = "";
        let at = 0;
        for (let i = 0; i < cs.length; i++) {
          const [size, ext, lineEnd, dataEnd] = cs[i]!;
          out += `${size}${ext}${lineEnd}${data.slice(at, at + sizes[i]!)}${dataEnd}`;
          at += sizes[i]!;
        }
        return `${out}${z}${zx}${ze}${t}${end}`;
      });
    });

  /** Framing headers and the body bytes that follow the head. */
  const framing: fc.Arbitrary<{ headers: string; rest: string }> = body.chain((data) =>
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(`Content-Length: ${data.length}\r\n`, `content-length:\t0${data.length}  \r\n`, `Content-Length: 000000000000000000${data.length}\r\n`).map((headers) => ({ headers, rest: data })) },
      {
        weight: 4,
        arbitrary: fc
          .tuple(fc.constantFrom("chunked", "Chunked", "CHUNKED", "gzip, chunked", "gzip,chunked", "gzip ,\t chunked", "chunked ", "gzip;q=1, chunked"), chunked(data))
          .map(([te, rest]) => ({ headers: `Transfer-Encoding: ${te}\r\n`, rest })),
      },
      { weight: 2, arbitrary: fc.constant({ headers: "", rest: data }) }, // until close
      // Not chunked at the end: until close.
      { weight: 1, arbitrary: fc.constantFrom("chunked, gzip", "gzip", "identity", "", "chunked,", "xchunked", "chunked;q=1", "chunked\t", "x chunked").map((te) => ({ headers: `Transfer-Encoding: ${te}\r\n`, rest: data })) },
      { weight: 1, arbitrary: chunked(data).map((rest) => ({ headers: "transfer-encoding: gzip\r\nTransfer-Encoding: chunked\r\n", rest })) },
      { weight: 1, arbitrary: fc.constant({ headers: `Transfer-Encoding: \r\nContent-Length: ${data.length}\r\n`, rest: data }) },
      ...(broken
        ? [
            {
              weight: 3,
              arbitrary: fc
                .constantFrom(
                  `Content-Length: ${data.length}\r\ncontent-length: ${data.length}\r\n`,
                  `Content-Length: ${data.length}\r\nContent-Length: ${data.length + 1}\r\n`,
                  `Content-Length: +${data.length}\r\n`,
                  `Content-Length: ${data.length} ${data.length}\r\n`,
                  `Content-Length: ${data.length},${data.length}\r\n`,
                  `Content-Length: ${data.length}\t\r\n`,
                  "Content-Length: \r\n",
                  `Content-Length: ${data.length + 3}\r\n`, // cut short: the server closes first
                  `Content-Length : ${data.length}\r\n`,
                  `Content-Length: ${data.length}\r\nTransfer-Encoding: chunked\r\n`,
                  `Transfer-Encoding: chunked\r\nContent-Length: ${data.length}\r\n`,
                  `Content-Length: ${data.length}\r\nTransfer-Encoding: \r\n`,
                )
                .map((headers) => ({ headers, rest: data })),
            },
          ]
        : []),
    ),
  );

  return fc
    .tuple(fc.array(informational, { maxLength: 2 }), statusLine, fc.array(headerLine, { maxLength: 6 }), framing, fc.integer({ min: 0, max: 6 }), eol)
    // A value holding CR LF right before its line's CR LF ends the head early: what
    // follows would be bytes after a complete answer, which the two clients treat
    // differently on purpose (see the file comment). CI found one such answer.
    .filter(([, status, lines, frame]) => !`${status}${lines.join("")}${frame.headers}`.includes("\r\n\r\n"))
    .map(([infos, status, lines, frame, framingAt, headEnd]) => {
      const at = Math.min(framingAt, lines.length);
      const head = [...lines.slice(0, at), frame.headers, ...lines.slice(at)].join("");
      // 204 and 304 have no body (a body there would be the next answer's bytes).
      const code = Number(status.slice(9, 12));
      const rest = code === 204 || code === 304 || (code >= 100 && code < 200) ? "" : frame.rest;
      return `${infos.join("")}${status}${head}${headEnd}${rest}`;
    });
}

/** Cut points: the answer goes out in up to 6 writes. */
const split = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 });

function pieces(wire: string, cuts: number[]): Buffer[] {
  const bytes = Buffer.from(wire, "latin1");
  const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].filter((n) => n > 0 && n < bytes.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const n of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, n));
    prev = n;
  }
  return out;
}

let server: ScriptServer;

beforeAll(async () => {
  server = new ScriptServer();
  await server.listen();
});

afterAll(async () => {
  await server?.close();
});

async function both(wire: string, cuts: number[] = []): Promise<{ ours: Outcome; node: Outcome }> {
  server.script = pieces(wire, cuts);
  const ours = await viaOurs(server.port);
  const node = await viaNode(server.port);
  return { ours, node };
}

describe("the proxy's answer parser agrees with node's (llhttp)", () => {
  it("on random answers, valid and broken, split at random points", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(answers(false), answers(true)), split, async (wire, cuts) => {
        const { ours, node } = await both(wire, cuts);
        expectSame(ours, node, wire);
      }),
      { numRuns: 3500 },
    );
  });
});

describe("the bugs the differential test found, by example", () => {
  it("a UTF-8 value ending in 'à' (C3 A0) keeps its last byte; only SP and HTAB are trimmed", async () => {
    const { ours, node } = await both("HTTP/1.1 200 OK\r\nx-name: voil\xc3\xa0\r\nx-pad: \t\xa0x\xa0 \t\r\ncontent-length: 2\r\n\r\nok", [0.5]);
    expectSame(ours, node, "");
    expect(ours).toEqual({ ok: true, status: 200, headers: { "x-name": ["voil\xc3\xa0"], "x-pad": ["\xa0x\xa0"], "content-length": ["2"] }, body: "ok" });
  });

  it.each([
    ["a space between a header name and its colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"],
    ["a header name that is not a token", "HTTP/1.1 200 OK\r\nx\xe9: 1\r\ncontent-length: 2\r\n\r\nok"],
    ["a control character in a value", "HTTP/1.1 200 OK\r\nx-a: a\x01b\r\ncontent-length: 2\r\n\r\nok"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nx-a: one\r\n two\r\ncontent-length: 2\r\n\r\nok"],
    ["a bare LF ending the status line", "HTTP/1.1 200 OK\ncontent-length: 2\r\n\r\nok"],
    ["a bare LF ending a header line", "HTTP/1.1 200 OK\r\nx-a: 1\ncontent-length: 2\r\n\r\nok"],
    ["a bare LF ending the head", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\nok"],
    ["a bare LF ending a chunk-size line", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n"],
    ["any byte but CR before the LF after chunk data", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokX\n0\r\n\r\n"],
    ["a bare LF after chunk data", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n"],
    ["whitespace in a chunk-size line", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2 ;a=b\r\nok\r\n0\r\n\r\n"],
    ["a malformed trailer", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx t: 1\r\n\r\n"],
    ["two equal Content-Length headers", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok"],
    ["Content-Length next to Transfer-Encoding", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    ["a status code written 1e2", "HTTP/1.1 1e2 OK\r\ncontent-length: 2\r\n\r\nok"],
    ["HTTP/1.2", "HTTP/1.2 200 OK\r\ncontent-length: 2\r\n\r\nok"],
  ])("%s: both refuse", async (_what, wire) => {
    const { ours, node } = await both(wire);
    expect(node.ok).toBe(false);
    expect(ours.ok).toBe(false);
  });

  it.each([
    ["trailing SP after Content-Length digits", "HTTP/1.1 200 OK\r\ncontent-length: 2  \r\n\r\nok", "ok"],
    ["leading zeros in Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: 0000000000000000002\r\n\r\nok", "ok"],
    ["chunk extensions and trailers", 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;a=b;q="x y"\r\nok\r\n0;z\r\nx-t: 1\r\n\r\n', "ok"],
    ["chunked not last: read until close", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n2\r\nok", "2\r\nok"],
  ])("%s: both accept, alike", async (_what, wire, body) => {
    const { ours, node } = await both(wire);
    expectSame(ours, node, wire);
    expect(ours).toMatchObject({ ok: true, body });
  });
});

describe("where the proxy is stricter than llhttp on purpose", () => {
  // None of these comes from a real worker; accepting them would only widen
  // what the router must reason about. Not generated by the property above.
  it.each([
    ["a version other than 1.0 and 1.1", "HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok"],
    ["a status code below 100", "HTTP/1.1 099 X\r\ncontent-length: 2\r\n\r\nok"],
    ["empty lines before the status line", "\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
  ])("%s: ours refuses, node accepts", async (_what, wire) => {
    const { ours, node } = await both(wire);
    expect(ours.ok).toBe(false);
    expect(node.ok).toBe(true);
  });

  it("a chunk size of more than 12 significant hex digits (256 TiB) is refused at its line, not waited for", async () => {
    const { ours } = await both("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000000000000\r\nok\r\n0\r\n\r\n");
    expect(ours).toMatchObject({ ok: false, why: expect.stringMatching(/bad chunk-size line "1000000000000"/) });
  });
});

describe("where the proxy is more lenient than llhttp on purpose", () => {
  it("bytes after a complete answer: ours hands on the answer and drops the connection, node fails the request", async () => {
    // The case CI's random run found: a value ending in CR LF ends a 204's head early.
    // The answer the worker meant is complete; the junk after it cannot belong to
    // this request, and the connection is not reused (it could be another answer's).
    const wire = "HTTP/1.1 204 OK\r\ncontent-type: \r\n\r\nTransfer-Encoding: chunked\r\n\r\n";
    const { ours, node } = await both(wire);
    expect(ours).toEqual({ ok: true, status: 204, headers: { "content-type": [""] }, body: "" });
    expect(node.ok).toBe(false);
  });
});
