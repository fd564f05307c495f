#!/usr/bin/env node
// Starts the router with examples/sim_launcher.yaml's workers (simulated, no
// GPU), sends a few images, runs a refit, and saves a screenshot of
// GET /dashboard to docs/dashboard.png with Debian's chromium through
// playwright-core. Usage: npm run build && node examples/dashboard-screenshot.mjs
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = fileURLToPath(new URL("..", import.meta.url));
const port = 30181;
const base = `http://127.0.0.1:${port}`;
// sim_launcher.yaml's workers, 20x slower than GPUs, so that work is in flight in the picture.
const yaml = join(mkdtempSync(join(tmpdir(), "sgl-dashboard-")), "launcher.yaml");
writeFileSync(yaml, readFileSync(`${root}examples/sim_launcher.yaml`, "utf8").replace(/wait_timeout: 60/g, 'wait_timeout: 60\n    worker_extra_args: "--speed 0.05"'));
const router = spawn(process.execPath, [`${root}dist/src/cli.js`, "--host", "127.0.0.1", "--port", String(port), "--launcher-config", yaml, "--log-level", "warn"], { stdio: "inherit" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  for (let i = 0; ; i++) {
    const ws = await fetch(`${base}/workers`).then((r) => r.json()).catch(() => ({ workers: [] }));
    if (ws.workers.length === 5 && ws.workers.every((w) => w.state === "healthy")) break;
    if (i > 120) throw new Error("workers did not become healthy");
    await sleep(500);
  }
  const image = (size = "512x512", steps = 8) => fetch(`${base}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "a cat", size, num_inference_steps: steps }) }).then((r) => r.arrayBuffer());
  await Promise.all(Array.from({ length: 16 }, () => image("256x256", 4)));
  await fetch(`${base}/update_weights_from_disk`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model_path: "ckpt/step-120", weight_version: "step-120" }) });
  // A burst in flight while the picture is taken: mixed sizes, so the learned speeds and queued work show.
  const burst = Promise.all(Array.from({ length: 24 }, (_, i) => image(i % 3 === 0 ? "1024x1024" : "768x768", 10)));
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 640 } });
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector("#workers tbody tr");
  await sleep(1500);
  await page.screenshot({ path: `${root}docs/dashboard.png` });
  await browser.close();
  await burst;
  console.log("wrote docs/dashboard.png");
} finally {
  router.kill("SIGTERM");
}
