/**
 * The README's reference tables against the code they describe, so neither
 * can drift: the error table against the closed set of error codes
 * (src/errors.ts), and the REST route tables (method, path, key) against the
 * route table the router serves (src/http/routes.ts). No process runs here:
 * both sides are data.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { errorCodes } from "../src/errors.js";
import { effectiveAuth, restRoutes, workerPath } from "../src/http/routes.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

/** The lines of the section under `heading` (up to the next heading of the same or a higher level). */
function section(heading: string): string[] {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.replace(/^#+ /, "") === heading && l.startsWith("#"));
  expect(start, `README section "${heading}"`).toBeGreaterThanOrEqual(0);
  const level = lines[start]!.indexOf(" ");
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && l.indexOf(" ") <= level);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

const cells = (row: string): string[] => row.slice(1, -1).split(" | ").map((c) => c.trim());
const codesIn = (cell: string): string[] => [...cell.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);

describe("README error table", () => {
  const rows = section("Errors")
    .filter((l) => /^\| \d{3} \|/.test(l))
    .map(cells);
  const documented = new Map<string, number>();
  for (const [status, codes] of rows) for (const code of codesIn(codes!)) documented.set(code, Number(status));

  it("lists every error code the router can answer with, at its status", () => {
    for (const [code, status] of Object.entries(errorCodes)) expect(documented.get(code), `README row for ${code}`).toBe(status);
  });

  it("lists no code the router does not have", () => {
    for (const code of documented.keys()) expect(Object.keys(errorCodes), `${code} in the README`).toContain(code);
  });
});

describe("README route tables", () => {
  // The rows only: no handler runs.
  const table = restRoutes({ admin: {} as never, data: {} as never, affinity: {} as never, fanout: {} as never, rollouts: {} as never, lora: {} as never, metrics: () => undefined, dashboard: {} as never });
  const template = (path: string) => path.replace(/\?.*$/, "").replace(/\{[^}]*\}/g, "{}");
  const sections = ["Data plane", "Admin (the original API)", "Refit (new)", "LoRA (new)"];
  const rows = sections.flatMap((s) =>
    section(s)
      .filter((l) => /^\| [A-Za-z, ]+ \| `\//.test(l))
      .map(cells)
      .map(([methods, path, key]) => ({ methods: methods!.split(/,\s*/), path: template(path!.replace(/`/g, "")), key: key! })),
  );
  /** The dashboard's static files are one row: the page names them. */
  const documentedPath = (path: string) => (path.startsWith("/dashboard") ? "/dashboard" : template(path));

  it("has a row for every method of every route, with the key the route needs", () => {
    for (const route of table) {
      const methods = Object.keys(route.methods).filter((m) => m !== "*");
      const path = documentedPath(route.path);
      const matching = rows.filter((r) => r.path === path);
      expect(matching.length, `README row for ${route.path}`).toBeGreaterThan(0);
      for (const r of matching) expect(r.key, `key of ${route.path}`).toBe(route.auth);
      for (const m of methods.length > 0 ? methods : ["any"]) {
        expect(matching.some((r) => r.methods.includes(m)), `README row for ${m} ${route.path}`).toBe(true);
      }
    }
  });

  it("says which key the paths forwarded to workers need (the admin key when one is set)", () => {
    const row = section("Data plane").find((l) => l.startsWith("| any | any other path |"));
    expect(row, "README row for any other path").toBeDefined();
    expect(cells(row!)[2]).toBe(effectiveAuth(workerPath.auth, true));
  });

  it("documents no route the router does not serve", () => {
    const served = new Set(table.map((r) => documentedPath(r.path)));
    for (const r of rows) expect(served.has(r.path), `README row ${r.methods.join(",")} ${r.path}`).toBe(true);
  });
});
