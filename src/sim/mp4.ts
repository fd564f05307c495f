import { cappedSize, drawFrame } from "./picture.js";

/**
 * A real, small MP4 (ISO BMFF) written by hand, so no ffmpeg is needed at run
 * time. Samples are uncompressed RGB24 frames with the QuickTime `raw ` sample
 * entry, which ffmpeg/ffprobe decode (mov demuxer → rawvideo rgb24). Layout:
 *
 *   ftyp | mdat (all frames, one chunk) | moov (mvhd, trak/tkhd, mdia/mdhd,
 *   hdlr, minf/vmhd, dinf/dref, stbl/stsd, stts, stsc, stsz, stco)
 *
 * Frames are few and small (≤ MAX_FRAMES of ≤ MAX_VIDEO_SIDE px), but the
 * timing keeps the requested duration (num_frames / fps).
 */
export const MAX_VIDEO_SIDE = 128;
export const MAX_FRAMES = 8;
const TIMESCALE = 1000;

function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}
function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}

/** A box: 32-bit size + 4-char type + payload. */
export function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  return Buffer.concat([u32(8 + body.length), Buffer.from(type, "latin1"), body]);
}

/** A full box: a box whose payload starts with version (8 bits) and flags (24 bits). */
function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  return box(type, u8(version), u8(flags >> 16), u16(flags), ...payload);
}

// The identity transform of mvhd/tkhd (16.16 and 2.30 fixed point).
const MATRIX = Buffer.concat([0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000].map(u32));

export interface VideoSpec {
  prompt: string;
  seed: number;
  width: number;
  height: number;
  numFrames: number;
  fps: number;
}

export interface Mp4Info {
  width: number;
  height: number;
  frames: number;
  durationMs: number;
}

/** Drawn size and frame count of the MP4 for a request (for tests and logs). */
export function mp4Layout(spec: VideoSpec): Mp4Info {
  // Width/height multiple of 16 so every RGB row is 16-byte aligned: raw
  // decoders that assume aligned strides read it correctly too.
  const [width, height] = cappedSize(spec.width, spec.height, MAX_VIDEO_SIDE, 16);
  const frames = Math.max(1, Math.min(MAX_FRAMES, spec.numFrames));
  const durationMs = Math.max(frames, Math.round((Math.max(1, spec.numFrames) / Math.max(1, spec.fps)) * TIMESCALE));
  return { width, height, frames, durationMs };
}

export function renderMp4(spec: VideoSpec): Buffer {
  const { width, height, frames, durationMs } = mp4Layout(spec);
  const delta = Math.floor(durationMs / frames);
  const duration = delta * frames;
  const frameBytes = width * height * 3;

  const pixels = Buffer.alloc(frameBytes * frames);
  for (let f = 0; f < frames; f++) {
    drawFrame(pixels.subarray(f * frameBytes, (f + 1) * frameBytes), width, height, 3, spec.prompt, spec.seed, f);
  }

  const ftyp = box("ftyp", Buffer.from("isom", "latin1"), u32(0x200), Buffer.from("isomiso2mp41", "latin1"));
  const mdatHeader = Buffer.concat([u32(8 + pixels.length), Buffer.from("mdat", "latin1")]);
  const chunkOffset = ftyp.length + mdatHeader.length;

  const mvhd = fullBox(
    "mvhd", 0, 0,
    u32(0), u32(0), u32(TIMESCALE), u32(duration),
    u32(0x00010000), u16(0x0100), zeros(2), zeros(8), MATRIX, zeros(24), u32(2),
  );
  const tkhd = fullBox(
    "tkhd", 0, 0x000003, // enabled | in movie
    u32(0), u32(0), u32(1), zeros(4), u32(duration), zeros(8),
    u16(0), u16(0), u16(0), zeros(2), MATRIX, u32(width << 16), u32(height << 16),
  );
  const mdhd = fullBox("mdhd", 0, 0, u32(0), u32(0), u32(TIMESCALE), u32(duration), u16(0x55c4 /* "und" */), u16(0));
  const hdlr = fullBox("hdlr", 0, 0, u32(0), Buffer.from("vide", "latin1"), zeros(12), Buffer.from("VideoHandler\0", "latin1"));
  const vmhd = fullBox("vmhd", 0, 1, u16(0), zeros(6));
  const dinf = box("dinf", fullBox("dref", 0, 0, u32(1), fullBox("url ", 0, 1)));
  const compressor = zeros(32);
  compressor.write("\u0003raw", "latin1");
  const sampleEntry = box(
    "raw ",
    zeros(6), u16(1), // reserved, data_reference_index
    u16(0), u16(0), zeros(12), u16(width), u16(height),
    u32(0x00480000), u32(0x00480000), zeros(4), u16(1), compressor, u16(24), u16(0xffff),
  );
  const stbl = box(
    "stbl",
    fullBox("stsd", 0, 0, u32(1), sampleEntry),
    fullBox("stts", 0, 0, u32(1), u32(frames), u32(delta)),
    fullBox("stsc", 0, 0, u32(1), u32(1), u32(frames), u32(1)),
    fullBox("stsz", 0, 0, u32(frameBytes), u32(frames)),
    fullBox("stco", 0, 0, u32(1), u32(chunkOffset)),
  );
  const moov = box("moov", mvhd, box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", vmhd, dinf, stbl))));
  return Buffer.concat([ftyp, mdatHeader, pixels, moov]);
}
