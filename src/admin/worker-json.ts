import type { WorkerScheduling } from "../admission/admission.js";
import { workerState, type Worker } from "../registry/worker.js";

/**
 * The REST payload of a worker: the original router's fields first (worker_id,
 * display_id, url, active_requests, is_dead, is_sleeping,
 * consecutive_failures, video_support), then what this router adds.
 */
export function workerJson(w: Worker, scheduling?: WorkerScheduling, lora?: (w: Worker) => unknown): Record<string, unknown> {
  const json: Record<string, unknown> = {
    worker_id: w.id,
    display_id: w.displayId,
    url: w.url,
    active_requests: w.activeRequests,
    is_dead: w.dead,
    is_sleeping: w.sleeping,
    consecutive_failures: w.consecutiveFailures,
    video_support: w.capabilities.videoSupport,
    state: workerState(w),
    dead_reason: w.deadReason,
    last_error: w.lastError,
    task_type: w.capabilities.taskType,
    models: w.capabilities.models,
    weight_version: w.weightVersion,
    draining: w.draining,
    managed: w.managed,
    parallel_slots: w.capabilities.parallelSlots ?? 1,
  };
  // The LoRA the worker holds as far as the router knows ({nickname, merged}, null: none).
  if (lora !== undefined) json.lora = lora(w);
  if (scheduling !== undefined) {
    json.speed = Math.round(scheduling.speed * 1000) / 1000;
    json.speed_observations = scheduling.observations;
    json.speed_noise = Math.round(scheduling.noise * 1000) / 1000;
    json.in_flight_work_ms = scheduling.inFlightWorkMs;
    json.queued_work_ms = scheduling.queuedWorkMs;
  }
  return json;
}
