import type { Control } from "../admin/control.js";
import type { Admission } from "../admission/admission.js";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import { createLoraOperation, type LoraOperation, type LoraSnapshot } from "./announced.js";
import { createDiskRefit } from "./disk.js";
import { createMemory } from "./memory.js";
import { createOperations, type PeerDrain } from "./operations.js";
import { createReconciler } from "./reconcile.js";
import { createRefitState } from "./state.js";
import type { PersistedState, StateStore } from "./state-store.js";
import { createTensorRefit } from "./tensor.js";
import type { TensorSend } from "./tensor-update.js";
import type {
  AbortResult,
  BeginCommand,
  BeginResult,
  CommitCommand,
  CommitResult,
  DiskRefitCommand,
  DiskRefitResult,
  MemoryCommand,
  MemoryResult,
  RefitStatus,
  TensorUpdateOutcome,
} from "./types.js";

/** Options of {@link createRefitCoordinator}. */
export interface RefitCoordinatorOptions {
  registry: Registry;
  admission: Admission;
  control: Control;
  logger: Logger;
  /** Default time to wait for in-flight generation before a refit or sleep. */
  drainTimeoutMs: number;
  /** Default time a two-phase refit may stay open. */
  refitTimeoutMs: number;
  store: StateStore | null;
  /** Other routers' drain before weights move (--state-store etcd); null with one router. */
  drainPeers?: PeerDrain | null;
}

/**
 * Refits and sleep/wake of the pool, in typed values. What makes "no answer
 * mixes old and new weights" true: new generation requests are held from the
 * moment a refit starts, the ones in flight finish, and only then do the
 * workers load new weights (operations.ts); a worker not on the pool's
 * weights is out of rotation until it is (reconcile.ts); one operation at a
 * time, a second one gets 409.
 */
export interface RefitCoordinator {
  /** The pool's weight version. */
  readonly version: string;
  status(): RefitStatus;
  updateWeightsFromDisk(command: DiskRefitCommand): Promise<DiskRefitResult>;
  begin(command?: BeginCommand): Promise<BeginResult>;
  updateTensors(workerUrl: string, send: TensorSend): Promise<TensorUpdateOutcome>;
  commit(command: CommitCommand): CommitResult;
  abort(reason?: string): AbortResult;
  releaseMemory(command: MemoryCommand): Promise<MemoryResult>;
  resumeMemory(command: MemoryCommand): Promise<MemoryResult>;
  /** Re-checks every worker against the pool's weights (the LoRA action calls it after a change). */
  sweep(): void;
  /** Runs a LoRA change as the pool's operation: held, drained here and on every router of a shared store, announced in the state (refit/announced.ts). */
  loraChange: LoraOperation;
  /** What the state carries of the pool's LoRA from now on (the LoRA pool, built after the coordinator). */
  shareLora(snapshot: LoraSnapshot): void;
  /** Another router on the shared store (etcd) committed weights: take its state; workers it saw load them are trusted, others re-synced. Ignored while an operation runs here. */
  adopt(saved: PersistedState): void;
}

export type { TensorSend } from "./tensor-update.js";

export function createRefitCoordinator(options: RefitCoordinatorOptions): RefitCoordinator {
  const { registry, admission, logger, drainTimeoutMs } = options;
  const broadcast = options.control.broadcast;
  const state = createRefitState({ registry, store: options.store, logger });
  const operations = createOperations(admission, () => reconciler.sweep(), options.drainPeers ?? null);
  const reconciler = createReconciler({ registry, state, operations, broadcast, logger });
  const tensor = createTensorRefit({ registry, state, operations, logger, drainTimeoutMs, refitTimeoutMs: options.refitTimeoutMs });
  const memory = createMemory({ registry, operations, reconciler, state, broadcast, drainTimeoutMs });
  return {
    get version() {
      return state.version;
    },
    status() {
      const op = operations.current;
      return {
        weightVersion: state.version,
        refits: state.refits,
        phase: op?.phase ?? "idle",
        operation: op?.kind ?? null,
        startedAtMs: op?.startedAtMs ?? null,
        updatedWorkers: op ? [...op.updated] : [],
        replayable: state.last?.kind === "disk",
        modelVersions: Object.fromEntries([...state.models].map(([model, w]) => [model, w.version])),
        heldRequests: admission.queued,
        inFlight: admission.inFlight,
      };
    },
    updateWeightsFromDisk: createDiskRefit({ registry, state, operations, reconciler, broadcast, drainTimeoutMs }),
    ...tensor,
    ...memory,
    sweep: () => reconciler.sweep(),
    loraChange: createLoraOperation(operations, state),
    shareLora(snapshot) {
      state.lora = snapshot;
    },
    adopt(saved) {
      if (operations.current) return;
      state.version = saved.version;
      state.refits = saved.refits;
      state.last = saved.last;
      state.models = new Map(Object.entries(saved.models ?? {}));
      state.remembered = saved.workers ?? {};
      reconciler.sweep();
    },
  };
}
