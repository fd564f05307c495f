/**
 * How long a simulated generation takes. Diffusion cost grows with the
 * latent size × denoising steps × latent frames × outputs, so:
 *
 *   units = width × height × steps × latentFrames × outputs
 *   ms    = (OVERHEAD_MS + MS_PER_PIXEL_STEP × units × (1 + a × megapixels)) / speed
 *
 * MS_PER_PIXEL_STEP is chosen so that at speed 1 a 1024x1024, 50-step image
 * takes ~400 ms and a 512x512, 4-step image ~10 ms. Video frames count as
 * latent frames ((n-1)/4+1, the 4x temporal compression of Wan's VAE), so a
 * 1280x720, 50-step, 96-frame video takes ~9 s: "seconds", not minutes, to
 * keep the quick start pleasant. Tests pass tiny sizes/steps to stay fast.
 *
 * `a` is the attention factor (default 0: the linear formula above) and
 * `megapixels` = width × height / 1,000,000 of one frame. Real cost is
 * superlinear in pixels (attention is quadratic in latent tokens) and the
 * share of attention differs per GPU kind, so two workers with different
 * `a` do not differ by one constant factor: a router cannot learn one
 * speed number per worker and be right for every size.
 *
 * Batching (`--batching-max-size` > 1): b compatible requests run as one
 * batch that takes
 *
 *   batchMs = ms(one request) × b / gain(b, width × height)
 *
 * and all b answers come out together. gain comes from a table of measured
 * throughput gains per image size (see `parseGainCurve`); the default is
 * Qwen-Image on an H200: ×2.77 at batch 4 and ×3.14 at batch 8 at 512x512,
 * about ×1.0 at 1024x1024 batch 2. Between listed batch sizes the gain is
 * linear in b from gain(1) = 1, beyond the last it stays flat; between
 * listed sizes it is linear in log2(pixels), and outside them it is the
 * nearest size's (so small pictures gain, large ones barely).
 */
export const MS_PER_PIXEL_STEP = 400 / (1024 * 1024 * 50);
export const OVERHEAD_MS = 2;

export interface Work {
  width: number;
  height: number;
  steps: number;
  /** Output frames (1 for images). */
  frames: number;
  /** Outputs per request (n / num_outputs_per_prompt). */
  outputs: number;
}

export function latentFrames(frames: number): number {
  return frames <= 1 ? 1 : Math.floor((frames - 1) / 4) + 1;
}

/**
 * Sim-only cost shapes beyond the attention factor, for scheduling benches
 * that must hold on shapes the router was not tuned on (issue 20):
 *
 *   ms = (OVERHEAD_MS + outputMs × outputs + MS_PER_PIXEL_STEP × pixels' × steps × latentFrames × outputs × (1 + a × megapixels)) / speed
 *   pixels' = 2^20 × (width × height / 2^20)^pixelExponent
 *
 * `outputMs` is a fixed cost per output (decoding and encoding a picture,
 * whatever its size); `pixelExponent` bends the pixel cost around 1024x1024
 * (1 = the formula above; 1.4: a 2048x2048 image costs 4^1.4 = 7x a 1024x1024
 * one instead of 4x). Defaults change nothing.
 */
export interface CostShape {
  outputMs?: number;
  pixelExponent?: number;
}

const MP = 1 << 20;

/** `attentionFactor` is the `a` of the formula above (default 0 = linear in pixels); `shape` the sim-only terms of {@link CostShape}. */
export function generationMs(work: Work, speed: number, attentionFactor = 0, shape: CostShape = {}): number {
  const e = shape.pixelExponent ?? 1;
  const pixels = work.width * work.height;
  const bent = e === 1 ? pixels : MP * Math.pow(pixels / MP, e);
  const units = bent * work.steps * latentFrames(work.frames) * work.outputs;
  const attention = 1 + attentionFactor * (pixels / 1e6);
  const perOutput = (shape.outputMs ?? 0) * Math.max(0, work.outputs);
  return (OVERHEAD_MS + perOutput + MS_PER_PIXEL_STEP * Math.max(0, units) * attention) / speed;
}

/** Measured throughput gains of one image size: [batch size, gain] pairs, ascending. */
export interface GainPoint {
  pixels: number;
  gains: [number, number][];
}

/** A gain table, ascending by pixels. */
export type GainCurve = GainPoint[];

/** Qwen-Image on an H200 (see diffusion-scheduling.md). */
export const DEFAULT_GAIN_CURVE_SPEC = "512x512=4:2.77,8:3.14;1024x1024=2:1.0";

/**
 * Parses `SIZE=b:gain,b:gain;SIZE=...`, e.g. the default
 * "512x512=4:2.77,8:3.14;1024x1024=2:1.0". Throws a RangeError that says
 * what is wrong.
 */
export function parseGainCurve(spec: string): GainCurve {
  const points: GainCurve = [];
  for (const part of spec.split(";").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)x(\d+)=(.+)$/.exec(part);
    if (!m) throw new RangeError(`batching gain '${part}': expected WIDTHxHEIGHT=b:gain,b:gain`);
    const gains: [number, number][] = [];
    for (const pair of m[3]!.split(",")) {
      const [b, g] = pair.split(":").map((s) => Number(s.trim()));
      if (!Number.isInteger(b) || b! < 1 || !Number.isFinite(g) || !(g! > 0) || g! > b!) {
        throw new RangeError(`batching gain '${pair}' in '${part}': expected b:gain with b an integer >= 1 and 0 < gain <= b`);
      }
      gains.push([b!, g!]);
    }
    gains.sort((x, y) => x[0] - y[0]);
    points.push({ pixels: Number(m[1]) * Number(m[2]), gains });
  }
  if (points.length === 0) throw new RangeError("batching gain: empty table");
  return points.sort((x, y) => x.pixels - y.pixels);
}

/** gain(b) of one size: linear from (1, 1) through the listed points, flat after the last. */
function gainAt(gains: [number, number][], b: number): number {
  let prev: [number, number] = [1, 1];
  for (const point of gains) {
    if (b <= point[0]) return point[0] === prev[0] ? point[1] : prev[1] + ((point[1] - prev[1]) * (b - prev[0])) / (point[0] - prev[0]);
    prev = point;
  }
  return prev[1];
}

/** Throughput gain of a batch of `b` pictures of `pixels` each (1 for b = 1). */
export function batchGain(curve: GainCurve, b: number, pixels: number): number {
  if (b <= 1) return 1;
  const first = curve[0]!;
  const last = curve.at(-1)!;
  if (pixels <= first.pixels) return gainAt(first.gains, b);
  if (pixels >= last.pixels) return gainAt(last.gains, b);
  const i = curve.findIndex((p) => p.pixels >= pixels);
  const lo = curve[i - 1]!;
  const hi = curve[i]!;
  const t = Math.log2(pixels / lo.pixels) / Math.log2(hi.pixels / lo.pixels);
  return gainAt(lo.gains, b) + t * (gainAt(hi.gains, b) - gainAt(lo.gains, b));
}

/** Time of a batch of `b` requests shaped like `work` (all equal: they are compatible). */
export function batchMs(work: Work, b: number, speed: number, attentionFactor: number, curve: GainCurve, shape: CostShape = {}): number {
  return (generationMs(work, speed, attentionFactor, shape) * b) / batchGain(curve, b, work.width * work.height);
}

/** A plausible peak_memory_mb for the answer: weights plus activations. */
export function peakMemoryMb(work: Work): number {
  const activations = (work.width * work.height * latentFrames(work.frames) * work.outputs) / 16384;
  return Math.round((20480 + activations) * 100) / 100;
}
