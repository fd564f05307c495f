/**
 * What a worker generates, from the `task_type` of its `/v1/models` card.
 * SGLang's diffusion server reports T2I/I2I/TI2I for image models,
 * T2V/I2V/TI2V/V2V/F2V for video models (V2V and F2V take an input video or
 * frame, and answer on the video routes), I2M for 3D meshes and VLA_ACTION
 * for vision-language-action models, which serve neither image nor video
 * routes. One table, read by the registry (video support) and the scheduler
 * (eligibility), so the two cannot disagree.
 */
export type WorkerKind = "image" | "video" | "mesh" | "action" | "unknown";

const kinds: Readonly<Record<string, WorkerKind>> = {
  T2I: "image",
  I2I: "image",
  TI2I: "image",
  T2V: "video",
  I2V: "video",
  TI2V: "video",
  V2V: "video",
  F2V: "video",
  I2M: "mesh",
  VLA_ACTION: "action",
};

/** The kind of a task type; `unknown` while the card is not read, or for a task type this router does not know. */
export function workerKind(taskType: string | null): WorkerKind {
  if (taskType === null) return "unknown";
  return kinds[taskType.toUpperCase()] ?? "unknown";
}

/** true for video task types, false for the others, null while unknown. */
export function taskTypeSupportsVideo(taskType: string | null): boolean | null {
  if (taskType === null) return null;
  return workerKind(taskType) === "video";
}
