import { LauncherConfigError } from "./errors.js";

/** Where a string to split came from, so errors can name it. */
export interface ShellSplitContext {
  /** Dotted key, default "launcher.worker_extra_args". */
  key?: string;
  /** File path or request label, default "launcher config". */
  source?: string;
}

// Inside double quotes a backslash only escapes these (POSIX sh); before any
// other character it is kept, so `"C:\path"` survives unchanged.
const DOUBLE_QUOTE_ESCAPABLE = new Set(["\\", '"', "$", "`", "\n"]);

/**
 * Splits a command-line fragment the way POSIX `sh` (and Python's
 * `shlex.split`, which the original launcher used) does: whitespace separates
 * words, single quotes are literal, double quotes allow `\"`-style escapes,
 * a backslash outside quotes escapes the next character, and adjacent quoted
 * and unquoted parts join into one word (`--x='a b'` → `--x=a b`). No
 * expansion of `$VAR`, globs or `~` happens: the words go to `spawn` as-is.
 *
 * @throws LauncherConfigError on an unbalanced quote or a trailing backslash.
 */
export function splitShellArgs(input: string, context: ShellSplitContext = {}): string[] {
  const key = context.key ?? "launcher.worker_extra_args";
  const source = context.source ?? "launcher config";
  const fail = (problem: string): never => {
    throw new LauncherConfigError(`${key} in ${source} ${problem}: ${JSON.stringify(input)}`, { source, key });
  };

  const words: string[] = [];
  let word = "";
  // Distinguishes "no word yet" from an empty quoted word ('' is an argument).
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i += 1;
    } else if (ch === "\\") {
      if (i + 1 >= input.length) fail("ends with a lone backslash");
      const next = input[i + 1]!;
      // Backslash-newline is a line continuation in sh: it disappears.
      if (next !== "\n") {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (ch === "'") {
      const end = input.indexOf("'", i + 1);
      if (end === -1) fail(`has an unbalanced single quote (opened at offset ${i})`);
      word += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      const open = i;
      i += 1;
      let closed = false;
      while (i < input.length) {
        const c = input[i]!;
        if (c === '"') {
          closed = true;
          i += 1;
          break;
        }
        if (c === "\\" && i + 1 < input.length && DOUBLE_QUOTE_ESCAPABLE.has(input[i + 1]!)) {
          if (input[i + 1] !== "\n") word += input[i + 1];
          i += 2;
        } else {
          word += c;
          i += 1;
        }
      }
      if (!closed) fail(`has an unbalanced double quote (opened at offset ${open})`);
      inWord = true;
    } else {
      word += ch;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) words.push(word);
  return words;
}
