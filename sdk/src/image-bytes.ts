/** Image bytes without a server's word on their type: read the signature. */

const SIGNATURES: readonly { type: string; ext: string; test: (b: Uint8Array) => boolean }[] = [
  { type: "image/png", ext: "png", test: (b) => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 },
  { type: "image/jpeg", ext: "jpg", test: (b) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  { type: "image/webp", ext: "webp", test: (b) => b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP" },
];

function ascii(b: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...b.subarray(from, to));
}

/** The image type of `bytes` by signature, or `application/octet-stream` with extension `bin`. */
export function sniffImageType(bytes: Uint8Array): { type: string; ext: string } {
  for (const s of SIGNATURES) if (s.test(bytes)) return { type: s.type, ext: s.ext };
  return { type: "application/octet-stream", ext: "bin" };
}

/** A base64 string (the `b64_json` of an image item) as bytes; throws a TypeError if it is not base64. */
export function decodeBase64(b64: string, what: string): Buffer {
  const clean = b64.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new TypeError(`${what} is not base64`);
  return Buffer.from(clean, "base64");
}

/** A `data:` URL (`data:image/png;base64,...`) as bytes and type. */
export function decodeDataUrl(url: string): { bytes: Buffer; contentType: string } {
  const comma = url.indexOf(",");
  if (comma < 0) throw new TypeError("a data: URL needs a comma before its data");
  const header = url.slice(5, comma);
  const data = url.slice(comma + 1);
  const parts = header.split(";");
  const isBase64 = parts.at(-1)?.toLowerCase() === "base64";
  const bytes = isBase64 ? decodeBase64(data, "the data: URL's payload") : Buffer.from(decodeURIComponent(data), "utf8");
  const declared = parts[0]?.trim();
  return { bytes, contentType: declared ? declared : sniffImageType(bytes).type };
}
