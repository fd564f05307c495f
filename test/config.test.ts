// Property-based tests (fast-check) of what the router accepts as
// configuration: worker ids, the launcher's YAML section and router options.
// They run against the built code (dist/), as the router process does.
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultRouterOptions, resolveRouterOptions } from "../dist/src/config/options.js";
import { RouterError } from "../dist/src/errors.js";
import { launcherConfigDefaults, LauncherConfigError, loadLauncherConfig, parseLauncherConfig } from "../dist/src/launcher/index.js";
import { decodeWorkerId, normalizeWorkerUrl, workerIdOf } from "../dist/src/registry/worker-url.js";
import { startRouterProcess } from "./helpers/router.js";

const tmp = mkdtempSync(join(tmpdir(), "sgl-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs `f`; returns what it threw, or undefined. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Worker ids

const port = fc.integer({ min: 1, max: 65535 });
const scheme = fc.constantFrom("http", "https", "HTTP", "Https");
const hostSpelling = fc.oneof(
  fc.ipV4(),
  fc.ipV4Extended(), // decimal, hex, octal, shortened
  fc.ipV6().map((h) => `[${h}]`),
  fc.domain(),
  fc.domain().map((d) => d.toUpperCase()),
  fc.domain().map((d) => `${d}.`),
  fc.constantFrom("localhost", "LOCALHOST", "worker-1", "gpu-node.cluster.local"),
);
/** Ways a client may spell a worker URL: case, trailing slash, zero-padded port, spaces. */
const workerUrlSpelling = fc
  .tuple(scheme, hostSpelling, port, fc.constantFrom("", "/"), fc.constantFrom("", "0", "00"), fc.constantFrom("", " ", "\t"))
  // Zero-padding only up to the 5 digits a port may have.
  .map(([s, h, p, slash, pad, space]) => `${space}${s}://${h}:${`${pad}${p}`.slice(-Math.max(5, String(p).length))}${slash}${space}`);

/** A canonical URL, or undefined when the spelling is refused (blocked or invalid host). */
function canonicalOf(spelling: string): string | undefined {
  try {
    return normalizeWorkerUrl(spelling);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterError);
    expect((err as RouterError).code).toBe("invalid_worker_url");
    return undefined;
  }
}

describe("worker ids (decodeWorkerId / workerIdOf)", () => {
  it("property: every canonical worker URL round-trips through its id, which is one path segment", () => {
    let accepted = 0;
    fc.assert(
      fc.property(workerUrlSpelling, (spelling) => {
        const canonical = canonicalOf(spelling);
        if (canonical === undefined) return;
        accepted++;
        expect(canonical).toMatch(/^https?:\/\/[^/?#@\s]+:\d{1,5}$/);
        expect(normalizeWorkerUrl(canonical)).toBe(canonical);
        const id = workerIdOf(canonical);
        expect(id).not.toMatch(/[/?#\s]/);
        expect(decodeWorkerId(id)).toBe(canonical);
        // The raw spelling is accepted as an id too (clients that decode %2F).
        expect(decodeWorkerId(canonical)).toBe(canonical);
        expect(decodeWorkerId(encodeURIComponent(spelling.trim()))).toBe(canonical);
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(1500);
  });

  it("property: arbitrary strings never throw anything but a 400 RouterError", () => {
    const anyId = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.string({ unit: "grapheme" }),
      fc.string().map(encodeURIComponent),
      fc.string().map((s) => `http://${s}:80`),
      fc.string().map((s) => encodeURIComponent(`http://${s}`)),
      fc.stringMatching(/^(%[0-9A-Fa-f]{0,2}|[a-z:/.\[\]@])*$/),
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      workerUrlSpelling,
    );
    fc.assert(
      fc.property(anyId, (id) => {
        let out: string;
        try {
          out = decodeWorkerId(id);
        } catch (err) {
          expect(err).toBeInstanceOf(RouterError);
          expect(["invalid_request", "invalid_worker_url"]).toContain((err as RouterError).code);
          expect((err as RouterError).status).toBe(400);
          expect((err as RouterError).details.param).toMatch(/^(worker_id|url)$/);
          return;
        }
        // Whatever is accepted is canonical and stable.
        expect(normalizeWorkerUrl(out)).toBe(out);
        expect(decodeWorkerId(workerIdOf(out))).toBe(out);
      }),
      { numRuns: 3000 },
    );
  });
});

// ---------------------------------------------------------------------------
// Launcher config

const launcherKeys = Object.keys({ model: 1, ...launcherConfigDefaults });

/** Values a YAML document can hold (js-yaml core schema): JSON values plus NaN and infinities. */
const yamlLeaf = fc.oneof(
  fc.string(),
  fc.constantFrom("", "  ", "sim", "local", "Qwen/Qwen-Image", "0,1", "--flag 'x y'", '"open', "tail\\"),
  fc.integer(),
  fc.integer({ min: -2, max: 70_000 }),
  fc.double(), // includes NaN, ±Infinity, -0
  fc.boolean(),
  fc.constant(null),
);
const yamlValue = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true }, yamlLeaf, fc.array(tie("value"), { maxLength: 4 }), tie("mapping")),
  mapping: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom(...launcherKeys, "__proto__", "constructor", "toString", "num_worker", "Model")), tie("value"), {
    maxKeys: 5,
  }),
})).value;
/** A launcher section: mostly known keys, with arbitrary values. */
const launcherSection = fc.dictionary(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...launcherKeys) }, { weight: 1, arbitrary: fc.string() }), yamlValue, { maxKeys: 8 });

