import { afterEach, describe, expect, it } from "vitest";
import { createRouterClient, RouterClientError, UpdateLoraRequest_Action, UpdateLoraResponseSchema } from "../sdk/src/index.js";
import { Code } from "@connectrpc/connect";
import { jsonRequest, startRouterProcess } from "./helpers/router.js";
import { startSimProcess } from "./helpers/sim.js";

/** UpdateLora: the same pool-wide LoRA action as REST, through the SDK's admin client. */

let cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
  cleanup = [];
});

describe("UpdateLora RPC", () => {
  it("sets and unmerges the adapter on every worker; a partial failure is UNAVAILABLE with the per-worker results", async () => {
    const sims = await Promise.all([startSimProcess(), startSimProcess()]);
    for (const s of sims) cleanup.push(() => s.stop());
    const r = await startRouterProcess(["--access-log-exclude-prefixes", "/", "--worker-urls", ...sims.map((s) => s.url)]);
    cleanup.push(() => r.stop());
    const client = createRouterClient({ baseUrl: r.url });
    const set = await client.admin.updateLora({ action: UpdateLoraRequest_Action.SET, body: { lora_nickname: "style", lora_path: "loras/style" } });
    expect(set.results.map((x: { statusCode: number }) => x.statusCode)).toEqual([200, 200]);
    expect(set.message).toMatch(/style.*2 worker/);
    expect(set.pool).toMatchObject([{ model: "", nicknames: ["style"], merged: true }]);
    const unmerge = await client.admin.updateLora({ action: UpdateLoraRequest_Action.UNMERGE, body: {} });
    expect(unmerge.pool).toMatchObject([{ merged: false }]);
    for (const s of sims) expect((await jsonRequest(`${s.url}/v1/list_loras`)).body.active.transformer).toMatchObject([{ nickname: "style", merged: false }]);

    // Only the first worker has "other" loaded: a set without a path fails on the second.
    expect((await jsonRequest(`${sims[0]!.url}/v1/set_lora`, { method: "POST", json: { lora_nickname: "other", lora_path: "loras/other" } })).status).toBe(200);
    const err = await client.admin.updateLora({ action: UpdateLoraRequest_Action.SET, body: { lora_nickname: "other" } }).then(
      () => null,
      (e: unknown) => e as RouterClientError,
    );
    // The SDK's error: the router's code, the RPC code, and the per-worker answers as details.
    expect(err).toMatchObject({ code: "upstream_failed", rpcCode: Code.Unavailable });
    const detail = err!.findDetails(UpdateLoraResponseSchema)[0]!;
    expect(detail.results.map((x: { statusCode: number }) => x.statusCode).sort()).toEqual([200, 500]);
    const missing = await client.admin.updateLora({ action: UpdateLoraRequest_Action.UNSPECIFIED, body: {} }).then(
      () => null,
      (e: unknown) => e as RouterClientError,
    );
    expect(missing).toMatchObject({ code: "invalid_request", rpcCode: Code.InvalidArgument });
  });
});
