import { RouterError } from "../errors.js";
import type { Registry } from "../registry/registry.js";
import type { Operation, Operations } from "./operations.js";
import type { TensorUpdateOutcome } from "./types.js";

/** Delivers one worker's update and calls `answered` with the worker's status and answer before it resolves. */
export type TensorSend = (answered: (status: number, answer: Buffer) => void) => Promise<void>;

/** The open two-phase refit, else 409 `no_refit_in_progress` saying `what` to do. */
export function openTensorRefit(operations: Operations, what: string): Operation {
  const op = operations.current;
  if (op?.kind !== "tensor" || op.phase !== "open") throw new RouterError("no_refit_in_progress", what);
  return op;
}

/** A worker loaded the tensors when it answered 200 and did not say success:false. */
function loaded(status: number, answer: Buffer): boolean {
  if (status !== 200) return false;
  try {
    return (JSON.parse(answer.toString("utf8")) as { success?: unknown }).success !== false;
  } catch {
    return true; // not JSON: the status decides
  }
}

/**
 * One worker's tensor update inside an open refit, whatever carries it
 * (REST streams the client's body through, the RPC posts its JSON). 409
 * without an open refit, before anything is sent. A send that fails before
 * the worker answered leaves the worker not updated.
 */
export function createTensorUpdate(registry: Registry, operations: Operations) {
  /**
   * Records a worker's answer; true when it loaded the tensors. An answer
   * that arrives after its refit ended (aborted, timed out, committed) leaves
   * the worker with weights nobody committed: out of rotation.
   */
  function recorded(token: Operation, workerUrl: string, status: number, answer: Buffer): boolean {
    const ok = loaded(status, answer);
    if (token !== operations.current) {
      if (ok && registry.get(workerUrl)) registry.weightsUnknown(workerUrl, "stale_weights", "a tensor update finished after its refit ended: holds uncommitted weights");
      return ok;
    }
    token.pending.delete(workerUrl);
    if (ok) token.updated.add(workerUrl);
    else token.updated.delete(workerUrl);
    return ok;
  }

  return async function updateTensors(workerUrl: string, send: TensorSend): Promise<TensorUpdateOutcome> {
    const token = openTensorRefit(operations, "update_weights_from_tensor needs an open refit: POST /refit/begin first (it holds and drains traffic so no answer mixes weights), then /refit/commit");
    token.pending.add(workerUrl);
    let outcome: TensorUpdateOutcome | null = null;
    const answered = (status: number, answer: Buffer) => {
      if (outcome === null) outcome = { workerUrl, ok: recorded(token, workerUrl, status, answer), status };
    };
    try {
      await send(answered);
    } finally {
      if (outcome === null) outcome = { workerUrl, ok: recorded(token, workerUrl, 0, Buffer.alloc(0)), status: 0 };
    }
    return outcome;
  };
}
