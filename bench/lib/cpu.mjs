// CPU accounting of a measurement: how busy each CPU was, and how much CPU
// went to processes that are not part of the bench (another job on the
// machine makes the numbers unreliable, and the bench says so).
import { readdirSync, readFileSync } from "node:fs";

const HZ = 100; // USER_HZ: /proc reports times in 1/100 s on Linux

/** Per-CPU [busy, total] jiffies, user+nice+system and steal over all CPUs. */
function statTimes() {
  const perCpu = {};
  let work = 0;
  let steal = 0;
  let total = 0;
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    if (m[1] === "") {
      work = v[0] + v[1] + v[2];
      steal = v[7] ?? 0;
      total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      continue;
    }
    const idle = v[3] + (v[4] ?? 0);
    const all = v.slice(0, 8).reduce((a, b) => a + b, 0);
    perCpu[`cpu${m[1]}`] = [all - idle, all];
  }
  return { perCpu, work, steal, total };
}

/** utime+stime (+ reaped children) of this process and all its descendants, in jiffies. */
function ourTimes() {
  const parent = new Map();
  const times = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // after "pid (comm) ": state ppid ... utime=f[11] stime=f[12] cutime=f[13] cstime=f[14]
    parent.set(Number(name), Number(f[1]));
    times.set(Number(name), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]));
  }
  let sum = 0;
  for (const [pid, t] of times) {
    for (let p = pid, depth = 0; p > 1 && depth < 20; p = parent.get(p) ?? 0, depth++) {
      if (p === process.pid) {
        sum += t;
        break;
      }
    }
  }
  return sum;
}

export function cpuSnapshot() {
  return { at: performance.now(), stat: statTimes(), ours: ourTimes() };
}

/**
 * Between two snapshots: busy percent of each CPU, the CPU used by other
 * processes (in percent of one CPU; kernel softirq time is not counted), and
 * steal: time the hypervisor gave this VM's CPUs to someone else (percent of
 * all CPU time; on a shared VM host this is noise the bench cannot remove).
 */
export function cpuDelta(a, b) {
  const busy = {};
  for (const k of Object.keys(b.stat.perCpu)) {
    const dt = b.stat.perCpu[k][1] - a.stat.perCpu[k][1];
    busy[k] = dt > 0 ? Math.round(((b.stat.perCpu[k][0] - a.stat.perCpu[k][0]) / dt) * 100) : 0;
  }
  const seconds = (b.at - a.at) / 1000;
  const foreign = Math.max(0, b.stat.work - a.stat.work - (b.ours - a.ours));
  const dTotal = b.stat.total - a.stat.total;
  return {
    busy,
    foreignCpuPct: seconds > 0 ? Math.round((foreign / HZ / seconds) * 100) : 0,
    stealPct: dTotal > 0 ? Math.round(((b.stat.steal - a.stat.steal) / dTotal) * 100) : 0,
  };
}

/**
 * Waits until other processes use less than `maxPct` of a CPU over a
 * `windowMs` window, for at most `timeoutMs`. Returns the last reading.
 */
export async function waitQuiet({ maxPct = 10, windowMs = 500, timeoutMs = 60_000, onWait } = {}) {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    const a = cpuSnapshot();
    await new Promise((r) => setTimeout(r, windowMs));
    const d = cpuDelta(a, cpuSnapshot());
    const pct = Math.max(d.foreignCpuPct, d.stealPct * 2);
    if (pct < maxPct || Date.now() > deadline) return pct;
    if (!warned && onWait) onWait(d);
    warned = true;
  }
}

/** utime+stime of one process, in microseconds (NaN if it is gone). */
export function processCpuUs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) / HZ) * 1e6;
  } catch {
    return NaN;
  }
}
