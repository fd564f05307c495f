import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RouterError } from "../src/errors.js";
import { decodeWorkerId, normalizeWorkerUrl, workerIdOf } from "../src/registry/worker-url.js";

const refused: [string, RegExp][] = [
  ["http://169.254.169.254:80", /link-local/],
  ["http://169.254.169.254.:80", /link-local/],
  ["http://2852039166:80", /link-local/], // decimal
  ["http://0xa9fea9fe:80", /link-local/], // hex
  ["http://0xA9.0xFE.0xA9.0xFE:80", /link-local/],
  ["http://0251.0376.0251.0376:80", /link-local/], // octal
  ["http://169.254.43518:80", /link-local/], // shortened
  ["http://169%2e254%2e169%2e254:80", /link-local/], // percent-encoded dots
  ["http://169.254.0.1:8080", /link-local/],
  ["http://[fe80::1]:80", /fe80/],
  ["http://[FE80::abcd:1]:80", /fe80/],
  ["http://[febf::1]:80", /fe80/],
  ["http://[::ffff:169.254.169.254]:80", /link-local/], // IPv4-mapped
  ["http://[::ffff:a9fe:a9fe]:80", /link-local/],
  ["http://[0:0:0:0:0:ffff:a9fe:a9fe]:80", /link-local/],
  ["http://[::169.254.169.254]:80", /link-local/], // IPv4-compatible
  ["http://[64:ff9b::169.254.169.254]:80", /link-local/], // NAT64
  ["http://[::ffff:0:169.254.169.254]:80", /link-local/], // SIIT
  ["http://[::ffff:100.100.100.200]:80", /metadata/],
  ["http://metadata.google.internal:80", /metadata/],
  ["http://METADATA.Google.Internal:80", /metadata/],
  ["http://metadata.google.internal.:80", /metadata/],
  ["http://metadata.google.internal..:80", /metadata/],
  ["http://100.100.100.200:80", /metadata/],
  ["http://[fd00:ec2::254]:80", /metadata/],
  ["http://[fd00:0ec2:0:0:0:0:0:254]:80", /metadata/],
  ["ftp://worker:80", /http:\/\/ or https:\/\//],
  ["file:///etc/passwd", /http:\/\/ or https:\/\//],
  ["http://user:pass@worker:80", /credentials/],
  ["http://user@worker:80", /credentials/],
  ["http://worker:80/v1", /path/],
  ["http://worker:80?x=1", /query/],
  ["http://worker:80#frag", /fragment/],
  ["http://worker", /port/],
  ["http://worker:", /port/],
  ["http://[::1]", /port/],
  ["http://worker:0", /port/],
  ["http://worker:70000", /port|valid/],
  ["worker:80", /look like/],
  ["", /empty/],
  ["   ", /empty/],
];

describe("worker URL validation", () => {
  it.each(refused)("refuses %s", (raw, why) => {
    let err: unknown;
    try {
      normalizeWorkerUrl(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RouterError);
    expect((err as RouterError).code).toBe("invalid_worker_url");
    expect((err as RouterError).status).toBe(400);
    expect((err as RouterError).message).toMatch(why);
  });

  it.each([
    ["http://LOCALHOST:10090/", "http://localhost:10090"],
    ["http://localhost:10090", "http://localhost:10090"],
    ["  http://10.0.0.5:30000  ", "http://10.0.0.5:30000"],
    ["HTTP://Worker-1.cluster.local:80", "http://worker-1.cluster.local:80"],
    ["https://gpu-node:443", "https://gpu-node:443"],
    ["http://[::1]:8080", "http://[::1]:8080"],
    ["http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"],
    ["http://127.0.0.1:30000", "http://127.0.0.1:30000"],
    ["http://node.:30000", "http://node:30000"],
  ])("accepts %s as %s", (raw, canonical) => {
    expect(normalizeWorkerUrl(raw)).toBe(canonical);
  });

  it("refuses non-strings", () => {
    expect(() => normalizeWorkerUrl(42)).toThrow(/string/);
    expect(() => normalizeWorkerUrl(null)).toThrow(/string/);
  });

  it("worker ids round-trip, encoded or raw", () => {
    const url = "http://localhost:30000";
    expect(workerIdOf(url)).toBe("http%3A%2F%2Flocalhost%3A30000");
    expect(decodeWorkerId(workerIdOf(url))).toBe(url);
    expect(decodeWorkerId("http://LOCALHOST:30000/")).toBe(url);
    expect(() => decodeWorkerId("%E0%A4%A")).toThrow(/percent-encoding/);
  });

  it("property: every 169.254/16 address is refused in dotted, decimal, hex and mapped spellings", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 65535 }), (c, d, port) => {
        const n = ((169 << 24) | (254 << 16) | (c << 8) | d) >>> 0;
        const forms = [
          `http://169.254.${c}.${d}:${port}`,
          `http://${n}:${port}`,
          `http://0x${n.toString(16)}:${port}`,
          `http://0${(169).toString(8)}.0${(254).toString(8)}.${c}.${d}:${port}`,
          `http://[::ffff:169.254.${c}.${d}]:${port}`,
          `http://[64:ff9b::a9fe:${((c << 8) | d).toString(16)}]:${port}`,
        ];
        for (const f of forms) expect(() => normalizeWorkerUrl(f), f).toThrow(RouterError);
      }),
      { numRuns: 300 },
    );
  });

  it("property: normalization is idempotent and ids decode back to the same URL", () => {
    const host = fc.oneof(
      fc.ipV4().filter((ip) => !ip.startsWith("169.254.") && ip !== "100.100.100.200"),
      fc.domain().filter((d) => !/^(metadata|instance-data)/.test(d)),
    );
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65535 }), fc.constantFrom("http", "https"), (h, port, scheme) => {
        const canonical = normalizeWorkerUrl(`${scheme}://${h}:${port}`);
        expect(normalizeWorkerUrl(canonical)).toBe(canonical);
        expect(decodeWorkerId(workerIdOf(canonical))).toBe(canonical);
      }),
      { numRuns: 500 },
    );
  });

  it("property: arbitrary strings never crash the validator (RouterError or a canonical URL)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.webUrl(), fc.string().map((s) => `http://${s}:80`)), (s) => {
        try {
          const out = normalizeWorkerUrl(s);
          expect(out).toMatch(/^https?:\/\/[^/?#@]+:\d+$/);
        } catch (e) {
          expect(e).toBeInstanceOf(RouterError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
