// GET /metrics as Prometheus and an operator see it: it parses, and its
// numbers agree with what clients received and what workers counted
// themselves. The tests run in order on one router.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, startRouterProcess, waitFor, type RouterProcess } from "./helpers/router.js";
import { startSimProcess, type SimProcess } from "./helpers/sim.js";

// CommonJS package without types.
const parsePrometheusTextFormat = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const IMAGE = "/v1/images/generations";
const small = { prompt: "metrics", size: "64x64", num_inference_steps: 2 };
const dashboardPath = fileURLToPath(new URL("../examples/grafana-dashboard.json", import.meta.url));

let router: RouterProcess;
let sims: SimProcess[] = [];
let victim: SimProcess;
let routerSpawnedMs = 0;

beforeAll(async () => {
  [sims, victim] = await Promise.all([Promise.all([startSimProcess([]), startSimProcess([])]), startSimProcess([])]);
  routerSpawnedMs = Date.now();
  router = await startRouterProcess(["--health-check-interval", "3600", "--eject-after-failures", "2", "--worker-urls", ...sims.map((s) => s.url), victim.url]);
  await waitFor(async () => {
    const ws = (await jsonRequest(`${router.url}/workers`)).body.workers as any[];
    return ws.length === 3 && ws.every((w) => w.state === "healthy");
  }, 10_000, "3 healthy workers");
}, 30_000);

afterAll(async () => {
  await Promise.all([router?.stop(), ...sims.map((s) => s.stop()), victim?.stop()]);
});

async function scrape(): Promise<{ text: string; contentType: string | null }> {
  const res = await fetch(`${router.url}/metrics`);
  expect(res.status).toBe(200);
  return { text: await res.text(), contentType: res.headers.get("content-type") };
}

/** Every sample line of the exposition (the test's own reading, independent of the parser). */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const l of m![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    out.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  return out;
}

