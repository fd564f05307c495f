import { defineConfig } from "vitest/config";

// Tests start real router and worker processes and talk to them over
// sockets. On a 2-core machine, running test files in parallel makes their
// timings (health intervals, queue timeouts) fight for CPU, so files run one
// after another; each test gets time for process start-up.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
