import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RouterError } from "../errors.js";
import type { Res } from "../http/respond.js";

/**
 * The live dashboard's files (plain HTML, CSS and ES-module JS: no bundler,
 * no build server), read once at start and served from memory. The page
 * holds no data: it asks the router for everything with the caller's key,
 * so the files are open like /health.
 */
const types: Record<string, string> = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

// Only what the page itself loads; the connections it makes are to this router.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface DashboardFiles {
  serve(res: Res, name: string): void;
}

export function loadDashboardFiles(): DashboardFiles {
  // Copied next to this module by the build (package.json "build").
  const dir = fileURLToPath(new URL("./static/", import.meta.url));
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of ["index.html", "app.js", "app.css", "rollouts.js"]) {
    const ext = name.slice(name.lastIndexOf(".") + 1);
    files.set(name, { body: readFileSync(dir + name), type: types[ext]! });
  }
  return {
    serve(res, name) {
      const f = files.get(name);
      if (!f) throw new RouterError("not_found", `no dashboard file ${JSON.stringify(name)}`);
      res.writeHead(200, {
        "content-type": f.type,
        "content-length": f.body.length,
        "cache-control": "no-cache",
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
      });
      res.end(f.body);
    },
  };
}
