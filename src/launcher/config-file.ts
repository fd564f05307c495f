import { readFileSync } from "node:fs";
import { load, YAMLException } from "js-yaml";
import { parseLauncherConfig, type LauncherGroups } from "./config.js";
import { LauncherConfigError } from "./errors.js";

/**
 * Reads and validates a launcher YAML file (js-yaml `load`, which only builds
 * plain data: no custom tags that could run code) into its groups, as
 * {@link parseLauncherConfig}.
 *
 * @throws LauncherConfigError if the file is missing or unreadable, is not
 *   valid YAML (message gives line and column), or fails validation.
 */
export function loadLauncherConfig(path: string): LauncherGroups {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "not found" : `cannot be read (${code ?? String(error)})`;
    throw new LauncherConfigError(`launcher config file ${path} ${why}`, { source: path, cause: error });
  }
  // js-yaml refuses an empty stream; report it as the missing section it is.
  if (text.trim() === "") return parseLauncherConfig(undefined, path);
  let doc: unknown;
  try {
    doc = load(text, { filename: path });
  } catch (error) {
    if (error instanceof YAMLException) {
      const where = error.mark === undefined ? "" : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
      throw new LauncherConfigError(`YAML syntax error in ${path}${where}: ${error.reason}`, { source: path, cause: error });
    }
    throw error;
  }
  return parseLauncherConfig(doc, path);
}
