import type { RouterOptions } from "../config/options.js";
import type { Core } from "./core.js";
import type { Doors } from "./doors.js";

/**
 * The pool the router starts with: a restarted router first serves the
 * workers its state (file or etcd) recorded (RL frameworks register once,
 * at start), then what the command line adds; from then on, the state
 * follows the registry, and with etcd this router follows other routers'
 * workers and refits.
 */
export async function registerStartingPool(core: Core, doors: Doors, options: RouterOptions): Promise<void> {
  const { registry, admission, refit } = core;
  await core.state.start({
    registry,
    control: core.control,
    restorer: {
      addWorker: (url) => doors.control.addWorker(url),
      quarantine: (url) => registry.setQuarantined(url, true),
      drain: (url) => registry.setDraining(url, true),
      markSleeping: (url) => registry.markSleeping(url),
    },
    follower: {
      hold: (reason, giveUp) => admission.hold(reason, giveUp),
      adopt: (s) => refit.adopt(s),
      adoptLora: (shared) => core.lora.adopt(shared),
      fingerprintOf: (url) => registry.get(url)?.capabilities.instanceFingerprint,
      loaded: (url, version) => registry.weightsLoaded(url, version),
      whenIdle: (ms) => admission.whenIdle(ms),
      workers: () => registry.all().map((w) => w.url),
      distrust: (url, why) => registry.weightsUnknown(url, "stale_weights", why),
      asleep: (url) => registry.markSleeping(url),
    },
    severInFlight: (error) => doors.inFlight.severAll(error),
  });
  await Promise.all(options.workerUrls.map((u) => doors.control.addWorker(u)));
}
