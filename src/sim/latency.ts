/**
 * How long a simulated generation takes. Diffusion cost grows with the
 * latent size × denoising steps × latent frames × outputs, so:
 *
 *   ms = (OVERHEAD_MS + MS_PER_PIXEL_STEP × width × height × steps × latentFrames × outputs) / speed
 *
 * MS_PER_PIXEL_STEP is chosen so that at speed 1 a 1024x1024, 50-step image
 * takes ~400 ms and a 512x512, 4-step image ~10 ms. Video frames count as
 * latent frames ((n-1)/4+1, the 4x temporal compression of Wan's VAE), so a
 * 1280x720, 50-step, 96-frame video takes ~9 s: "seconds", not minutes, to
 * keep the quick start pleasant. Tests pass tiny sizes/steps to stay fast.
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

export function generationMs(work: Work, speed: number): number {
  const units = work.width * work.height * work.steps * latentFrames(work.frames) * work.outputs;
  return (OVERHEAD_MS + MS_PER_PIXEL_STEP * Math.max(0, units)) / speed;
}

/** A plausible peak_memory_mb for the answer: weights plus activations. */
export function peakMemoryMb(work: Work): number {
  const activations = (work.width * work.height * latentFrames(work.frames) * work.outputs) / 16384;
  return Math.round((20480 + activations) * 100) / 100;
}
