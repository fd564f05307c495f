/**
 * The worker's scheduler queue. A real worker has one scheduler process that
 * takes requests in arrival order: generations, weight loads and memory
 * release all wait their turn, which is why a router must not assume an
 * update overtakes queued generations. `concurrency` > 1 models a worker that
 * runs several dispatches at once; "exclusive" tasks (weight loads,
 * sleep/wake) still act as barriers: they start only when nothing runs, and
 * nothing queued after them starts before they end.
 *
 * Dynamic batching (SGLang's `--batching-mode dynamic`, `--batching-max-size`,
 * `--batching-delay-ms`; managers/scheduler.py): when the head of the queue
 * has a batch key, every task queued behind it with the same key (up to
 * `maxSize`) starts with it as one batch that takes one dispatch slot. The
 * scan skips what is not a generation (weight loads, sleep/wake, LoRA), as
 * the real one does: a generation queued after a weight update can so run
 * before it, on the old weights. If fewer than `maxSize` are there, the head
 * waits for partners until `delayMs` after its own arrival, then starts with
 * what it has. Each task's function gets the batch size, so it can take the
 * batch's time, and the dispatch's number (sim-only introspection: tests
 * group answers by it to see which requests ran together); all of a batch
 * start at once and so end together.
 */
export interface BatchingOptions {
  /** Most tasks in one batch; 1 = no batching. */
  maxSize: number;
  /** How long the head of the queue waits for partners, from its arrival. */
  delayMs: number;
}

export interface RunOptions {
  exclusive?: boolean;
  /** Tasks with equal keys may run as one batch; null/absent never batch. */
  batchKey?: string | null;
}

interface Task {
  exclusive: boolean;
  batchKey: string | null;
  arrivedAt: number;
  start: (batchSize: number, dispatch: number, done: () => void) => void;
}

export class Scheduler {
  private readonly queue: Task[] = [];
  /** Dispatches (a batch is one) started and not finished. */
  private slots = 0;
  private running = 0;
  private exclusiveRunning = false;
  private timer: NodeJS.Timeout | undefined;
  /** Dispatches started so far: the number of the next one. */
  private dispatches = 0;
  private readonly batching: BatchingOptions;

  constructor(
    private readonly concurrency: number,
    batching: BatchingOptions = { maxSize: 1, delayMs: 0 },
  ) {
    this.batching = batching;
  }

  /** Tasks started and not finished (each member of a batch counts). */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for their turn. */
  get waiting(): number {
    return this.queue.length;
  }

  run<T>(fn: (batchSize: number, dispatch: number) => Promise<T>, options: RunOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const exclusive = options.exclusive ?? false;
      this.queue.push({
        exclusive,
        batchKey: exclusive || this.batching.maxSize <= 1 ? null : (options.batchKey ?? null),
        arrivedAt: performance.now(),
        start: (batchSize, dispatch, done) => {
          this.running++;
          if (exclusive) this.exclusiveRunning = true;
          // Promise.resolve().then so a synchronous throw in fn is a rejection too.
          Promise.resolve()
            .then(() => fn(batchSize, dispatch))
            .then(resolve, reject)
            .finally(() => {
              this.running--;
              if (exclusive) this.exclusiveRunning = false;
              done();
            });
        },
      });
      this.pump();
    });
  }

  private pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Strict FIFO: the head blocks everything behind it, as in one queue.
    while (this.queue.length > 0 && !this.exclusiveRunning) {
      const head = this.queue[0]!;
      if (head.exclusive ? this.slots > 0 : this.slots >= this.concurrency) return;
      let batch = [head];
      if (head.batchKey !== null) {
        batch = this.partners(head);
        const waitMs = head.arrivedAt + this.batching.delayMs - performance.now();
        if (batch.length < this.batching.maxSize && waitMs > 0) {
          this.timer = setTimeout(() => this.pump(), waitMs);
          this.timer.unref();
          return;
        }
      }
      for (const task of batch) this.queue.splice(this.queue.indexOf(task), 1);
      this.slots++;
      const dispatch = ++this.dispatches;
      let left = batch.length;
      const done = () => {
        if (--left > 0) return;
        this.slots--;
        this.pump();
      };
      for (const task of batch) task.start(batch.length, dispatch, done);
    }
  }

  /** The head and the compatible tasks anywhere behind it, at most maxSize; exclusive tasks are skipped, not barriers. */
  private partners(head: Task): Task[] {
    const batch = [head];
    for (let i = 1; i < this.queue.length && batch.length < this.batching.maxSize; i++) {
      const task = this.queue[i]!;
      if (task.batchKey === head.batchKey) batch.push(task);
    }
    return batch;
  }
}
