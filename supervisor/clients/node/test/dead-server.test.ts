// A supervisor that dies under its clients: what waits on it fails.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CorralError } from "../src/index.js";
import { Supervisor } from "./supervisor.js";

describe("a supervisor that dies", { timeout: 120_000 }, () => {
  let supervisor: Supervisor;

  before(async () => {
    supervisor = await Supervisor.start();
  });

  after(async () => {
    await supervisor?.stop();
  });

  it("fails the calls and streams waiting on it with disconnected", async () => {
    const corral = await supervisor.connect();
    const news = await corral.subscribe("news");
    const events = corral.followEvents();
    const sleeping = corral.call("hello", "sleep", "20000", { timeoutMs: 30_000 });
    const reading = news.next();
    // The call is in flight once the plugin counts it.
    for (;;) {
      const hello = (await corral.list()).find((p) => p.name === "hello")!;
      if (hello.in_flight > 0) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const settled = Promise.allSettled([sleeping, reading]);
    await supervisor.kill("SIGKILL");
    const [call, message] = await settled;
    for (const settled of [call, message]) {
      assert.equal(settled.status, "rejected");
      const error: unknown = settled.reason;
      assert.ok(error instanceof CorralError, String(error));
      assert.equal(error.kind, "disconnected");
    }
    // Events kept before the end are still read, then the end.
    await assert.rejects(async () => {
      for await (const event of events) {
        assert.equal(typeof event.seq, "number");
      }
    }, (error: unknown) => error instanceof CorralError && error.kind === "disconnected");
    await assert.rejects(corral.list(), (error: unknown) => error instanceof CorralError && error.kind === "disconnected");
    await corral.closed;
  });
});
