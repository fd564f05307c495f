// The live dashboard. Plain ES module, no build step. It reads everything
// from the router it was served by, with the admin key the operator types
// (kept in sessionStorage for this tab only):
// - WatchWorkers (AdminService, Connect protocol, server stream) tells it
//   when any worker changes; it then re-reads GET /workers (one call) so the
//   table is always the router's own view, not a patched copy;
// - GET /refit and GET /audit (recent control actions) and /metrics
//   (requests in flight and queued) are read every second while the tab is
//   visible, and at once after a worker event. A refit's begin or abort, a
//   sleep and the audit trail change no worker, so only this poll shows
//   them: once a second keeps them within 2 s of happening.
// Without a key on a router that has one, the page is read-only: it reads
// only the open /metrics (worker states, failed ones included, requests in
// flight and queued, refused calls) and asks for the key only when the
// operator clicks for more (no admin call is made, so none is refused).
// Data from workers (URLs, model names, errors) is written with
// textContent only, never as HTML.

const WATCH = "/sgl.diffusion.router.v1.AdminService/WatchWorkers";
const POLL_MS = 1000;
const KEY_STORE = "sgl-d-router-admin-key";

const $ = (sel) => document.querySelector(sel);
let key = sessionStorage.getItem(KEY_STORE) ?? "";
let refreshTimer = null;
let watchAbort = null;
// One read of the router at a time (see refresh()).
let refreshing = false;
let refreshAgain = false;
// The router refused the admin views and no key was typed: show what /metrics shows.
let readOnly = false;
// Until one admin read succeeded, the page tries one call (GET /workers) before the others and the
// stream: a keyless tab on a router with a key then costs one refusal, not four.
let admitted = false;

