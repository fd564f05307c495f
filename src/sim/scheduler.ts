/**
 * The worker's scheduler queue. A real worker has one scheduler process that
 * takes requests in arrival order: generations, weight loads and memory
 * release all wait their turn, which is why a router must not assume an
 * update overtakes queued generations. `concurrency` > 1 models a worker that
 * batches several generations; "exclusive" tasks (weight loads, sleep/wake)
 * still act as barriers: they start only when nothing runs, and nothing
 * queued after them starts before they end.
 */
interface Task {
  exclusive: boolean;
  start: () => void;
}

export class Scheduler {
  private readonly queue: Task[] = [];
  private running = 0;
  private exclusiveRunning = false;

  constructor(private readonly concurrency: number) {}

  /** Tasks started and not finished. */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for their turn. */
  get waiting(): number {
    return this.queue.length;
  }

  run<T>(fn: () => Promise<T>, options: { exclusive?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const exclusive = options.exclusive ?? false;
      this.queue.push({
        exclusive,
        start: () => {
          this.running++;
          if (exclusive) this.exclusiveRunning = true;
          // Promise.resolve().then so a synchronous throw in fn is a rejection too.
          Promise.resolve()
            .then(fn)
            .then(resolve, reject)
            .finally(() => {
              this.running--;
              if (exclusive) this.exclusiveRunning = false;
              this.pump();
            });
        },
      });
      this.pump();
    });
  }

  private pump(): void {
    // Strict FIFO: the head blocks everything behind it, as in one queue.
    while (this.queue.length > 0 && !this.exclusiveRunning) {
      const head = this.queue[0]!;
      if (head.exclusive ? this.running > 0 : this.running >= this.concurrency) return;
      this.queue.shift();
      head.start();
    }
  }
}
