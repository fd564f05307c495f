/**
 * The dispatch core in process, over real sockets: a simulated worker and
 * tiny node:http servers that refuse, cut an answer off, or never answer.
 * The context is made here as a front door makes it, with a test sink that
 * keeps what the core wrote; admission, the proxy and outlier detection are
 * the router's own.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAdmission, type Admission } from "../src/admission/admission.js";
import { AffinityMap } from "../src/admission/affinity.js";
import { createPolicy } from "../src/balancer/index.js";
import type { AnswerSink, RequestNotes } from "../src/dispatch/answer-sink.js";
import type { PlannedContext, RouteSpec } from "../src/dispatch/context.js";
import { Dispatcher } from "../src/dispatch/dispatcher.js";
import { createRouteSpecs } from "../src/dispatch/route-specs.js";
import { ticketOf } from "../src/dispatch/ticket.js";
import { RouterError } from "../src/errors.js";
import { createOutlierDetector } from "../src/health/outlier-detector.js";
import { createLogger } from "../src/log.js";
import { H1Client } from "../src/proxy/h1-pool.js";
import type { AnswerHeaders } from "../src/proxy/h1-connection.js";
import { Registry } from "../src/registry/registry.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

/** Keeps what the core writes; `cancel()` is its receiver going away. */
class TestSink implements AnswerSink {
  status = 0;
  headers: AnswerHeaders = {};
  headSent = false;
  closed = false;
  ended = false;
  aborted = false;
  readonly chunks: Buffer[] = [];
  #listeners: (() => void)[] = [];

  head(status: number, headers: AnswerHeaders): void {
    this.status = status;
    this.headers = headers;
    this.headSent = true;
  }
  chunk(data: Buffer): boolean {
    this.chunks.push(Buffer.from(data));
    return true;
  }
  end(last: Buffer | null): void {
    if (last !== null) this.chunks.push(Buffer.from(last));
    this.ended = true;
    this.#fire();
  }
  abort(): void {
    this.aborted = true;
    this.cancel();
  }
  cancel(): void {
    this.closed = true;
    this.#fire();
  }
  holdsBytes(): boolean {
    return false;
  }
  onClose(listener: () => void): void {
    this.#listeners.push(listener);
  }
  offClose(listener: () => void): void {
    this.#listeners = this.#listeners.filter((l) => l !== listener);
  }
  onceDrain(): void {}
  #fire(): void {
    const ls = this.#listeners;
    this.#listeners = [];
    for (const l of ls) l();
  }
  get body(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

function newNotes(): RequestNotes {
  return { workerUrl: undefined, retries: 0, queueMs: undefined, serviceMs: undefined, answerBytes: 0, errorCode: undefined, hedge: undefined };
}

const logger = createLogger({ level: "silent" });
const imageBody = Buffer.from(JSON.stringify({ prompt: "a cat", response_format: "b64_json", size: "64x64", num_inference_steps: 2 }));

let sim: SimProcess;
const servers: Server[] = [];
const proxy = new H1Client({ maxConnections: 10 });

beforeAll(async () => {
  sim = await startSimProcess([]);
});
afterAll(async () => {
  await proxy.close();
  await sim?.stop();
});
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A URL where nothing listens: connecting is refused. */
async function refusingUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise((r) => server.close(r));
  return url;
}

/** A core over workers at `urls`, tried round-robin in this order. */
function setUp(urls: string[], maxConcurrencyPerWorker = 0): { admission: Admission; dispatcher: Dispatcher; image: RouteSpec } {
  const registry = new Registry();
  for (const url of urls) registry.add(url);
  const admission = createAdmission({ registry, policy: createPolicy("round-robin"), mode: "policy", maxConcurrencyPerWorker, queueSize: 100, queueTimeoutMs: 10_000 });
  const outliers = createOutlierDetector({ registry, logger, consecutiveFailures: 100, baseEjectionMs: 1_000, maxEjectionMs: 1_000, probe: () => undefined });
  const dispatcher = new Dispatcher({ admission, proxy, outliers, logger, maxRetries: 2, retryBudgetMs: 60_000, maxBodyBytes: 1 << 20 });
  const image = createRouteSpecs(admission, new AffinityMap(), new AffinityMap(), new AffinityMap()).image;
  return { admission, dispatcher, image };
}

/** A context as a front door makes it: the body held (retryable), the answer into `sink`. */
function contextFor(route: RouteSpec, sink: TestSink, notes: RequestNotes = newNotes()): PlannedContext {
  const headers = { "content-type": "application/json", "content-length": String(imageBody.length), "x-request-id": "req-1" };
  const ticket = ticketOf(route.kind, imageBody, "application/json", null);
  return { requestId: "req-1", route, method: "POST", path: "/v1/images/generations", headers, bodyBytes: imageBody, bodyStream: null, ticket, sink, notes, arrivedMs: Date.now(), signal: null };
}