function authHeaders(extra = {}) {
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

/** A 401, with the key the refused call carried. */
class Unauthenticated extends Error {
  constructor(what, sentKey) {
    super(`${what}: unauthenticated`);
    this.sentKey = sentKey;
  }
}

async function getJson(path) {
  const sentKey = key;
  const res = await fetch(path, { headers: authHeaders({ accept: "application/json" }) });
  if (res.status === 401) throw new Unauthenticated(path, sentKey);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

/** Shows the key form; says so when the key the page sent was refused. */
function askForKey(err) {
  // A call that left before the operator typed a new key says nothing about the new one.
  if (err.sentKey !== key) return;
  $("#key-refused").hidden = key === "";
  if (!$("#auth").hidden) return; // already asking: do not take the focus back every poll
  $("#auth").hidden = false;
  $("#key").focus();
}

/** The router answered a call made with the current key: stop asking. */
function keyAccepted() {
  $("#auth").hidden = true;
  $("#key-refused").hidden = true;
}

$("#want-key").addEventListener("click", () => {
  $("#auth").hidden = false;
  $("#key").focus();
});

$("#auth form").addEventListener("submit", (e) => {
  e.preventDefault();
  key = $("#key").value.trim();
  readOnly = key === "" && readOnly;
  $("#readonly").hidden = !readOnly;
  sessionStorage.setItem(KEY_STORE, key);
  $("#auth").hidden = true;
  // The stream starts once the new key has been accepted (see readAndRender).
  admitted = false;
  delete document.documentElement.dataset.admitted;
  watchAbort?.abort();
  refresh();
});

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.append(td);
  return td;
}

const seconds = (ms) => (typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s` : "-");

function renderWorkers(workers) {
  const body = $("#workers tbody");
  const rows = workers.map((w) => {
    const tr = document.createElement("tr");
    tr.dataset.url = w.url;
    cell(tr, w.display_id ?? w.url);
    const state = cell(tr, w.state, `state-${w.state}`);
    state.dataset.field = "state";
    // A failed managed worker says why (the launcher's reason) where the operator looks.
    if (w.state === "failed" && w.last_error) state.title = w.last_error;
    cell(tr, (w.models ?? []).join(", ") || w.task_type || "-");
    cell(tr, w.weight_version ?? "unknown").dataset.field = "weight_version";
    cell(tr, String(w.active_requests ?? 0), "num");
    cell(tr, seconds(w.in_flight_work_ms), "num");
    cell(tr, seconds(w.queued_work_ms), "num");
    // The scatter of its times beside the speed: a noisy worker's speed is a rougher guess.
    const noise = typeof w.speed_noise === "number" ? ` ±${Math.round(w.speed_noise * 100)}%` : "";
    cell(tr, typeof w.speed === "number" ? `${w.speed.toFixed(2)}${noise}` : "-", "num").dataset.field = "speed";
    cell(tr, w.managed ? "yes" : "no");
    return tr;
  });
  body.replaceChildren(...rows);
  $("#no-workers").hidden = workers.length > 0;
  const routable = workers.filter((w) => w.state === "healthy" || w.state === "suspect").length;
  $("#worker-counts").textContent = `${routable} / ${workers.length}`;
}

const operationName = { disk: "disk refit", tensor: "tensor refit", sleep: "memory release" };

function renderRefit(refit) {
  $("#pool-version").textContent = refit.weight_version;
  const idle = refit.phase === "idle";
  $("#refit-phase").textContent = idle ? "idle" : `${operationName[refit.operation] ?? refit.operation ?? "refit"}: ${refit.phase}`;
  const detail = [`${refit.refits} refit(s)`];
  if (!idle) {
    // How long it has been open says whether a trainer forgot to commit.
    if (typeof refit.started_at_ms === "number") detail.push(`started ${Math.max(0, Math.round((Date.now() - refit.started_at_ms) / 1000))} s ago`);
    if (refit.updated_workers?.length) detail.push(`${refit.updated_workers.length} worker(s) updated`);
    // held_requests counts the router queue too: "held" only while a refit or sleep holds them.
    if (refit.held_requests) detail.push(`${refit.held_requests} held`);
  }
  $("#refit-detail").textContent = detail.join(", ");
}

function renderActions(events) {
  const rows = events.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.action = e.action;
    cell(tr, new Date(e.startedAt).toLocaleTimeString());
    cell(tr, e.action);
    cell(tr, argsText(e.args)).dataset.field = "args";
    cell(tr, e.outcome + (e.code ? ` (${e.code})` : ""), `outcome-${e.outcome}`);
    cell(tr, `${e.caller.transport}${e.caller.key !== "none" ? ` ${e.caller.key} key` : ""}${e.caller.remote ? ` ${e.caller.remote}` : ""}`);
    cell(tr, e.durationMs === null ? "running" : `${e.durationMs} ms`, "num");
    const ws = e.workers ?? [];
    const failed = ws.filter((w) => !w.ok);
    cell(tr, ws.length === 0 ? "" : failed.length === 0 ? `${ws.length} ok` : `${ws.length - failed.length} ok, ${failed.length} failed: ${failed.map((w) => w.worker).join(", ")}`);
    return tr;
  });
  $("#actions tbody").replaceChildren(...rows);
}

/** An action's arguments as `name=value`, so a row says which worker and what changed. */
function argsText(args) {
  return Object.entries(args ?? {})
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ");
}

/** The workers as /metrics shows them (no key needed): state, failed ones included, and requests in flight. */
function workersFromMetrics(text) {
  const byWorker = new Map();
  for (const m of text.matchAll(/^sgl_router_worker_state\{worker="([^"]*)",state="([^"]*)"\} 1$/gm)) byWorker.set(m[1], { url: m[1], display_id: m[1], state: m[2], models: [] });
  for (const m of text.matchAll(/^sgl_router_worker_active_requests\{worker="([^"]*)"\} (\S+)$/gm)) {
    const w = byWorker.get(m[1]);
    if (w) w.active_requests = Number(m[2]);
  }
  return [...byWorker.values()];
}

function metricSum(text, name, labels) {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, "gm"))) if (m[1].includes(labels)) sum += Number(m[2]);
  return sum;
}

function metricValue(text, name) {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

/**
 * Reads everything and redraws. Reads never overlap: one asked for while
 * another runs starts when it ends. Overlapping reads could finish out of
 * order, and a poll that read /workers before a DELETE, finishing after the
 * event's read, would put the removed worker back on the page.
 */
async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      await readAndRender();
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

async function readAndRender() {
  try {
    const metricsRead = fetch("/metrics").then((r) => (r.ok ? r.text() : ""));
    if (readOnly) {
      renderWorkers(workersFromMetrics(await metricsRead));
    } else {
      const first = admitted ? null : await getJson("/workers");
      const [workers, refit, audit] = await Promise.all([first ?? getJson("/workers"), getJson("/refit"), getJson("/audit?limit=15")]);
      keyAccepted();
      if (!admitted) {
        admitted = true;
        // The rollouts panel (rollouts.js) reads its admin route only from now on: never a refused call of its own.
        document.documentElement.dataset.admitted = "yes";
        startWatching();
      }
      renderWorkers(workers.workers);
      renderRefit(refit);
      renderActions(audit.events);
    }
    const metrics = await metricsRead;
    $("#refusals").textContent = String(metricSum(metrics, "sgl_router_control_actions_total", 'action="auth.refused"'));
    const inFlight = metricValue(metrics, "sgl_router_in_flight_requests");
    const queued = metricValue(metrics, "sgl_router_queued_requests");
    $("#request-counts").textContent = Number.isNaN(inFlight) ? "-" : `${inFlight} / ${queued}`;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("#error").hidden = true;
  } catch (err) {
    if (err instanceof Unauthenticated && err.sentKey === "" && key === "") return goReadOnly();
    if (err instanceof Unauthenticated) return askForKey(err);
    $("#error").textContent = String(err.message ?? err);
    $("#error").hidden = false;
  }
}

/** No key, and the router wants one: read-only from /metrics, no form until the operator asks. */
function goReadOnly() {
  if (readOnly) return;
  readOnly = true;
  $("#readonly").hidden = false;
  refreshAgain = true;
}

/** After a worker event: refresh soon, once for a burst of events. */
function refreshSoon() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, 50);
}

function setLive(on, text) {
  const badge = $("#live");
  badge.className = `badge ${on ? "on" : "off"}`;
  badge.textContent = text;
}

/** Connect's envelope: 1 flag byte, 4 bytes of big-endian length, the message. */
function envelope(json) {
  const bytes = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

/** WatchWorkers as a Connect server stream over fetch; reconnects with backoff. */
async function watch(signal) {
  const sentKey = key;
  const res = await fetch(WATCH, {
    method: "POST",
    headers: authHeaders({ "content-type": "application/connect+json", "connect-protocol-version": "1" }),
    body: envelope({ excludeLoad: true }),
    signal,
  });
  if (res.status === 401) throw new Unauthenticated(WATCH, sentKey);
  if (!res.ok || !res.body) throw new Error(`WatchWorkers: HTTP ${res.status}`);
  setLive(true, "live");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf);
    joined.set(value, buf.length);
    buf = joined;
    while (buf.length >= 5) {
      const flags = buf[0];
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
      if (buf.length < 5 + len) break;
      const msg = JSON.parse(decoder.decode(buf.subarray(5, 5 + len)) || "{}");
      buf = buf.subarray(5 + len);
      if (flags & 2) {
        // End of stream: an error, or the server closing it.
        if (msg.error?.code === "unauthenticated") throw new Unauthenticated(WATCH, sentKey);
        if (msg.error) throw new Error(`WatchWorkers: ${msg.error.code}: ${msg.error.message ?? ""}`);
        return;
      }
      refreshSoon();
    }
  }
}

async function startWatching() {
  watchAbort?.abort();
  const ac = new AbortController();
  watchAbort = ac;
  let backoff = 500;
  while (!ac.signal.aborted) {
    try {
      await watch(ac.signal);
      backoff = 500;
    } catch (err) {
      if (ac.signal.aborted) return;
      if (err instanceof Unauthenticated) {
        setLive(false, key === "" ? "read-only" : "needs key");
        return key === "" ? undefined : askForKey(err);
      }
    }
    setLive(false, "reconnecting");
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(10_000, backoff * 2);
  }
}

// The stream starts once an admin read succeeded (readAndRender).
refresh();
// A hidden tab does not poll (the stream still marks changes); it reads at once when shown again.
setInterval(() => document.hidden || refresh(), POLL_MS);
document.addEventListener("visibilitychange", () => document.hidden || refresh());
