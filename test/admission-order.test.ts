/**
 * The composed admission in process: which dispatch strategy each mode
 * gets, holds, and the ordering rule between the registry's judges (the
 * refit coordinator) and admission handing workers to waiting requests
 * (src/registry/registry.ts: `change`, then `settled`).
 */
import { diskRefitCommand } from "../src/refit/disk-command.js";
import { describe, expect, it } from "vitest";
import { createControl } from "../src/admin/control.js";
import { createAdmission, type Admission, type Ticket } from "../src/admission/admission.js";
import { createPolicy } from "../src/balancer/index.js";
import { createLogger } from "../src/log.js";
import type { Upstream } from "../src/proxy/upstream.js";
import { createRefitCoordinator } from "../src/refit/coordinator.js";
import { Registry, type RegistryEvent } from "../src/registry/registry.js";
import { isRoutable, type Worker } from "../src/registry/worker.js";
import { readRequestFacts, type RouteKind } from "../src/scheduler/request-facts.js";

const A = "http://10.0.0.1:30000";
const B = "http://10.0.0.2:30000";

function ticket(body: Record<string, unknown> = { prompt: "p", size: "512x512" }, kind: RouteKind = "image"): Ticket {
  const facts = readRequestFacts(kind, body, null);
  return { demand: { kind, model: facts.model }, facts, exclude: null, run: null, weightVersion: null };
}

function admissionOver(registry: Registry, mode: "policy" | "earliest-finish", cap = 1): Admission {
  return createAdmission({ registry, policy: createPolicy("least-request"), mode, maxConcurrencyPerWorker: cap, queueSize: 100, queueTimeoutMs: 10_000 });
}

const turn = () => new Promise((r) => setImmediate(r));

describe("the registry's two phases", () => {
  it("settled listeners see a change only after every change listener judged it, whatever the registration order", () => {
    const registry = new Registry();
    registry.add(A);
    const seen: string[] = [];
    // Registered first, as admission is in the router: it must still see the judge's verdict.
    registry.on("settled", (e: RegistryEvent) => seen.push(`settled ${e.type === "updated" ? e.reason : e.type} routable=${isRoutable(e.worker)}`));
    registry.on("change", (e: RegistryEvent) => {
      if (e.type === "updated" && e.reason === "load") return;
      seen.push(`change ${e.type === "updated" ? e.reason : e.type}`);
      // A judge: a worker that comes back is taken out of rotation until checked.
      if (e.type === "updated" && e.reason === "awake") registry.beginSync(e.worker.url);
    });
    registry.markSleeping(A);
    seen.length = 0;
    registry.markAwake(A);
    expect(seen).toEqual(["change awake", "change syncing", "settled awake routable=false", "settled syncing routable=false"]);
    // Load updates (one per request) have no settled phase.
    seen.length = 0;
    registry.notifyLoad(registry.get(A)!);
    expect(seen).toEqual([]);
  });
});

describe("a worker coming back while requests wait", () => {
  it("is handed to a waiter only after the refit coordinator has re-synced its weights", async () => {
    const logger = createLogger({ level: "silent" });
    const registry = new Registry();
    for (const url of [A, B]) registry.add(url, { capabilities: { instanceFingerprint: null } });
    let releaseSync: (() => void) | null = null;
    const upstream = {
      async requestJson(origin: string, _method: string, path: string) {
        if (origin === B && path === "/update_weights_from_disk" && registry.get(B)!.sync === "syncing") await new Promise<void>((r) => (releaseSync = r));
        return { status: 200, body: { success: true }, headers: {} };
      },
    } as unknown as Upstream;
    const control = createControl({ registry, upstream, health: { checkOne: async () => undefined } as never, logger, probeTimeoutMs: 1000, broadcastTimeoutMs: 1000, affinities: [] });
    // The router's order: admission made (and subscribed) before the coordinator.
    const admission = admissionOver(registry, "policy", 1);
    const refit = createRefitCoordinator({ registry, admission, control, logger, drainTimeoutMs: 1000, refitTimeoutMs: 60_000, store: null });
    const body = { model_path: "/ckpt/1", weight_version: "v1" };
    await refit.updateWeightsFromDisk(diskRefitCommand(Buffer.from(JSON.stringify(body)), body, undefined));

    // B's process goes away (its weights are unknown now); A is busy; a request waits.
    registry.healthProbeFailed(B, { message: "connection refused", refused: true }, 1);
    const busy = ticket();
    expect(admission.tryAcquire(busy)).toBe(registry.get(A));
    const waiting = ticket();
    expect(admission.tryAcquire(waiting)).toBeNull();
    let handed: { worker: Worker; version: string | null; sync: string } | null = null;
    void admission.wait(waiting, null).then((w) => (handed = { worker: w, version: w.weightVersion, sync: w.sync }));

    // B answers again: on base weights, so it must not serve before it holds v1.
    registry.healthProbeOk(B, true, 1);
    expect(registry.get(B)!.sync).toBe("syncing");
    expect(admission.queued).toBe(1);
    for (let i = 0; i < 5 && releaseSync === null; i++) await turn();
    expect(releaseSync).not.toBeNull();
    expect(handed).toBeNull();
    releaseSync!();
    for (let i = 0; i < 5 && handed === null; i++) await turn();
    expect(handed).toEqual({ worker: registry.get(B), version: "v1", sync: "in_sync" });
    admission.release(registry.get(A)!, busy, { ok: true });
    admission.release(registry.get(B)!, waiting, { ok: true });
    expect([admission.inFlight, admission.queued, registry.get(A)!.activeRequests, registry.get(B)!.activeRequests]).toEqual([0, 0, 0, 0]);
  });
});