function expectConfigError(err: unknown, what: string): void {
  expect(err, what).toBeInstanceOf(LauncherConfigError);
  const e = err as LauncherConfigError;
  expect(e.key, `${what}: ${e.message}`).toMatch(/^launcher(\[\d+\])?(\.|$)/);
  expect(e.message).toContain(e.key === "launcher" ? "launcher" : e.key!);
  expect(e.source).toBe("cfg.yaml");
  expect(e.status).toBe(400);
}

describe("launcher config (parseLauncherConfig)", () => {
  it("property: arbitrary values under launcher: (a section, a list of them, anything) either load or fail with a LauncherConfigError naming the key", () => {
    fc.assert(
      fc.property(fc.oneof(launcherSection, fc.array(launcherSection, { maxLength: 3 }), yamlValue), (section) => {
        const doc = { launcher: section };
        let groups: ReturnType<typeof parseLauncherConfig>;
        try {
          groups = parseLauncherConfig(doc, "cfg.yaml");
        } catch (err) {
          expectConfigError(err, JSON.stringify(section));
          return;
        }
        expect(Object.isFrozen(groups)).toBe(true);
        expect(groups.length).toBe(Array.isArray(section) ? section.length : 1);
        for (const config of groups) {
          expect(Object.isFrozen(config)).toBe(true);
          expect(Object.keys(config).sort()).toEqual([...launcherKeys].sort());
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("property: a document without a launcher mapping fails naming launcher", () => {
    fc.assert(
      fc.property(fc.oneof(yamlValue, fc.constant(undefined)), (doc) => {
        const err = thrown(() => parseLauncherConfig(doc, "cfg.yaml"));
        if (err === undefined) {
          // Only a mapping with a valid launcher section loads.
          expect(typeof doc === "object" && doc !== null && Object.hasOwn(doc, "launcher")).toBe(true);
          return;
        }
        expectConfigError(err, JSON.stringify(doc));
      }),
      { numRuns: 1000 },
    );
  });

  const validSection = fc
    .record(
      {
        backend: fc.constantFrom("local", "sim"),
        model: fc.string({ minLength: 1 }).filter((s) => s.trim() !== ""),
        num_workers: fc.integer({ min: 1, max: 8 }),
        num_gpus_per_worker: fc.integer({ min: 1, max: 8 }),
        worker_host: fc.oneof(fc.ipV4(), fc.domain(), fc.constant(" 127.0.0.1 ")),
        worker_base_port: fc.integer({ min: 1, max: 65534 }),
        worker_extra_args: fc.array(fc.stringMatching(/^--?[a-z][a-z0-9-]*(=[a-z0-9./]+)?$/), { maxLength: 4 }).map((a) => a.join(" ")),
        wait_timeout: fc.double({ min: 0.001, max: 1e6, noNaN: true }),
        master_port_base: fc.integer({ min: 1, max: 65535 }),
        scheduler_port_base: fc.integer({ min: 1, max: 65535 }),
        internal_port_stride: fc.integer({ min: 0, max: 10_000 }),
        log_prefix: fc.string(),
        gpu_ids_kind: fc.constantFrom("none", "null", "empty", "strings", "numbers"),
      },
      { requiredKeys: ["model", "gpu_ids_kind"] },
    )
    .map(({ gpu_ids_kind, ...section }) => {
      const n = section.num_workers ?? 1;
      const out: Record<string, unknown> = { ...section };
      if (gpu_ids_kind === "null") out.worker_gpu_ids = null;
      if (gpu_ids_kind === "empty") out.worker_gpu_ids = [];
      if (gpu_ids_kind === "strings") out.worker_gpu_ids = Array.from({ length: n }, (_, i) => ` ${2 * i},${2 * i + 1} `);
      if (gpu_ids_kind === "numbers") out.worker_gpu_ids = Array.from({ length: n }, (_, i) => i);
      return out;
    });

  it("property: valid sections come back frozen, with every default filled and values normalized", () => {
    fc.assert(
      fc.property(validSection, (section) => {
        const groups = parseLauncherConfig({ launcher: section, router: { ignored: true } }, "cfg.yaml");
        expect(groups).toHaveLength(1);
        const config = groups[0]!;
        const ids = section.worker_gpu_ids as (string | number)[] | null | undefined;
        const expected = {
          ...launcherConfigDefaults,
          ...section,
          model: (section.model as string).trim(),
          ...(section.worker_host !== undefined ? { worker_host: (section.worker_host as string).trim() } : {}),
          worker_gpu_ids: ids && ids.length > 0 ? ids.map((x) => String(x).trim()) : null,
        };
        expect(config).toEqual(expected);
        expect(Object.isFrozen(config)).toBe(true);
        if (config.worker_gpu_ids !== null) expect(Object.isFrozen(config.worker_gpu_ids)).toBe(true);
        // The input was not changed.
        expect(section.model).not.toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });

  it("property: a list of valid sections gives each one's config in order, unless its worker ports overlap an earlier group's", () => {
    fc.assert(
      fc.property(fc.array(validSection, { minLength: 1, maxLength: 4 }), (sections) => {
        const alone = sections.map((section) => parseLauncherConfig({ launcher: section }, "cfg.yaml")[0]!);
        // Worker i of a group takes worker_base_port + 2i and the port after it.
        const ports = alone.map((c) => [c.worker_base_port, c.worker_base_port + 2 * c.num_workers - 1] as const);
        const clash = ports.findIndex(([first, last], j) => ports.slice(0, j).some(([f, l]) => first <= l && f <= last));
        if (clash < 0) {
          expect(parseLauncherConfig({ launcher: sections }, "cfg.yaml")).toEqual(alone);
          return;
        }
        const err = thrown(() => parseLauncherConfig({ launcher: sections }, "cfg.yaml"));
        expectConfigError(err, JSON.stringify(sections));
        expect((err as LauncherConfigError).key).toBe(`launcher[${clash}].worker_base_port`);
      }),
      { numRuns: 1000 },
    );
  });

  it("a YAML file whose alias refers back to itself fails with a LauncherConfigError naming the key", () => {
    // js-yaml builds such a document as a cyclic object; reporting the bad value must not crash.
    const cases: [string, string][] = [
      ["launcher: &l\n  model: Qwen/Qwen-Image\n  num_workers: *l\n", "launcher.num_workers"],
      ["launcher:\n  model: Qwen/Qwen-Image\n  worker_gpu_ids: &ids [*ids]\n", "launcher.worker_gpu_ids"],
    ];
    for (const [i, [yaml, key]] of cases.entries()) {
      const file = join(tmp, `cyclic-${i}.yaml`);
      writeFileSync(file, yaml);
      const err = thrown(() => loadLauncherConfig(file));
      expect(err, yaml).toBeInstanceOf(LauncherConfigError);
      expect((err as LauncherConfigError).key).toBe(key);
    }
  });
});

// ---------------------------------------------------------------------------
// Router options

const knownOptions = new Set(Object.keys(defaultRouterOptions));
/** The name an option has in errors (the CLI flag without dashes and units). */
const flagOf = (key: string) => key.replace(/Ms$/, "").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const numericOptions = Object.entries(defaultRouterOptions)
  .filter(([, v]) => typeof v === "number")
  .map(([k]) => k);
/**
 * Options that end up as a Node timer (setTimeout/setInterval/AbortSignal.timeout), which fires after
 * 1 ms when given more than 2^31-1 ms. (clientBodyTimeoutMs is a socket timeout, which Node clamps to
 * 2^31-1 instead, and clientHeaderTimeoutMs a comparison: neither is listed.)
 */
const timerOptions = ["healthCheckIntervalMs", "healthCheckTimeoutMs", "queueTimeoutMs", "shutdownTimeoutMs", "drainTimeoutMs", "refitTimeoutMs", "weightCallTimeoutMs"];
const MAX_TIMER_MS = 2 ** 31 - 1;

const anyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.integer({ min: -5, max: 70_000 }),
  fc.constantFrom(0, -0, -1, 0.5, 1, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 53, Number.MAX_VALUE, NaN, Infinity, -Infinity),
);

function expectOptionError(err: unknown, flag: string): void {
  expect(err).toBeInstanceOf(RouterError);
  const e = err as RouterError;
  expect(e.code).toBe("invalid_request");
  expect(e.details.param).toBe(flag);
  expect(e.message).toContain(`option ${flag}`);
}

/** The options with `key` = `value`, or null when they are refused with an error naming `flag`. */
function resolvedOrRefused(key: string, value: unknown, flag: string): ReturnType<typeof resolveRouterOptions> | null {
  try {
    return resolveRouterOptions({ [key]: value });
  } catch (err) {
    expectOptionError(err, flag);
    return null;
  }
}

describe("router options (resolveRouterOptions)", () => {
  it("numeric options are the ones this file knows (a new one gets the properties below automatically)", () => {
    expect(numericOptions.sort()).toEqual(
      [
        "port",
        "maxConnections",
        "timeoutMs",
        "healthCheckIntervalMs",
        "healthCheckFailureThreshold",
        "healthCheckSuccessThreshold",
        "healthCheckTimeoutMs",
        "maxAdminBodyBytes",
        "maxBodyBytes",
        "maxOutputsPerRequest",
        "maxImageSide",
        "maxInferenceSteps",
        "maxFrames",
        "maxConcurrencyPerWorker",
        "workerBatchSize",
        "queueSize",
        "queueTimeoutMs",
        "maxRetries",
        "retryBudgetMs",
        "ejectAfterFailures",
        "shutdownTimeoutMs",
        "drainTimeoutMs",
        "refitTimeoutMs",
        "clientBodyTimeoutMs",
        "clientHeaderTimeoutMs",
        "weightCallTimeoutMs",
      ].sort(),
    );
  });

  it("property: unknown keys are rejected, naming the key", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.constantFrom("__proto__", "constructor", "workerURLs", "timeout", "queue_size", "healthCheckInterval")).filter((k) => !knownOptions.has(k)),
        fc.anything(),
        (key, value) => {
          const input = { [key]: value } as Record<string, unknown>;
          const err = thrown(() => resolveRouterOptions(input));
          expect(err).toBeInstanceOf(RouterError);
          expect((err as RouterError).details.param).toBe(key);
          expect((err as RouterError).message).toContain(`option ${key} is unknown`);
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each(numericOptions)("property: any number (or JSON value) for %s is accepted as given or rejected with a RouterError naming the option", (key) => {
    const flag = flagOf(key);
    fc.assert(
      // Numbers, and the other values a JSON or YAML config could carry.
      fc.property(fc.oneof(anyNumber, fc.jsonValue(), fc.constant(undefined)), (value) => {
        const resolved = resolvedOrRefused(key, value, flag);
        if (resolved === null) return;
        if (value === undefined) return; // means "default"
        expect(typeof value).toBe("number");
        expect(Number.isFinite(value)).toBe(true);
        expect((resolved as unknown as Record<string, unknown>)[key]).toBe(value);
        expect(Object.isFrozen(resolved)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it.each(timerOptions)("property: an accepted %s fits in a Node timer (longer ones fire after 1 ms)", (key) => {
    const flag = flagOf(key);
    fc.assert(
      fc.property(fc.oneof(fc.double({ min: 1, max: 1e12, noNaN: true }), fc.constantFrom(MAX_TIMER_MS, MAX_TIMER_MS + 1, 2_200_000_000, 1e15)), (value) => {
        const resolved = resolvedOrRefused(key, value, flag);
        if (resolved === null) return;
        expect((resolved as unknown as Record<string, number>)[key], `${flag} = ${value / 1000} s accepted`).toBeLessThanOrEqual(MAX_TIMER_MS);
      }),
      { numRuns: 200 },
    );
  });

  it("the option names in errors are the CLI flags", () => {
    expect(flagOf("healthCheckIntervalMs")).toBe("health-check-interval");
    expectOptionError(thrown(() => resolveRouterOptions({ healthCheckIntervalMs: 0 })), "health-check-interval");
    expectOptionError(thrown(() => resolveRouterOptions({ port: 70000 })), "port");
    expectOptionError(thrown(() => resolveRouterOptions({ maxAdminBodyBytes: 1.5 })), "max-admin-body-bytes");
  });

  it("end to end: --health-check-timeout longer than a Node timer holds is refused at start, naming the flag", async () => {
    // Accepted, the probe's timer would fire at once and every worker would be "timed out".
    const err = await startRouterProcess(["--health-check-timeout", "2200000"]).then(
      (r) => (void r.stop(), null),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/exited with 2/);
    expect(err?.message).toMatch(/health-check-timeout must be at most/);
  });
});
