// Sends a burst of generation jobs at once and times it until the last one
// is done: images by their answer, videos by polling GET /v1/videos/{id}
// until the job is completed. Each answer's x-sim-worker header says which
// worker served it.
import { Agent, request } from "undici";

/** One pool for the whole bench: a burst opens as many connections as it has jobs. */
const agent = new Agent({ connections: 1024, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });

/** Interval of the video status polls (the resolution of a video's end). */
export const POLL_MS = 50;

async function call(base, method, path, body) {
  const res = await request(base + path, {
    dispatcher: agent,
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a plain-text error
  }
  // x-sim-batch (sim-only): "<dispatch>/<size>", which of the sim's batches ran it (--trace).
  return { status: res.statusCode, worker: res.headers["x-sim-worker"] ?? null, batch: res.headers["x-sim-batch"] ?? null, json, text };
}

/**
 * Runs one job against `base` (the router, or a worker for the oracle).
 * Resolves { ok, worker, doneAt, error? } and never rejects.
 */
export async function runJob(base, job) {
  try {
    if (job.kind === "image") {
      const r = await call(base, "POST", "/v1/images/generations", job.body);
      return { ok: r.status === 200, worker: r.worker, batch: r.batch, doneAt: performance.now(), inferenceS: r.json?.inference_time_s ?? null, error: r.status === 200 ? undefined : `${r.status} ${r.text.slice(0, 200)}` };
    }
    const created = await call(base, "POST", "/v1/videos", job.body);
    if (created.status !== 200 || !created.json?.id) return { ok: false, worker: created.worker, doneAt: performance.now(), error: `create ${created.status} ${created.text.slice(0, 200)}` };
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const polled = await call(base, "GET", `/v1/videos/${created.json.id}`);
      const status = polled.json?.status;
      if (polled.status === 200 && status === "queued") continue;
      const ok = polled.status === 200 && status === "completed";
      return { ok, worker: created.worker, doneAt: performance.now(), error: ok ? undefined : `poll ${polled.status} ${status ?? polled.text.slice(0, 200)}` };
    }
  } catch (error) {
    return { ok: false, worker: null, doneAt: performance.now(), error: String(error?.message ?? error) };
  }
}

/** Every job at once to one URL (the router). */
export async function routedBurst(routerUrl, jobs) {
  const t0 = performance.now();
  const results = await Promise.all(jobs.map((job) => runJob(routerUrl, job)));
  return summarise(t0, jobs, results);
}

/** The oracle: each worker gets its planned jobs one at a time, directly (no router). */
export async function oracleBurst(workerUrls, plan) {
  const t0 = performance.now();
  const jobs = [];
  const results = [];
  await Promise.all(
    plan.map(async (queue, i) => {
      for (const job of queue) {
        const r = await runJob(workerUrls[i], job);
        jobs.push(job);
        results.push(r);
      }
    }),
  );
  return summarise(t0, jobs, results);
}

/**
 * The batching oracle: each worker gets all its planned jobs at once, in plan
 * order (bench/lib/batch-plan.mjs): the sim's queue batches them by its rule.
 */
export async function batchOracleBurst(workerUrls, plan) {
  const t0 = performance.now();
  const jobs = plan.flat();
  const results = await Promise.all(plan.flatMap((queue, i) => queue.map((job) => runJob(workerUrls[i], job))));
  return summarise(t0, jobs, results);
}

function summarise(t0, jobs, results) {
  return {
    makespanMs: Math.max(...results.map((r) => r.doneAt)) - t0,
    errors: results.filter((r) => !r.ok).map((r) => r.error),
    served: results.map((r, i) => ({ model: jobs[i].model, worker: r.worker, job: jobs[i], inferenceS: r.inferenceS ?? null, batch: r.batch ?? null, endMs: r.doneAt - t0 })),
  };
}

export async function closeClient() {
  await agent.close();
}

/** GET JSON (small admin calls). */
export async function getJson(url) {
  const r = await request(url, { dispatcher: agent });
  return r.body.json();
}

/** POST JSON (the sims' /sim/config); resolves the answer's JSON, throws on a status other than 200. */
export async function postJson(url, body) {
  const r = await request(url, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await r.body.json();
  if (r.statusCode !== 200) throw new Error(`POST ${url}: ${r.statusCode} ${JSON.stringify(json)}`);
  return json;
}

/** The router's hedge counters (copies started, won) from /metrics; zeros on a build without them. */
export async function hedgeCounts(routerUrl) {
  const r = await request(`${routerUrl}/metrics`, { dispatcher: agent });
  const text = await r.body.text();
  const read = (re) => Number(re.exec(text)?.[1] ?? 0);
  return { started: read(/^sgl_router_hedge_copies_started_total (\d+)$/m), won: read(/^sgl_router_hedge_copies_ended_total\{outcome="won"\} (\d+)$/m) };
}