describe("the dispatch strategy of each mode", () => {
  function pool(n: number): Registry {
    const registry = new Registry();
    for (let i = 0; i < n; i++) registry.add(`http://10.0.1.${i + 1}:8000`, { capabilities: { taskType: "T2I", videoSupport: false, models: ["m"] } });
    return registry;
  }

  it("policy: a request goes at once while a worker is under the cap, then waits first in, first out", async () => {
    const registry = pool(1);
    const admission = admissionOver(registry, "policy", 1);
    const first = ticket();
    expect(admission.tryAcquire(first)).not.toBeNull();
    const order: string[] = [];
    const [big, small] = [ticket({ prompt: "big", size: "1024x1024" }), ticket({ prompt: "small", size: "256x256" })];
    void admission.wait(small, null).then(() => order.push("small"));
    void admission.wait(big, null).then(() => order.push("big"));
    admission.release(registry.all()[0]!, first, { ok: true });
    await turn();
    expect(order).toEqual(["small"]);
    expect(admission.queued).toBe(1);
  });

  it("earliest-finish: nothing goes at once; a burst is sorted largest first before the first is sent", async () => {
    const registry = pool(1);
    let now = 0;
    const admission = createAdmission({ registry, policy: createPolicy("least-request"), mode: "earliest-finish", maxConcurrencyPerWorker: 0, queueSize: 100, queueTimeoutMs: 10_000, clock: () => now });
    // A worker the cost model knows nothing of gets the smallest request first (plan-dispatch.ts): let it learn.
    for (let i = 0; i < 2; i++) {
      const t = ticket();
      const w = admission.wait(t, null);
      await turn();
      now += 100;
      admission.release(await w, t, { ok: true });
    }
    const order: string[] = [];
    const burst = { small: ticket({ prompt: "s", size: "256x256" }), big: ticket({ prompt: "b", size: "1024x1024", num_inference_steps: 50 }) };
    for (const [name, t] of Object.entries(burst)) {
      expect(admission.tryAcquire(t)).toBeNull();
      void admission.wait(t, null).then(() => order.push(name));
    }
    await turn();
    expect(order).toEqual(["big"]);
    admission.release(registry.all()[0]!, burst.big, { ok: true });
    await turn();
    expect(order).toEqual(["big", "small"]);
  });

  it("earliest-finish: a forwarded route (no GPU slot) goes at once", () => {
    const registry = pool(1);
    const admission = admissionOver(registry, "earliest-finish", 0);
    expect(admission.tryAcquire(ticket({}, "other"))).toBe(registry.all()[0]);
  });

  for (const mode of ["policy", "earliest-finish"] as const) {
    it(`${mode}: a hold keeps every request waiting; letting go sends them, and the counters end at 0`, async () => {
      const registry = pool(2);
      const admission = admissionOver(registry, mode, 1);
      const unhold = admission.hold("refit v2");
      const tickets = [ticket(), ticket()];
      const got: Worker[] = [];
      for (const t of tickets) {
        expect(admission.tryAcquire(t)).toBeNull();
        void admission.wait(t, null).then((w) => got.push(w));
      }
      await turn();
      expect([got.length, admission.queued, admission.held]).toEqual([0, 2, true]);
      unhold();
      await turn();
      expect(new Set(got).size).toBe(2);
      tickets.forEach((t, i) => admission.release(got[i]!, t, { ok: true }));
      expect([admission.inFlight, admission.queued, ...registry.all().map((w) => w.activeRequests)]).toEqual([0, 0, 0, 0]);
      expect(await admission.whenIdle(10)).toBe(true);
    });
  }
});
