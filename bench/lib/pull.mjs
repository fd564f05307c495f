// Client of the big-answer test, run as its own (pinned) process:
// `node pull.mjs URL CLIENTS EXPECTED_BYTES` starts CLIENTS downloads of URL
// at once, reads every body to the end, and prints one JSON line.
import http from "node:http";

const [url, clientsArg, expectedArg] = process.argv.slice(2);
const clients = Number(clientsArg);
const expected = Number(expectedArg);
const agent = new http.Agent({ keepAlive: false, maxSockets: clients });

function pull() {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = http.get(url, { agent }, (res) => {
      let bytes = 0;
      res.on("data", (chunk) => (bytes += chunk.length));
      res.once("end", () => resolve({ status: res.statusCode, bytes, ms: performance.now() - started, error: null }));
      res.once("error", (err) => resolve({ status: res.statusCode, bytes, ms: performance.now() - started, error: err.message }));
    });
    req.once("error", (err) => resolve({ status: 0, bytes: 0, ms: performance.now() - started, error: err.message }));
  });
}

const started = performance.now();
const results = await Promise.all(Array.from({ length: clients }, pull));
const seconds = (performance.now() - started) / 1000;
const complete = results.filter((r) => r.status === 200 && r.bytes === expected && r.error === null).length;
const totalBytes = results.reduce((a, r) => a + r.bytes, 0);
process.stdout.write(
  `${JSON.stringify({ clients, complete, failed: clients - complete, totalBytes, seconds, MBps: totalBytes / seconds / 1e6, errors: results.filter((r) => r.error || r.status !== 200).map((r) => `${r.status} ${r.error ?? ""}`) })}\n`,
);
