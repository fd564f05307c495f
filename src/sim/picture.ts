import { createHash } from "node:crypto";

/**
 * Deterministic pictures: the same prompt + seed always gives the same
 * pixels, another seed other pixels, so tests can tell which request made
 * which answer. Drawing is a cheap gradient + stripes coloured from a hash;
 * sizes are capped so a "4096x4096" request does not cost real CPU.
 */

/** A 32-bit seed for a PRNG from any strings/numbers. */
export function hashSeed(...parts: (string | number)[]): number {
  return createHash("sha256").update(parts.join("\u0000")).digest().readUInt32LE(0);
}

/** mulberry32: tiny, fast, good enough for test patterns. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Scales (width, height) down to fit `max` on its longer side, keeping the
 * aspect ratio; dimensions are rounded to a multiple of `align` (≥ align).
 */
export function cappedSize(width: number, height: number, max: number, align = 1): [number, number] {
  const scale = Math.min(1, max / Math.max(width, height, 1));
  const round = (v: number) => Math.max(align, Math.round((v * scale) / align) * align);
  return [round(width), round(height)];
}

/**
 * Draws one frame into `out` (channels 3 = RGB, 4 = RGBA opaque). `frame`
 * shifts the pattern so a video's frames differ and show motion.
 */
export function drawFrame(
  out: Buffer,
  width: number,
  height: number,
  channels: 3 | 4,
  prompt: string,
  seed: number,
  frame = 0,
): void {
  const rand = prng(hashSeed(prompt, seed));
  const c0 = [rand() * 255, rand() * 255, rand() * 255];
  const c1 = [rand() * 255, rand() * 255, rand() * 255];
  const stripe = 4 + Math.floor(rand() * 12);
  const angle = rand();
  let i = 0;
  for (let y = 0; y < height; y++) {
    const fy = height > 1 ? y / (height - 1) : 0;
    for (let x = 0; x < width; x++) {
      const fx = width > 1 ? x / (width - 1) : 0;
      const t = fx * (1 - angle) + fy * angle;
      const band = Math.floor((x + y * angle * 2 + frame * 2) / stripe) % 2 === 0 ? 1 : 0.8;
      out[i++] = (c0[0]! * (1 - t) + c1[0]! * t) * band;
      out[i++] = (c0[1]! * (1 - t) + c1[1]! * t) * band;
      out[i++] = (c0[2]! * (1 - t) + c1[2]! * t) * band;
      if (channels === 4) out[i++] = 255;
    }
  }
}
