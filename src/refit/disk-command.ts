import { RouterError } from "../errors.js";
import type { DiskRefitCommand } from "./types.js";
import { modelFieldOf } from "./targets.js";
import { replayOf, weightVersionOf } from "./version-label.js";

/**
 * An `update_weights_from_disk` body as a command. `body` is kept as sent:
 * workers get the trainer's bytes, fields the router does not read included
 * (`replay` too: workers ignore fields they do not know).
 */
export function diskRefitCommand(body: Buffer, json: Readonly<Record<string, unknown>>, drainTimeoutMs: number | undefined): DiskRefitCommand {
  if (typeof json.model_path !== "string" || json.model_path === "") {
    throw new RouterError("invalid_request", "model_path is required and must be a non-empty string", { details: { param: "model_path" } });
  }
  return { modelPath: json.model_path, weightVersion: weightVersionOf(json.weight_version), replay: replayOf(json.replay), model: modelFieldOf(json.model), body, drainTimeoutMs };
}
