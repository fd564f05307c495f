/**
 * The README's RPC names against proto/: every RPC of its RPC tables, every
 * `/<package>.<Service>/<Method>` path of its buf curl and curl lines, and
 * every backticked CamelCase name (an RPC, service, message or enum, a name
 * the SDK exports, or a JavaScript global such as `Uint8Array`) must exist, so a renamed or imagined RPC (the README
 * once said `SubmitRollout` for `Run`) fails here.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/sim.js";

interface ProtoNames {
  /** Full service name (`sgl.diffusion.router.v1.AdminService`) -> its RPC names. */
  services: Map<string, Set<string>>;
  /** Short service names. */
  serviceNames: Set<string>;
  /** Messages and enums, nested ones included. */
  types: Set<string>;
}

/** Names declared in the .proto files under proto/ (comments stripped; the files are ours and plain). */
function protoNames(): ProtoNames {
  const names: ProtoNames = { services: new Map(), serviceNames: new Set(), types: new Set() };
  const files = readdirSync(join(repoRoot, "proto"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".proto"));
  for (const file of files) {
    const text = readFileSync(join(repoRoot, "proto", file), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    const pkg = /^\s*package\s+([\w.]+)\s*;/m.exec(text)?.[1] ?? "";
    for (const m of text.matchAll(/\b(?:message|enum)\s+(\w+)\s*\{/g)) names.types.add(m[1]!);
    for (const m of text.matchAll(/\bservice\s+(\w+)\s*\{([\s\S]*?)\n\}/g)) {
      names.serviceNames.add(m[1]!);
      names.services.set(`${pkg}.${m[1]!}`, new Set([...m[2]!.matchAll(/\brpc\s+(\w+)\s*\(/g)].map((r) => r[1]!)));
    }
  }
  return names;
}

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
const proto = protoNames();
const ADMIN = "sgl.diffusion.router.v1.AdminService";
const allRpcs = new Set([...proto.services.values()].flatMap((rpcs) => [...rpcs]));

/** The first-column names of every README table whose header's first cell is "RPC". */
function rpcTableNames(): string[] {
  const names: string[] = [];
  let inTable = false;
  for (const line of readme.split("\n")) {
    if (!line.startsWith("|")) {
      inTable = false;
      continue;
    }
    const first = line.split("|")[1]!.trim();
    if (first === "RPC") inTable = true;
    else if (inTable && !/^-+$/.test(first)) names.push(...[...first.matchAll(/`(\w+)`/g)].map((m) => m[1]!));
  }
  return names;
}

describe("README RPC names exist in proto/", () => {
  it("the proto files were read: both services with their RPCs", () => {
    expect(proto.services.get("sgl.diffusion.router.v1.RolloutService")).toEqual(new Set(["Run", "Cancel", "GetRollout"]));
    expect(proto.services.get(ADMIN)!.size).toBeGreaterThan(15);
    expect(proto.services.get("grpc.reflection.v1.ServerReflection")).toEqual(new Set(["ServerReflectionInfo"]));
  });

  it("the RPC table names every AdminService RPC, and nothing else", () => {
    const names = rpcTableNames();
    expect(names.length).toBeGreaterThan(15);
    for (const name of names) expect(proto.services.get(ADMIN), `README RPC table: ${name}`).toContain(name);
    expect(new Set(names)).toEqual(proto.services.get(ADMIN));
  });

  it("every /<package>.<Service>/<Method> path (buf curl, curl) is an RPC of that service", () => {
    // `/package.Service/Method` itself is the README's placeholder.
    const paths = [...readme.matchAll(/\/([a-z]\w*(?:\.[a-z]\w*)*\.[A-Z]\w*)\/([A-Z]\w*)/g)].filter((m) => m[1] !== "package.Service");
    expect(paths.length).toBeGreaterThan(5);
    for (const [path, service, method] of paths) {
      expect(proto.services.get(service!), `${path}: service ${service}`).toBeDefined();
      expect(proto.services.get(service!), path).toContain(method);
    }
  });

  it("every backticked CamelCase name is an RPC, service, message or enum of proto/, a name the SDK exports, or a JavaScript global", () => {
    const sdkNames = new Set(readFileSync(join(repoRoot, "sdk", "src", "index.ts"), "utf8").match(/\b[A-Z]\w+\b/g));
    const known = (name: string) => allRpcs.has(name) || proto.serviceNames.has(name) || proto.types.has(name) || sdkNames.has(name) || name in globalThis;
    const names = new Set([...readme.matchAll(/`([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)`/g)].map((m) => m[1]!));
    expect(names.size).toBeGreaterThan(10);
    expect([...names].filter((n) => !known(n))).toEqual([]);
  });
});
