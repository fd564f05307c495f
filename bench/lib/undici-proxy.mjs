#!/usr/bin/env node
// The reference the issue names: a plain undici proxy, no router logic
// (no routing, admission, retries, affinity, metrics or logs). bench/run.mjs
// starts it like the router (same CPU, same flags; it reads --port and
// --worker-urls and ignores the rest) so that the router's cost is also
// compared with what the bare Node stack costs, in the same run.
import http from "node:http";
import { createRequire } from "node:module";
const require = createRequire(new URL("../../package.json", import.meta.url));
const { Agent } = require("undici");

const argv = process.argv.slice(2);
const arg = (name) => argv[argv.indexOf(name) + 1];
const origin = arg("--worker-urls");
const agent = new Agent({ connections: 100 });
let id = 0;

http
  .createServer((req, res) => {
    // The bench waits for `routable_workers` before it measures.
    if (req.url === "/health") return void res.end('{"routable_workers":1}');
    agent.dispatch(
      { origin, path: req.url, method: req.method, headers: { "content-type": req.headers["content-type"], "content-length": req.headers["content-length"] }, body: req },
      {
        onRequestStart() {},
        onResponseStart(_c, status, headers) {
          const out = {};
          for (const k in headers) if (k !== "connection" && k !== "keep-alive") out[k] = headers[k];
          out["x-request-id"] = String(id++);
          res.writeHead(status, out);
        },
        onResponseData(c, chunk) {
          if (!res.write(chunk)) {
            c.pause();
            res.once("drain", () => c.resume());
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_c, err) {
          res.destroy(err);
        },
      },
    );
  })
  .listen(Number(arg("--port")), arg("--host") ?? "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
