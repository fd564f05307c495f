/**
 * A router cut off from etcd while another one refits (issue 21), against a
 * real etcd (Debian's etcd-server), routers and a simulated worker as
 * processes: router B reaches etcd through a TCP relay the test cuts, router
 * A directly. B must end what it has in flight before its presence lease
 * can expire on etcd (after which A's refit counts it gone and loads), hold
 * new requests, and after the link is back serve the new version only.
 */
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import { retryLikeRl } from "./helpers/clients.js";
import { postRollout } from "./helpers/rollout-stream.js";
import { useEtcdRouters } from "./helpers/etcd-routers.js";
import { jsonRequest, waitFor } from "./helpers/router.js";
import type { SimProcess } from "./helpers/sim.js";
import { startTcpCut } from "./helpers/tcp-cut.js";
import { needTools } from "./helpers/tools.js";

const smallImage = { prompt: "a cat", size: "64x64", num_inference_steps: 2, response_format: "b64_json" };
/** The sim's time for `smallImage` at speed 1, in ms (src/sim/latency.ts): speeds below are set from it. */
const SMALL_IMAGE_MS = 2.0625;
const { tool, server, router, sim } = useEtcdRouters();

interface Answer {
  status: number;
  version: string | null;
  weights: string | null;
  code: string | null;
  retryAfter: string | null;
  /** Date.now() when the answer arrived. */
  at: number;
}

async function generate(base: string): Promise<Answer> {
  const res = await fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smallImage) });
  const text = await res.text();
  const code = res.status === 200 ? null : ((JSON.parse(text) as { code?: string }).code ?? null);
  return { status: res.status, version: res.headers.get("x-weight-version"), weights: res.headers.get("x-sim-weights"), code, retryAfter: res.headers.get("retry-after"), at: Date.now() };
}

const statsOf = async (s: SimProcess) => (await jsonRequest(`${s.url}/sim/stats`)).body as { weights: string; generations_open: number; weight_updates: { route: string; received_at_ms: number; generations_open: number }[] };
/** Each small image takes about `ms` on the worker from now on (a generation already running keeps its time). */
const takes = (s: SimProcess, ms: number) => jsonRequest(`${s.url}/sim/config`, { method: "POST", json: { speed: SMALL_IMAGE_MS / ms } });

