import { createRequire } from "node:module";
import { cappedSize, drawFrame } from "./picture.js";

/**
 * Longest side of a drawn PNG. A request for 1024x1024 gets a 256x256 picture
 * with the same aspect ratio: real PNG bytes, without real CPU cost.
 */
export const MAX_PNG_SIDE = 256;

// pngjs is loaded on first use (CommonJS, via require): keeps the CLI's start
// within its 300 ms budget.
const require = createRequire(import.meta.url);
let pngjs: typeof import("pngjs") | undefined;
function loadPng(): typeof import("pngjs").PNG {
  pngjs ??= require("pngjs") as typeof import("pngjs");
  return pngjs.PNG;
}

/** A real PNG drawn from prompt + seed; size is the request's, capped to MAX_PNG_SIDE. */
export async function renderPng(prompt: string, seed: number, width: number, height: number): Promise<Buffer> {
  const PNG = loadPng();
  const [w, h] = cappedSize(width, height, MAX_PNG_SIDE);
  const png = new PNG({ width: w, height: h });
  drawFrame(png.data, w, h, 4, prompt, seed);
  return PNG.sync.write(png);
}
