// The dashboard's rollout panel, a module of its own beside app.js: the
// running rollout jobs, read from GET /rollouts (admin key: it lists every
// client's jobs) every second while the tab is visible, once app.js's admin
// reads were accepted. It uses the key app.js keeps in sessionStorage and
// leaves asking for one to app.js: on a 401 it only says so. Job ids and group names come from clients: written
// with textContent only, never as HTML.

const POLL_MS = 1000;
const KEY_STORE = "sgl-d-router-admin-key";

const $ = (sel) => document.querySelector(sel);
let reading = false;

function cell(tr, text, field, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (field) td.dataset.field = field;
  if (cls) td.className = cls;
  tr.append(td);
}

function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

function render(jobs) {
  const body = $("#rollouts tbody");
  body.replaceChildren();
  const now = Date.now();
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.id = j.id;
    const s = j.summary;
    cell(tr, j.id, "id");
    cell(tr, age(now - j.started_at_ms), "age", "num");
    cell(tr, `${s.completed + s.failed + s.cancelled} / ${j.size}`, "items", "num");
    cell(tr, j.groups === 0 ? "-" : `${s.completed_groups.length} / ${j.groups}`, "groups", "num");
    cell(tr, String(s.failed), "failed", "num");
    cell(tr, String(s.cancelled), "cancelled", "num");
    body.append(tr);
  }
  $("#no-rollouts").hidden = jobs.length > 0;
  $("#rollout-count").textContent = String(jobs.length);
}

async function read() {
  // Only once app.js's admin reads were accepted: a page without a key (read-only) makes no refused call.
  if (reading || document.documentElement.dataset.admitted !== "yes") return;
  reading = true;
  try {
    const key = sessionStorage.getItem(KEY_STORE) ?? "";
    const res = await fetch("/rollouts", { headers: key ? { accept: "application/json", authorization: `Bearer ${key}` } : { accept: "application/json" } });
    // app.js asks for the key; this panel waits for it.
    if (res.status === 401) return;
    if (!res.ok) throw new Error(`GET /rollouts: HTTP ${res.status}`);
    render((await res.json()).rollouts);
    $("#rollouts-error").hidden = true;
  } catch (err) {
    $("#rollouts-error").textContent = String(err.message ?? err);
    $("#rollouts-error").hidden = false;
  } finally {
    reading = false;
  }
}

read();
setInterval(() => document.hidden || read(), POLL_MS);
document.addEventListener("visibilitychange", () => document.hidden || read());