function pick(all: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

const total = (xs: Sample[]) => xs.reduce((n, s) => n + s.value, 0);
const displayId = (url: string) => url.replace(/^https?:\/\//, "");

async function stats(sim: SimProcess): Promise<any> {
  return (await jsonRequest(`${sim.url}/sim/stats`)).body;
}

async function isDead(sim: SimProcess): Promise<boolean> {
  return ((await jsonRequest(`${router.url}/workers`)).body.workers as any[]).some((w) => w.url === sim.url && w.is_dead);
}

async function generate(seed: number): Promise<{ status: number; bytes: number; worker: string | null }> {
  const res = await fetch(`${router.url}${IMAGE}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...small, seed, response_format: seed % 2 ? "b64_json" : "url" }),
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes: body.length, worker: res.headers.get("x-sim-worker") };
}

describe("/metrics", () => {
  it("is the Prometheus text format and parses, every family with HELP and TYPE", async () => {
    const { text, contentType } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(text);
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const [name, type] of [
      ["sgl_router_requests_total", "COUNTER"],
      ["sgl_router_request_duration_seconds", "HISTOGRAM"],
      ["sgl_router_retries_total", "COUNTER"],
      ["sgl_router_worker_ejections_total", "COUNTER"],
      ["sgl_router_proxied_bytes_total", "COUNTER"],
      ["sgl_router_in_flight_requests", "GAUGE"],
      ["sgl_router_queued_requests", "GAUGE"],
      ["sgl_router_worker_state", "GAUGE"],
      ["sgl_router_worker_weight_version_info", "GAUGE"],
      ["sgl_router_weight_version_info", "GAUGE"],
    ] as const) {
      expect(byName.get(name)?.type, name).toBe(type);
      expect(byName.get(name)?.help.length, `${name} help`).toBeGreaterThan(0);
    }
    // Every sample belongs to a declared family.
    const declared = new Set(families.map((f) => f.name));
    for (const s of samples(text)) expect(declared.has(s.name.replace(/_(bucket|sum|count)$/, "")) || declared.has(s.name), s.name).toBe(true);
  });

  it("carries prom-client's process and Node.js metrics: CPU, memory, file descriptors, start time, heap, event-loop lag, Node version", async () => {
    const { text } = await scrape();
    const byName = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    for (const [name, type] of [
      ["process_cpu_seconds_total", "COUNTER"],
      ["process_resident_memory_bytes", "GAUGE"],
      ["process_open_fds", "GAUGE"],
      ["process_start_time_seconds", "GAUGE"],
      ["nodejs_heap_size_used_bytes", "GAUGE"],
      ["nodejs_eventloop_lag_seconds", "GAUGE"],
      ["nodejs_gc_duration_seconds", "HISTOGRAM"],
      ["nodejs_version_info", "GAUGE"],
    ] as const) {
      expect(byName.get(name)?.type, name).toBe(type);
    }
    const all = samples(text);
    const value = (name: string) => pick(all, name)[0]!.value;
    // The router's own process, not the test's: its start time is the child's, its Node is the one the test ran it with.
    const startedS = value("process_start_time_seconds");
    expect(startedS).toBeGreaterThanOrEqual(Math.floor(routerSpawnedMs / 1000) - 1);
    expect(startedS).toBeLessThan(routerSpawnedMs / 1000 + 15);
    expect(pick(all, "nodejs_version_info")[0]!.labels.version).toBe(process.version);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(value("process_open_fds")).toBeGreaterThan(3); // stdio and the listening socket at least
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
  });

  it("after N image requests: request counts, per-worker counts, histogram count and bytes agree with clients and workers", async () => {
    await Promise.all([...sims, victim].map((s) => jsonRequest(`${s.url}/sim/reset_stats`, { method: "POST" })));
    const N = 9;
    let received = 0;
    for (let i = 0; i < N; i++) {
      const a = await generate(i);
      expect(a.status).toBe(200);
      received += a.bytes;
    }
    // The router counts an exchange when its connection side is done: allow it a moment.
    const all = await waitFor(async () => {
      const s = samples((await scrape()).text);
      return total(pick(s, "sgl_router_requests_total", { route: IMAGE, status: "200" })) === N ? s : undefined;
    }, 15_000, `${N} image requests counted`);

    // Counters through the parser agree with the test's own reading.
    const families = parsePrometheusTextFormat((await scrape()).text);
    const requests = families.find((f) => f.name === "sgl_router_requests_total")!;
    const parsed = requests.metrics.filter((m) => m.labels?.route === IMAGE && m.labels?.status === "200").reduce((n, m) => n + Number(m.value), 0);
    expect(parsed).toBe(N);

    for (const sim of [...sims, victim]) {
      const own = (await stats(sim)).requests_by_route[`POST ${IMAGE}`] ?? 0;
      expect(total(pick(all, "sgl_router_requests_total", { route: IMAGE, status: "200", worker: displayId(sim.url) })), sim.url).toBe(own);
    }
    expect(pick(all, "sgl_router_request_duration_seconds_count", { route: IMAGE })[0]?.value).toBe(N);
    expect(pick(all, "sgl_router_request_duration_seconds_bucket", { route: IMAGE, le: "+Inf" })[0]?.value).toBe(N);
    expect(pick(all, "sgl_router_request_duration_seconds_sum", { route: IMAGE })[0]?.value).toBeGreaterThan(0);
    // Buckets are cumulative.
    const buckets = pick(all, "sgl_router_request_duration_seconds_bucket", { route: IMAGE }).map((s) => s.value);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]).toBeGreaterThanOrEqual(buckets[i - 1]!);
    expect(total(pick(all, "sgl_router_proxied_bytes_total"))).toBeGreaterThanOrEqual(received);
    expect(pick(all, "sgl_router_in_flight_requests")[0]?.value).toBe(0);
    expect(pick(all, "sgl_router_queued_requests")[0]?.value).toBe(0);
  });

  it("sgl_router_weight_version_info shows the version after POST /update_weights_from_disk", async () => {
    const r = await jsonRequest(`${router.url}/update_weights_from_disk`, { method: "POST", json: { model_path: "org/next-weights", weight_version: "v7" } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const all = samples((await scrape()).text);
    expect(pick(all, "sgl_router_weight_version_info").map((s) => [s.labels.version, s.value])).toEqual([["v7", 1]]);
    for (const sim of [...sims, victim]) {
      expect(pick(all, "sgl_router_worker_weight_version_info", { worker: displayId(sim.url) }).map((s) => [s.labels.version, s.value])).toEqual([["v7", 1]]);
    }
  });

  it("retries and ejections counters move when a worker answers 500", async () => {
    const bad = sims[1]!;
    const before = samples((await scrape()).text);
    const retriesBefore = total(pick(before, "sgl_router_retries_total", { route: IMAGE }));
    const ejectionsBefore = total(pick(before, "sgl_router_worker_ejections_total", { worker: displayId(bad.url) }));
    await jsonRequest(`${bad.url}/sim/config`, { method: "POST", json: { failure_rate: 1 } });
    try {
      // Three at a time, so every worker gets requests (one after another,
      // earliest-finish may keep choosing a worker it measured as faster),
      // and until the bad worker is out of rotation: on a loaded machine the
      // first 9 did not always reach it twice. Every answer is still a 200.
      // Up to 150 (~1 s of these tiny requests): while the bad worker's sleep
      // check is out it is suspect and skipped, so under load whole rounds
      // pass it by; a CI run under load needed more than 60. A router that
      // never ejects it still fails.
      for (let i = 0; i < 9 || !(await isDead(bad)); i += 3) {
        expect(i, "requests sent before the failing worker was ejected").toBeLessThan(150);
        const answers = await Promise.all([0, 1, 2].map((k) => generate(100 + i + k)));
        for (const a of answers) expect(a.status).toBe(200);
      }
    } finally {
      await jsonRequest(`${bad.url}/sim/config`, { method: "POST", json: { failure_rate: 0 } });
    }
    const after = samples((await scrape()).text);
    const failedOnBad = (await stats(bad)).requests_by_route[`POST ${IMAGE}`];
    expect(failedOnBad).toBeGreaterThanOrEqual(2);
    expect(total(pick(after, "sgl_router_retries_total", { route: IMAGE })) - retriesBefore).toBeGreaterThanOrEqual(2);
    expect(total(pick(after, "sgl_router_worker_ejections_total", { worker: displayId(bad.url) })) - ejectionsBefore).toBe(1);
    // The clients saw 200s only: no 5xx was counted for the route.
    expect(total(pick(after, "sgl_router_requests_total", { route: IMAGE }).filter((s) => s.labels.status!.startsWith("5")))).toBe(0);
  });

  it("sgl_router_worker_state shows dead for a killed worker", async () => {
    victim.kill("SIGKILL");
    await victim.exited;
    // Three at a time until a request found the victim gone (see above); all 200.
    for (let i = 0; i < 6 || !(await isDead(victim)); i += 3) {
      expect(i, "requests sent before the killed worker was out of rotation").toBeLessThan(60);
      for (const a of await Promise.all([0, 1, 2].map((k) => generate(200 + i + k)))) expect(a.status).toBe(200);
    }
    const all = samples((await scrape()).text);
    const states = Object.fromEntries(pick(all, "sgl_router_worker_state", { worker: displayId(victim.url) }).map((s) => [s.labels.state, s.value]));
    expect(states.dead).toBe(1);
    expect(Object.values(states).reduce((n, v) => n + v, 0)).toBe(1);
    expect(pick(all, "sgl_router_worker_state", { worker: displayId(sims[0]!.url), state: "healthy" })[0]?.value).toBe(1);
    expect(total(pick(all, "sgl_router_worker_ejections_total", { worker: displayId(victim.url) }))).toBeGreaterThanOrEqual(1);
  });
});

describe("examples/grafana-dashboard.json", () => {
  const dashboard = JSON.parse(readFileSync(dashboardPath, "utf8"));
  const panels: any[] = dashboard.panels.filter((p: any) => p.type !== "row");
  const exprs: string[] = panels.flatMap((p) => (p.targets ?? []).map((t: any) => t.expr));

  it("is a Grafana dashboard with a Prometheus data source variable that every panel uses", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(typeof dashboard.title).toBe("string");
    expect(typeof dashboard.uid).toBe("string");
    const ds = dashboard.templating.list.find((v: any) => v.type === "datasource");
    expect(ds).toMatchObject({ query: "prometheus" });
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: `\${${ds.name}}` });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.expr, p.title).toMatch(/sgl_router_/);
    }
    // Panels do not overlap on the 24-column grid.
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
        cells.add(`${i},${j}`);
      }
    }
  });

  it("covers request rate, latency quantiles, in-flight and queued, worker states, ejections, retries, bytes and weight versions", () => {
    const all = exprs.join("\n");
    expect(all).toMatch(/rate\(sgl_router_requests_total\{[^}]*\}\[\$__rate_interval\]\)/);
    expect(all).toMatch(/sum by \(route, status\)/);
    expect(all).toMatch(/histogram_quantile\(0\.5, sum by \(le, route\) \(rate\(sgl_router_request_duration_seconds_bucket/);
    expect(all).toMatch(/histogram_quantile\(0\.99, sum by \(le, route\) \(rate\(sgl_router_request_duration_seconds_bucket/);
    for (const name of [
      "sgl_router_in_flight_requests",
      "sgl_router_queued_requests",
      "sgl_router_worker_state",
      "sgl_router_worker_ejections_total",
      "sgl_router_retries_total",
      "sgl_router_proxied_bytes_total",
      "sgl_router_worker_weight_version_info",
    ]) {
      expect(all, name).toContain(name);
    }
  });

  it("uses only metric names that exist in /metrics output", async () => {
    // A labelled counter has no sample until it first counts (no refit or
    // restart happened here), so the names are read from the # TYPE lines;
    // histograms answer for their _bucket, _sum and _count series.
    const text = (await scrape()).text;
    const names = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(m[1]! + suffix);
    }
    for (const s of samples(text)) expect(names.has(s.name), `${s.name} is declared`).toBe(true);
    const used = new Set(exprs.flatMap((e) => e.match(/\bsgl_router_[a-zA-Z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThanOrEqual(10);
    const missing = [...used].filter((n) => !names.has(n));
    expect(missing).toEqual([]);
  });

  it("has panels for the control plane: refits, their duration, sleep/wake, RPC calls, control actions, restarts", () => {
    const all = exprs.join("\n");
    for (const name of ["sgl_router_refits_total", "sgl_router_refit_duration_seconds_bucket", "sgl_router_memory_operations_total", "sgl_router_rpc_calls_total", "sgl_router_control_actions_total", "sgl_router_managed_worker_restarts_total", "sgl_router_worker_queued_work_seconds", "sgl_router_worker_in_flight_work_seconds"]) {
      expect(all, name).toContain(name);
    }
  });
});
