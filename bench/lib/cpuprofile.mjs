// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function,
// self time per area (node internals, undici, pino, prom-client, router
// source, GC, idle), and inclusive time of the router's own functions.
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { fileURLToPath } from "node:url";

const maps = new Map();
/** dist/src/x.js line/column -> src/x.ts:line via the build's source map (tsc writes them). */
function original(url, line, column) {
  if (!url.includes("/dist/src/")) return null;
  let map = maps.get(url);
  if (map === undefined) {
    map = null;
    try {
      const file = url.startsWith("file://") ? fileURLToPath(url) : url;
      if (existsSync(`${file}.map`)) map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, "utf8")));
    } catch {
      map = null;
    }
    maps.set(url, map);
  }
  if (!map) return null;
  const e = map.findEntry(line, column);
  if (!e || e.originalLine === undefined) return null;
  const src = e.originalSource.replace(/^.*\/src\//, "src/");
  return `${src}:${e.originalLine + 1}`;
}

function areaOf(url, name) {
  if (name === "(garbage collector)") return "GC";
  if (name === "(idle)") return "idle";
  if (name === "(program)") return "(program: native, not attributed)";
  if (!url) return name.startsWith("(") ? name : "native/builtin";
  if (url.includes("/node_modules/undici/")) return "undici";
  if (url.includes("/node_modules/pino")) return "pino";
  if (url.includes("/node_modules/prom-client/")) return "prom-client";
  if (url.includes("/node_modules/@connectrpc/")) return "connect-node";
  if (url.includes("/node_modules/")) return `node_modules/${url.split("/node_modules/")[1].split("/")[0]}`;
  if (url.includes("/dist/src/")) return "router (dist/src)";
  if (url.startsWith("node:")) {
    const mod = url.slice(5);
    if (mod.startsWith("internal/streams") || mod.startsWith("stream")) return "node: streams";
    if (mod.startsWith("_http") || mod.startsWith("http") || mod.startsWith("internal/http")) return "node: http";
    if (mod.startsWith("net") || mod.startsWith("internal/stream_base") || mod.startsWith("internal/net")) return "node: net";
    if (mod.startsWith("events") || mod.startsWith("internal/events")) return "node: events";
    if (mod.startsWith("internal/process/task_queues") || mod.startsWith("internal/timers") || mod.startsWith("timers")) return "node: ticks/timers";
    return `node: ${mod.split("/").slice(0, 2).join("/")}`;
  }
  return url;
}

/** Where a frame is: src/x.ts:line for the router (through its source map), else package/file:line. */
function where(cf) {
  if (!cf.url) return "";
  const o = original(cf.url, cf.lineNumber, cf.columnNumber);
  if (o) return o;
  let u = cf.url;
  if (u.includes("/node_modules/")) u = u.split("/node_modules/")[1];
  else if (u.includes("/dist/src/")) u = `dist/src/${u.split("/dist/src/")[1]}`;
  else u = u.replace(/^file:\/\//, "");
  return `${u}:${cf.lineNumber + 1}`;
}

export function summarise(file, { top = 30 } = {}) {
  const p = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (const n of p.nodes) self.set(n.id, 0);
  // Self time from the sample timeline (timeDeltas[i] is the gap before sample i).
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], self.get(p.samples[i]) + (p.timeDeltas[i] ?? 0));
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const idleUs = p.nodes.filter((n) => n.callFrame.functionName === "(idle)").reduce((a, n) => a + self.get(n.id), 0);
  const busyUs = totalUs - idleUs;

  const fnSelf = new Map();
  const areaSelf = new Map();
  for (const n of p.nodes) {
    const cf = n.callFrame;
    const t = self.get(n.id);
    if (t === 0) continue;
    const key = `${cf.functionName || "(anonymous)"}  ${where(cf)}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + t);
    const area = areaOf(cf.url, cf.functionName);
    areaSelf.set(area, (areaSelf.get(area) ?? 0) + t);
  }

  // Inclusive time of router functions: each sample counts once per distinct router frame on its stack.
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map();
  for (const n of p.nodes) {
    const t = self.get(n.id);
    if (t === 0) continue;
    const seen = new Set();
    for (let id = n.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id).callFrame;
      if (!cf.url.includes("/dist/src/")) continue;
      const key = `${cf.functionName || "(anonymous)"}  ${where(cf)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + t);
    }
  }

  const pct = (t) => ((t / busyUs) * 100).toFixed(1);
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    areas: sorted(areaSelf).filter(([k]) => k !== "idle").map(([k, t]) => ({ area: k, ms: Math.round(t / 1000), pctOfBusy: Number(pct(t)) })),
    topSelf: sorted(fnSelf).filter(([k]) => !k.startsWith("(idle)")).slice(0, top).map(([k, t]) => ({ fn: k, ms: Math.round(t / 1000), pctOfBusy: Number(pct(t)) })),
    routerInclusive: sorted(inclusive).slice(0, top).map(([k, t]) => ({ fn: k, ms: Math.round(t / 1000), pctOfBusy: Number(pct(t)) })),
  };
}

export function toMarkdown(s) {
  const lines = [];
  lines.push(`Profile: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy (${((s.busyMs / s.totalMs) * 100).toFixed(0)}%), ${s.idleMs.toFixed(0)} ms idle. Percentages are of busy time.`);
  lines.push("", "Self time by area:", "", "| area | ms | % busy |", "|---|---:|---:|");
  for (const a of s.areas) lines.push(`| ${a.area} | ${a.ms} | ${a.pctOfBusy} |`);
  lines.push("", "Top functions by self time:", "", "| function | ms | % busy |", "|---|---:|---:|");
  for (const f of s.topSelf) lines.push(`| \`${f.fn.replaceAll("|", "\\|")}\` | ${f.ms} | ${f.pctOfBusy} |`);
  lines.push("", "Router functions, inclusive time (self + callees):", "", "| function | ms | % busy |", "|---|---:|---:|");
  for (const f of s.routerInclusive) lines.push(`| \`${f.fn.replaceAll("|", "\\|")}\` | ${f.ms} | ${f.pctOfBusy} |`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node bench/lib/cpuprofile.mjs FILE.cpuprofile\n");
    process.exit(2);
  }
  console.log(toMarkdown(summarise(file)));
}
