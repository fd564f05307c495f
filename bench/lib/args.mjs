// A bench script's command line, checked before anything starts: these
// scripts take minutes and start dozens of processes, so `--help` or a
// misspelt option (`--measure 3`) must not silently run the default bench.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The script's header comment (its leading `//` lines after the shebang), which documents its usage. */
function usageOf(scriptUrl) {
  const lines = readFileSync(fileURLToPath(scriptUrl), "utf8").split("\n");
  const out = [];
  for (const line of lines.slice(lines[0]?.startsWith("#!") ? 1 : 0)) {
    if (!line.startsWith("//")) break;
    out.push(line.replace(/^\/\/ ?/, ""));
  }
  return out.join("\n");
}

/**
 * Checks argv against the script's options (each takes the next argument as
 * its value, even one starting with `--`, as `--new-algorithm-args "--flag v"`
 * needs) and flags. `--help`/`-h` prints the usage and exits 0; an unknown
 * argument or an option without a value prints what is wrong and the usage
 * and exits 2.
 */
export function checkArgs(scriptUrl, argv, { options = [], flags = [] }) {
  const fail = (why) => {
    process.stderr.write(`${why}\n\n${usageOf(scriptUrl)}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      process.stdout.write(`${usageOf(scriptUrl)}\n`);
      process.exit(0);
    }
    if (options.includes(a)) {
      if (argv[i + 1] === undefined) fail(`${a} needs a value`);
      i++;
    } else if (!flags.includes(a)) fail(`unknown argument ${JSON.stringify(a)}`);
  }
}
