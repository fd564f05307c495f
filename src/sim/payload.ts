import { hashSeed, prng } from "./picture.js";

/**
 * Large answers (`/rollout/generate`) written as a stream of parts: small
 * encoded pieces plus big base64 blobs that are produced block by block.
 * The whole body is never built in memory, yet its exact length is known up
 * front, so the answer has a Content-Length like uvicorn's `Response`.
 */

/** A base64 string produced in chunks; `length` is its encoded length. */
export class Base64Blob {
  constructor(
    readonly length: number,
    readonly chunks: () => Iterable<Buffer>,
  ) {}
}

/** A JSON-like tree whose strings may be Base64Blobs. */
export type Value = null | boolean | number | string | Base64Blob | Value[] | { [key: string]: Value };

export type Part = Buffer | Base64Blob;

// Raw bytes per repeated block: a multiple of 3 (base64 without padding) and 4 (whole floats).
const BLOCK_BYTES = 3 * 4 * 16384;

/**
 * A float32 tensor as SGLang serializes it: `{"__tensor__", "data": base64
 * of a safetensors file holding it as "t", "shape", "dtype"}`. Values are a
 * block of pseudo-random floats from `seedKey`, repeated: generating 256 MB
 * of fresh random data would be too slow and proves nothing more.
 */
export function tensorValue(shape: number[], seedKey: string): Value {
  const count = shape.reduce((a, b) => a * b, 1);
  const dataBytes = count * 4;
  const headerJson = JSON.stringify({ t: { dtype: "F32", shape, data_offsets: [0, dataBytes] } });
  // Pad with spaces (allowed by safetensors) so 8 + header is a multiple of 24:
  // data stays 8-byte aligned and the header's base64 needs no padding.
  const headerLen = Math.ceil((8 + headerJson.length) / 24) * 24 - 8;
  const header = Buffer.alloc(8 + headerLen, 0x20);
  header.writeBigUInt64LE(BigInt(headerLen), 0);
  header.write(headerJson, 8, "latin1");
  const rawLength = header.length + dataBytes;

  const chunks = function* (): Iterable<Buffer> {
    yield Buffer.from(header.toString("base64"), "latin1");
    const blockLen = Math.min(BLOCK_BYTES, Math.ceil(dataBytes / 12) * 12);
    if (blockLen === 0) return;
    const block = Buffer.alloc(blockLen);
    const rand = prng(hashSeed(seedKey));
    for (let i = 0; i < blockLen; i += 4) block.writeFloatLE(rand() * 2 - 1, i);
    const encodedBlock = Buffer.from(block.toString("base64"), "latin1");
    let left = dataBytes;
    while (left >= blockLen) {
      yield encodedBlock;
      left -= blockLen;
    }
    if (left > 0) yield Buffer.from(block.subarray(0, left).toString("base64"), "latin1");
  };
  return {
    __tensor__: true,
    data: new Base64Blob(4 * Math.ceil(rawLength / 3), chunks),
    shape,
    dtype: "torch.float32",
  };
}

/** Collects small encoded pieces and flushes them as one Buffer before each blob. */
class PartList {
  readonly parts: Part[] = [];
  private pending: Buffer[] = [];

  push(bytes: Buffer): void {
    this.pending.push(bytes);
  }

  blob(blob: Base64Blob): void {
    this.flush();
    this.parts.push(blob);
  }

  flush(): void {
    if (this.pending.length > 0) this.parts.push(Buffer.concat(this.pending));
    this.pending = [];
  }
}

function header(tag: number, size: 0 | 1 | 2 | 4, n: number): Buffer {
  const b = Buffer.alloc(1 + size);
  b[0] = tag;
  if (size === 1) b.writeUInt8(n, 1);
  else if (size === 2) b.writeUInt16BE(n, 1);
  else if (size === 4) b.writeUInt32BE(n, 1);
  return b;
}

function strHeader(length: number): Buffer {
  if (length < 32) return Buffer.from([0xa0 | length]);
  if (length < 0x100) return header(0xd9, 1, length);
  if (length < 0x10000) return header(0xda, 2, length);
  return header(0xdb, 4, length);
}

function msgpackNumber(n: number): Buffer {
  if (Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) {
    if (n >= 0) {
      if (n < 0x80) return Buffer.from([n]);
      if (n < 0x100) return header(0xcc, 1, n);
      if (n < 0x10000) return header(0xcd, 2, n);
      if (n < 0x100000000) return header(0xce, 4, n);
      const b = Buffer.alloc(9);
      b[0] = 0xcf;
      b.writeBigUInt64BE(BigInt(n), 1);
      return b;
    }
    if (n >= -32) return Buffer.from([n & 0xff]);
    const b = Buffer.alloc(9);
    if (n >= -0x80) return Buffer.from([0xd0, n & 0xff]);
    if (n >= -0x8000) {
      b[0] = 0xd1;
      b.writeInt16BE(n, 1);
      return b.subarray(0, 3);
    }
    if (n >= -0x80000000) {
      b[0] = 0xd2;
      b.writeInt32BE(n, 1);
      return b.subarray(0, 5);
    }
    b[0] = 0xd3;
    b.writeBigInt64BE(BigInt(n), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(n, 1);
  return b;
}

/** MessagePack with the smallest encodings, like msgspec (which SGLang uses). */
export function planMsgpack(value: Value): Part[] {
  const out = new PartList();
  const walk = (v: Value): void => {
    if (v === null) out.push(Buffer.from([0xc0]));
    else if (v === true) out.push(Buffer.from([0xc3]));
    else if (v === false) out.push(Buffer.from([0xc2]));
    else if (typeof v === "number") out.push(msgpackNumber(v));
    else if (typeof v === "string") {
      const bytes = Buffer.from(v, "utf8");
      out.push(strHeader(bytes.length));
      out.push(bytes);
    } else if (v instanceof Base64Blob) {
      out.push(strHeader(v.length));
      out.blob(v);
    } else if (Array.isArray(v)) {
      out.push(v.length < 16 ? Buffer.from([0x90 | v.length]) : v.length < 0x10000 ? header(0xdc, 2, v.length) : header(0xdd, 4, v.length));
      v.forEach(walk);
    } else {
      const entries = Object.entries(v);
      const n = entries.length;
      out.push(n < 16 ? Buffer.from([0x80 | n]) : n < 0x10000 ? header(0xde, 2, n) : header(0xdf, 4, n));
      for (const [key, item] of entries) {
        walk(key);
        walk(item);
      }
    }
  };
  walk(value);
  out.flush();
  return out.parts;
}

export function partsLength(parts: Part[]): number {
  return parts.reduce((sum, p) => sum + p.length, 0);
}

export function* partChunks(parts: Part[]): Iterable<Buffer> {
  for (const part of parts) {
    if (part instanceof Base64Blob) yield* part.chunks();
    else yield part;
  }
}
