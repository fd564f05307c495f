import { createRegistry, toJson, type JsonObject, type Message } from "@bufbuild/protobuf";
import { file_sgl_diffusion_router_v1_admin } from "./gen/sgl/diffusion/router/v1/admin_pb.js";
import { file_sgl_diffusion_router_v1_rollout } from "./gen/sgl/diffusion/router/v1/rollout_pb.js";

/** Every message of the SDK's services, by type name. */
const registry = createRegistry(file_sgl_diffusion_router_v1_admin, file_sgl_diffusion_router_v1_rollout);

/**
 * Any message of the AdminService or RolloutService (a request, a result, a
 * `Worker`, a `WatchWorkers` event) as plain JSON that prints and
 * `JSON.stringify`s: the proto3 JSON mapping, with enums as their names
 * (`"WORKER_STATE_HEALTHY"`), 64-bit integers as decimal strings
 * (`"uptimeMs": "5230"`), bytes as base64, lowerCamelCase field names, and
 * zero/empty fields shown (`"inFlightRequests": 0`) rather than left out.
 *
 * The messages themselves hold enums as numbers and 64-bit integers as
 * `bigint`, which `JSON.stringify` refuses.
 */
export function toPlain(message: Message): JsonObject {
  const typeName = (message as { $typeName?: unknown } | null)?.$typeName;
  if (typeof typeName !== "string") throw new TypeError("toPlain takes a message of the SDK's services (an object with $typeName)");
  const schema = registry.getMessage(typeName);
  if (schema === undefined) throw new TypeError(`toPlain: ${typeName} is not a message of the AdminService or RolloutService`);
  return toJson(schema, message, { registry, alwaysEmitImplicit: true }) as JsonObject;
}
