import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../log.js";
import { parseGainCurve, type GainCurve } from "./latency.js";
import { LoraState } from "./lora.js";
import type { ResolvedSimOptions } from "./options.js";
import { Scheduler } from "./scheduler.js";
import { SimStats } from "./stats.js";

/** What `POST /sim/config` can change while the worker runs. */
export interface RuntimeConfig {
  speed: number;
  failureRate: number;
  failUpdates: boolean;
  weightLoadMs: number;
}

/** Everything one simulated worker holds; shared by all route modules. */
export class SimState {
  readonly options: ResolvedSimOptions;
  readonly config: RuntimeConfig;
  readonly stats = new SimStats();
  readonly scheduler: Scheduler;
  /** The parsed `batchingGain` table. */
  readonly gainCurve: GainCurve;
  readonly log: Logger;
  /** Process start in seconds: `/v1/models` `created`, so a restart shows. */
  readonly startedAtS = Math.floor(Date.now() / 1000);
  /** Generation routes are held until this time (warm-up). */
  readonly readyAt: number;
  /** Set once listening. */
  url = "";
  /** The weights the worker holds: the model path at start, then what updates loaded. */
  weights: string;
  sleeping = false;
  /** LoRA adapters loaded and active (see lora.ts). */
  readonly lora = new LoraState();
  private readonly closing = new AbortController();

  constructor(options: ResolvedSimOptions, log: Logger) {
    this.options = options;
    this.log = log;
    this.config = {
      speed: options.speed,
      failureRate: options.failureRate,
      failUpdates: options.failUpdates,
      weightLoadMs: options.weightLoadMs,
    };
    this.scheduler = new Scheduler(options.schedulerConcurrency, { maxSize: options.batchingMaxSize, delayMs: options.batchingDelayMs });
    this.gainCurve = parseGainCurve(options.batchingGain);
    this.weights = options.modelPath;
    this.readyAt = Date.now() + options.warmupMs;
  }

  /** Aborted on close so pending simulated work does not keep the process alive. */
  get closeSignal(): AbortSignal {
    return this.closing.signal;
  }

  close(): void {
    this.closing.abort();
  }

  /** A timer that ends early (rejecting) when the worker closes. */
  delay(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return sleep(ms, undefined, { signal: this.closing.signal });
  }

  /** Rolls the dice for `failureRate`. */
  shouldFail(): boolean {
    return this.config.failureRate > 0 && Math.random() < this.config.failureRate;
  }
}
