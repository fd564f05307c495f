/**
 * Counters behind `GET /sim/stats`. Tests use them to prove what a router did
 * to this worker: how many requests of each route arrived, how many were open
 * at once (a per-worker concurrency cap), and how many body bytes came in.
 */
export class SimStats {
  inFlight = 0;
  peakInFlight = 0;
  requestsTotal = 0;
  requestsByRoute: Record<string, number> = {};
  bytesReceived = 0;
  /** Generations that ran to the end of their GPU time (a dropped or failed answer still counts). */
  generationsRun = 0;
  /** Generation requests whose answer is not done yet (a subset of inFlight: probes and control calls are not counted). */
  generationsOpen = 0;
  /** Most generations open at once: a router's concurrency per worker, without the probes and control calls `peakInFlight` also counts. */
  peakGenerationsOpen = 0;
  /** Weight updates as they arrived (the last 100): when, and how many generations were still open then, so a test can prove a router drained before it sent the load. */
  weightUpdates: { route: string; received_at_ms: number; generations_open: number }[] = [];
  /** Sleep, wake and LoRA calls as they arrived (the last 100), the same way: a test proves a router drained before it put the worker to sleep or changed its adapter. */
  controlCalls: { route: string; received_at_ms: number; generations_open: number }[] = [];

  /** Marks a generation open; the returned function closes it (idempotent). */
  enterGeneration(): () => void {
    this.generationsOpen++;
    if (this.generationsOpen > this.peakGenerationsOpen) this.peakGenerationsOpen = this.generationsOpen;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.generationsOpen--;
    };
  }

  /** A weight update arrived (before it waits in the scheduler queue). */
  weightUpdateArrived(route: string): void {
    this.weightUpdates.push({ route, received_at_ms: Date.now(), generations_open: this.generationsOpen });
    if (this.weightUpdates.length > 100) this.weightUpdates.shift();
  }

  /** A release, resume or LoRA call arrived (before it waits in the scheduler queue). */
  controlCallArrived(route: string): void {
    this.controlCalls.push({ route, received_at_ms: Date.now(), generations_open: this.generationsOpen });
    if (this.controlCalls.length > 100) this.controlCalls.shift();
  }

  countRequest(route: string): void {
    this.requestsTotal++;
    this.requestsByRoute[route] = (this.requestsByRoute[route] ?? 0) + 1;
  }

  /** Marks a request open; the returned function closes it (idempotent). */
  enter(): () => void {
    this.inFlight++;
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight--;
    };
  }

  reset(): void {
    // in_flight is live state, not a statistic: keep it, restart the peak from it.
    this.peakInFlight = this.inFlight;
    this.peakGenerationsOpen = this.generationsOpen;
    this.requestsTotal = 0;
    this.requestsByRoute = {};
    this.bytesReceived = 0;
    this.generationsRun = 0;
    this.weightUpdates = [];
    this.controlCalls = [];
  }
}
