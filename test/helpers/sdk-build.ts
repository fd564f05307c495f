import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { repoRoot } from "./sim.js";

export const sdkDir = resolve(repoRoot, "sdk");
export const sdkEntry = resolve(sdkDir, "dist", "index.js");

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

function sdkIsStale(): boolean {
  let built: number;
  try {
    built = statSync(sdkEntry).mtimeMs;
  } catch {
    return true;
  }
  const inputs = [resolve(sdkDir, "src"), resolve(sdkDir, "tsconfig.json"), resolve(sdkDir, "package.json")];
  return Math.max(...inputs.map(newestMtime)) > built;
}

/** Builds sdk/dist when it is missing or older than its sources (tests that use the built SDK, not sdk/src). */
export function ensureSdkBuilt(): void {
  if (sdkIsStale()) execFileSync("npm", ["run", "build", "-w", "@sgl/diffusion-router-sdk"], { cwd: repoRoot, stdio: "pipe" });
}