describe("dispatch core", () => {
  it("done on the first worker: the answer reaches the sink whole and the slot is released", async () => {
    const { admission, dispatcher, image } = setUp([sim.url]);
    const sink = new TestSink();
    const ctx = contextFor(image, sink);
    const result = await dispatcher.dispatch(ctx);
    expect(result).toEqual({ kind: "answered", status: 200 });
    expect(sink.ended).toBe(true);
    expect(JSON.parse(sink.body).data[0].b64_json).toMatch(/^iVBOR/); // a PNG
    expect(sink.headers["x-request-id"]).toBe("req-1");
    expect(ctx.notes).toMatchObject({ workerUrl: sim.url, retries: 0, errorCode: undefined, answerBytes: sink.body.length });
    expect(ctx.notes.serviceMs).toBeGreaterThanOrEqual(0);
    expect(admission.inFlight).toBe(0);
  });

  it("a refused connection before the first byte is retried on another worker", async () => {
    const refused = await refusingUrl();
    const { admission, dispatcher, image } = setUp([refused, sim.url]);
    const sink = new TestSink();
    const ctx = contextFor(image, sink);
    const result = await dispatcher.dispatch(ctx);
    expect(result).toEqual({ kind: "answered", status: 200 });
    expect(ctx.notes.retries).toBe(1);
    expect(ctx.notes.workerUrl).toBe(sim.url);
    expect(ctx.ticket.exclude).toEqual(new Set([refused]));
    expect(admission.inFlight).toBe(0);
  });

  it("no retry once an answer byte went out: the answer is cut off, the other worker never asked", async () => {
    let asked = 0;
    const cutter = await listen((_req, res) => {
      asked++;
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"data":[');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const other = await listen((_req, res) => {
      asked += 100;
      res.end("{}");
    });
    const { admission, dispatcher, image } = setUp([cutter.url, other.url]);
    const sink = new TestSink();
    const ctx = contextFor(image, sink);
    const result = await dispatcher.dispatch(ctx);
    expect(result).toEqual({ kind: "cut_off" });
    expect(sink.status).toBe(200);
    expect(sink.body).toBe('{"data":[');
    expect(sink.aborted).toBe(true);
    expect(sink.ended).toBe(false);
    expect(asked).toBe(1);
    expect(ctx.notes).toMatchObject({ workerUrl: cutter.url, retries: 0 });
    expect(admission.inFlight).toBe(0);
  });

  it("the error code a request ends with is noted on the context", async () => {
    const { admission, dispatcher, image } = setUp([await refusingUrl()]);
    const sink = new TestSink();
    const ctx = contextFor(image, sink);
    const err = await dispatcher.dispatch(ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterError);
    expect((err as RouterError).code).toBe("upstream_unreachable");
    expect(ctx.notes.errorCode).toBe("upstream_unreachable");
    // Nothing was written: the front door answers the error.
    expect(sink.headSent).toBe(false);
    expect(admission.inFlight).toBe(0);
  });

  it("a receiver that goes away mid-request releases the worker's slot", async () => {
    const reached: (() => void)[] = [];
    const silent = await listen((req) => {
      reached.shift()?.();
      req.resume(); // never answers
    });
    const { admission, dispatcher, image } = setUp([silent.url]);
    const sink = new TestSink();
    const arrived = new Promise<void>((r) => reached.push(r));
    const done = dispatcher.dispatch(contextFor(image, sink));
    await arrived;
    expect(admission.inFlight).toBe(1);
    sink.cancel();
    expect(await done).toEqual({ kind: "receiver_gone" });
    expect(admission.inFlight).toBe(0);
    const [worker] = [...(admission.scheduling().keys())];
    expect(worker!.activeRequests).toBe(0);
  });

  it("a receiver that goes away while queued leaves the queue; the running one is unaffected", async () => {
    const reached: (() => void)[] = [];
    const answers: (() => void)[] = [];
    const slow = await listen((req, res) => {
      reached.shift()?.();
      req.resume();
      answers.push(() => res.end("{}"));
    });
    const { admission, dispatcher, image } = setUp([slow.url], 1);
    const first = new TestSink();
    const arrived = new Promise<void>((r) => reached.push(r));
    const running = dispatcher.dispatch(contextFor(image, first));
    await arrived;
    const second = new TestSink();
    const waiting = dispatcher.dispatch(contextFor(image, second));
    expect(admission.queued).toBe(1);
    second.cancel();
    expect(await waiting).toEqual({ kind: "receiver_gone" });
    expect(admission.queued).toBe(0);
    expect(admission.inFlight).toBe(1);
    answers.shift()!();
    expect(await running).toEqual({ kind: "answered", status: 200 });
    expect(admission.inFlight).toBe(0);
  });
});
