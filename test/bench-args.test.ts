import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

// The bench scripts run for minutes and start dozens of processes: `--help`
// and a misspelt option must answer at once instead of running the default bench.
const root = path.resolve(import.meta.dirname, "..");
const scripts = ["schedule", "scale", "run", "profile", "rollout-memory"];

function run(script: string, ...args: string[]) {
  return spawnSync(process.execPath, [path.join(root, "bench", `${script}.mjs`), ...args], { encoding: "utf8", timeout: 20_000 });
}

describe("bench scripts check their command line before starting anything", () => {
  for (const script of scripts) {
    it(`${script}.mjs --help prints its usage and exits 0`, () => {
      const r = run(script, "--help");
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`bench/${script}.mjs`);
    });
    it(`${script}.mjs with a misspelt option exits 2 naming it`, () => {
      const r = run(script, "--measure", "3");
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('unknown argument "--measure"');
    });
  }
  it("an option's value may start with -- (schedule.mjs --new-algorithm-args) and a missing value is named", () => {
    const r = run("schedule", "--new-algorithm-args", "--hedge off", "--measured");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--measured needs a value");
  });
});
