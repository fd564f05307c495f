import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import type { LevelWithSilent } from "pino";
import type { LogFormat } from "../log.js";
import { RouterError } from "../errors.js";
import { VERSION } from "../version.js";
import { expandAbbreviations, logLevelSpellings, normalizeLogLevel, parsePythonFloat, parsePythonInt } from "./argparse-compat.js";
import { routerFlags, type FlagSpec } from "./flags.js";
import { defaultRouterOptions, resolveRouterOptions, type RouterOptions } from "./options.js";

/**
 * A numeric flag, read as the original's argparse read it (Python's `int()` /
 * `float()`: `1_000`, ` 5 `, `1e3`, `inf`). Infinity is kept for the caller
 * to judge (`--timeout inf` means no limit); NaN is refused.
 */
function num(name: string, integer = false) {
  return (v: string): number => {
    const n = integer ? parsePythonInt(v) : parsePythonFloat(v);
    if (n === null || Number.isNaN(n)) throw new InvalidArgumentError(`${name} must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(v)}`);
    return n;
  };
}

function logLevel(v: string): LevelWithSilent {
  const level = normalizeLogLevel(v);
  if (level === null) throw new InvalidArgumentError(`--log-level must be one of ${logLevelSpellings.join(", ")} (any case), got ${JSON.stringify(v)}`);
  return level;
}

/** Seconds to ms, where an infinite limit (`inf`) means none (0). */
function secondsOrNone(s: number): number {
  return s === Infinity ? 0 : s * 1000;
}

/** commander's default for a flag: the router's default, in the flag's unit (seconds for durations). */
function cliDefault(spec: FlagSpec): unknown {
  if (spec.kind === "bool") return false;
  if (spec.key === "verbose" || spec.key === "logFormat" || spec.hidden || spec.kind === "secret-file") return undefined;
  const v = defaultRouterOptions[spec.key];
  if (v === null) return undefined;
  if (spec.kind === "seconds") return (v as number) / 1000;
  if (spec.kind === "list") return [...(v as readonly string[])];
  return v;
}

function parserOf(spec: FlagSpec): ((v: string) => unknown) | undefined {
  switch (spec.kind) {
    case "int":
      return num(spec.flag, true);
    case "seconds":
      return num(spec.flag);
    case "level":
      return logLevel;
    default:
      return undefined;
  }
}

/**
 * The flags of the original `sglang-d-router` (same names, same defaults),
 * plus this router's own, made from the one table in config/flags.ts so
 * `--help`, the defaults and the README agree.
 */
export function buildCommand(): Command {
  const cmd = new Command("sglang-d-router")
    .description("Router for SGLang diffusion workers: load balancing, health checks, refit and sleep/wake, streaming proxy.")
    .version(VERSION);
  for (const spec of routerFlags) {
    const option = new Option(spec.arg === undefined ? spec.flag : `${spec.flag} ${spec.arg}`, spec.help);
    const parse = parserOf(spec);
    if (parse) option.argParser(parse);
    if (spec.choices) option.choices(spec.choices as string[]);
    if (spec.env) option.env(spec.env);
    if (spec.hidden) option.hideHelp();
    const d = cliDefault(spec);
    if (d !== undefined) option.default(d);
    cmd.addOption(option);
  }
  return cmd;
}

/** What the command line gives beside the router's options: how to write logs. */
export interface CliSettings {
  options: RouterOptions;
  /** null: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | null;
}

export function settingsFromArgv(argv: string[]): CliSettings {
  const cmd = buildCommand();
  cmd.exitOverride();
  const longFlags = cmd.options.map((o) => o.long).filter((f): f is string => f !== undefined);
  cmd.parse(expandAbbreviations(argv, [...longFlags, "--help"]), { from: "user" });
  const o = cmd.opts();
  return { options: optionsFrom(o), logFormat: (o.logFormat as LogFormat | undefined) ?? null };
}

export function optionsFromArgv(argv: string[]): RouterOptions {
  return settingsFromArgv(argv).options;
}

/**
 * The key in a `secret-file` flag's file, trimmed (editors add a newline).
 *
 * @param already what the flag's plain twin (or its env) gave: both at once is refused, since which key guards the router would be a guess.
 * @throws RouterError invalid_request for a missing, unreadable or empty file (cli.ts exits 2, as for any flag error).
 */
function readSecretFile(spec: FlagSpec, path: string, already: unknown): string {
  const twin = routerFlags.find((f) => f.key === spec.key && f.kind !== "secret-file");
  const name = spec.flag.slice(2);
  if (already !== undefined && already !== null) {
    throw new RouterError("invalid_request", `option ${name}: the key is given twice, by ${spec.flag} and by ${twin?.flag ?? "another flag"}${twin?.env ? ` (or env ${twin.env})` : ""}; give one`, { details: { param: name } });
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RouterError("invalid_request", `option ${name}: ${path} ${code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? String(error)})`}`, { details: { param: name } });
  }
  const key = text.trim();
  if (key === "") throw new RouterError("invalid_request", `option ${name}: ${path} is empty; it must hold the key`, { details: { param: name } });
  return key;
}

/** The camelCase name commander stores a flag under. */
function attributeOf(flag: string): string {
  return flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Router options from commander's values, through the flag table (units, aliases, `inf`). */
function optionsFrom(o: Record<string, any>): RouterOptions {
  const out: Record<string, unknown> = {};
  for (const spec of routerFlags) {
    if (spec.key === "verbose" || spec.key === "logFormat") continue;
    let v = o[attributeOf(spec.flag)];
    if (v === undefined) continue;
    if (spec.kind === "secret-file") v = readSecretFile(spec, v as string, out[spec.key]);
    if (spec.kind === "seconds") v = spec.infinityIsNone ? secondsOrNone(v) : v * 1000;
    // nargs="*" in the original: `--worker-urls` alone is an empty list.
    if (spec.kind === "list") v = v === true ? [] : v;
    // An alias adds to what its flag gave.
    if (spec.kind === "list" && Array.isArray(out[spec.key])) v = [...(out[spec.key] as string[]), ...v];
    out[spec.key] = v;
  }
  if (o.verbose) out.logLevel = "debug";
  return resolveRouterOptions(out as Partial<RouterOptions>);
}

