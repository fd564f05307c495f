import { FormData } from "undici";
import { sniffImageType } from "./image-bytes.js";
import type { ImageEditRequest, NamedUpload, Uploadable } from "./types.js";

/**
 * The multipart form of an image edit, built with undici's FormData (the same
 * undici that sends it: Node's global FormData comes from Node's bundled copy,
 * whose bodies this undici cannot read). The form holds Blobs, so a retry can
 * send it again.
 */
export async function editForm(req: ImageEditRequest): Promise<FormData> {
  if (typeof req !== "object" || req === null) throw new TypeError("the edit request must be an object");
  const form = new FormData();
  const images = Array.isArray(req.image) ? (req.image as readonly Uploadable[]) : req.image === undefined ? [] : [req.image as Uploadable];
  // SGLang's route takes `image` (a list: repeated parts) and `image[]` (what the
  // OpenAI client sends for lists); repeated `image` parts suit both.
  for (const [i, file] of images.entries()) await appendFile(form, "image", file, images.length > 1 ? i + 1 : 0);
  if (req.mask !== undefined && req.mask !== null) await appendFile(form, "mask", req.mask, 0);
  for (const [name, value] of Object.entries(req)) {
    if (name === "image" || name === "mask" || value === undefined || value === null) continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") form.append(name, String(value));
    else throw new TypeError(`edit field ${name} must be a string, number or boolean, got ${Array.isArray(value) ? "an array" : typeof value}`);
  }
  return form;
}

function isNamed(v: unknown): v is NamedUpload {
  return typeof v === "object" && v !== null && !(v instanceof Blob) && !(v instanceof Uint8Array) && "data" in v;
}

async function appendFile(form: FormData, field: string, file: Uploadable, ordinal: number): Promise<void> {
  const what = ordinal > 0 ? `${field} ${ordinal}` : field;
  let data: Blob | Uint8Array;
  let filename: string | undefined;
  let contentType: string | undefined;
  if (isNamed(file)) {
    ({ data, filename, contentType } = file);
    if (filename !== undefined && typeof filename !== "string") throw new TypeError(`${what}: filename must be a string`);
  } else {
    data = file;
  }
  if (data instanceof Blob) {
    filename ??= typeof (data as { name?: unknown }).name === "string" && (data as File).name !== "" ? (data as File).name : undefined;
    contentType ??= data.type || undefined;
  } else if (!(data instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a Blob, File, Buffer/Uint8Array or { data, filename? }`);
  }
  if (filename === undefined || contentType === undefined) {
    const head = data instanceof Uint8Array ? data : new Uint8Array(await data.slice(0, 16).arrayBuffer());
    const sniffed = sniffImageType(head);
    contentType ??= sniffed.type;
    filename ??= `${field}${ordinal > 0 ? `-${ordinal}` : ""}.${sniffed.ext}`;
  }
  const blob = data instanceof Blob ? (data.type === contentType ? data : data.slice(0, data.size, contentType)) : new Blob([data], { type: contentType });
  form.append(field, blob, filename);
}
