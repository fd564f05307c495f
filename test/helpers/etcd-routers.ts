/**
 * The frame of a test file that runs routers on a real etcd (Debian's
 * etcd-server): one etcd for the file, started when the tool is there;
 * routers and simulated workers as processes, stopped after each test.
 */
import { afterAll, afterEach, beforeAll } from "vitest";
import { startEtcd, type EtcdServer } from "./etcd.js";
import { startRouterProcess, type RouterProcess } from "./router.js";
import { startSimProcess, type SimProcess } from "./sim.js";
import { etcdTool, type Tool } from "./tools.js";

export interface EtcdRouters {
  /** etcd-server, for needTools. */
  readonly tool: Tool;
  /** The file's etcd (only once needTools passed). */
  server(): EtcdServer;
  /** A router process (access log off), stopped after the test. */
  router(args: string[]): Promise<RouterProcess>;
  /** A simulated worker process, stopped after the test. */
  sim(args?: string[]): Promise<SimProcess>;
}

export function useEtcdRouters(): EtcdRouters {
  const tool = etcdTool();
  let etcd: EtcdServer | null = null;
  const started: { stop(): Promise<unknown> }[] = [];
  beforeAll(async () => {
    if (tool.path !== undefined) etcd = await startEtcd(tool);
  }, 30_000);
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  return {
    tool,
    server: () => etcd!,
    async router(args) {
      const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", ...args]);
      started.push(r);
      return r;
    },
    async sim(args = []) {
      const s = await startSimProcess(args);
      started.push(s);
      return s;
    },
  };
}