describe("a router cut off from etcd while another router refits", () => {
  it("B severs its request and rollout item in flight (503 state_store_unavailable, Retry-After) before etcd counts it gone, holds new ones; A's refit loads only after B's lease expired; back on etcd, B serves the new version only, and clients retrying through B lose nothing", async (ctx) => {
    needTools(ctx, tool);
    const w = await sim();
    await takes(w, 100);
    const store = server().storeUrl();
    const relay = await startTcpCut(server().hostPort);
    const client = new Etcd3({ hosts: `http://${server().hostPort}` });
    let watching = true;
    try {
      const args = ["--routing-algorithm", "least-request"];
      const [a, b] = await Promise.all([router(["--state-store", store, ...args]), router(["--state-store", store.replace(server().hostPort, relay.hostPort), ...args])]);
      expect((await jsonRequest(`${a.url}/workers`, { method: "POST", json: { url: w.url } })).status).toBe(200);
      await waitFor(async () => ((await jsonRequest(`${b.url}/workers`)).body.workers as { state: string }[]).some((x) => x.state === "healthy"), 15_000, "the worker healthy in B");
      const base = (await statsOf(w)).weights;
      expect(await generate(b.url)).toMatchObject({ status: 200, version: "0", weights: base });

      // B's presence key, read straight from etcd: once it is gone, A's refit no longer waits for B.
      const prefix = `/${store.split("/").slice(3).join("/")}`;
      const present = Object.entries(await client.getAll().prefix(`${prefix}/routers/`).strings()).map(([k, v]) => ({ key: k, ...(JSON.parse(v) as { pid: number }) }));
      const bKey = present.find((r) => r.pid === b.proc.pid)!.key;
      let goneAt = 0;
      const watch = (async () => {
        while (watching && goneAt === 0) {
          if ((await client.get(bKey).string()) === null) goneAt = Date.now();
          else await new Promise((r) => setTimeout(r, 100));
        }
      })();

      // One slow generation of B's in flight (20 s on the worker); everything after it is fast again.
      await takes(w, 20_000);
      const slow = generate(b.url);
      await waitFor(async () => (await statsOf(w)).generations_open === 1, 15_000, "B's generation running on the worker");
      await takes(w, 100);
      // And a rollout job's item, sent to the worker at once (least-request), queued there behind it.
      const job = postRollout(b.url, { requests: [{ path: "/v1/images/generations", body: { ...smallImage, seed: 1 } }] });
      await waitFor(async () => (await statsOf(w)).generations_open === 2, 15_000, "B's rollout item at the worker");
      const cutAt = Date.now();
      relay.cut();
      const refit = jsonRequest(`${a.url}/update_weights_from_disk?drain_timeout_s=60`, { method: "POST", json: { model_path: "/ckpt/step-2", weight_version: "2" } }).then((r) => ({ ...r, at: Date.now() }));

      const severed = await slow;
      expect(severed).toMatchObject({ status: 503, code: "state_store_unavailable" });
      expect(Number(severed.retryAfter)).toBeGreaterThan(0);
      // Within the lease (10 s after its last renewal, which was before the cut), and while etcd still listed B.
      expect(severed.at - cutAt).toBeLessThan(10_000);
      expect(goneAt === 0 || severed.at < goneAt).toBe(true);
      const line = await b.waitForLog((l) => String(l.msg).startsWith("state store: this router can no longer prove"), 1_000);
      expect(line.severed).toBe(2);
      // The rollout item in flight fails with the same code (its caller retries it).
      const { lines } = await job;
      expect(lines[1]).toMatchObject({ index: 0, status: 503 });
      expect(JSON.stringify(lines[1].body)).toContain("state_store_unavailable");
      expect(lines.at(-1).summary).toMatchObject({ completed: 0, failed: 1 });

      // A new request to B is held, then answered 503 with the same code; it never reaches the worker.
      const held = await generate(b.url);
      expect(held).toMatchObject({ status: 503, code: "state_store_unavailable" });

      const done = await refit;
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      await watch;
      expect(goneAt).toBeGreaterThan(0);
      expect(severed.at).toBeLessThan(goneAt);
      expect(done.at).toBeGreaterThan(goneAt);
      // The load reached the worker only after etcd dropped B (A's refit waited for B's drain until then);
      // B's severed generation was still running there (the router cannot stop it), queued before the load.
      const updates = (await statsOf(w)).weight_updates;
      expect(updates.map((u) => u.route)).toEqual(["POST /update_weights_from_disk"]);
      expect(updates[0]!.received_at_ms).toBeGreaterThan(severed.at);
      // (The test reads etcd every 100 ms; under load a read may take a while: goneAt can be late, never early.)
      expect(updates[0]!.received_at_ms).toBeGreaterThanOrEqual(goneAt - 2_000);
      expect(await generate(a.url)).toMatchObject({ status: 200, version: "2", weights: "/ckpt/step-2" });

      // Clients retrying through B (60 x 1 s, as RL frameworks do) while it is still cut off; then the link comes back.
      const retrying = Array.from({ length: 4 }, () => retryLikeRl(() => generate(b.url), (err) => ({ status: 0, version: null, weights: String(err), code: null, retryAfter: null, at: Date.now() })));
      await new Promise((r) => setTimeout(r, 2_000));
      const restoredAt = Date.now();
      relay.restore();
      const answers = await Promise.all(retrying);
      // Every request done, each at the new version and made by the new weights: nothing of B's before the link came back.
      for (const x of answers) {
        expect(x).toMatchObject({ status: 200, version: "2", weights: "/ckpt/step-2" });
        expect(x.at).toBeGreaterThan(restoredAt);
      }
      const ws = (await jsonRequest(`${b.url}/workers`)).body.workers as { weight_version: string }[];
      expect(ws.map((x) => x.weight_version)).toEqual(["2"]);
    } finally {
      watching = false;
      client.close();
      await relay.close();
    }
  }, 120_000);
});
