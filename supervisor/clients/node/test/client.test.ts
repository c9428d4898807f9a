// The client against a real `corral serve` with the hello example plugin
// (and `pdf`, the same library providing `exporter`).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { Corral, CorralError, type CorralEvent } from "../src/index.js";
import { Supervisor } from "./supervisor.js";

/** Asserts `promise` rejects with a CorralError of `kind`; returns it. */
async function rejectsWith(promise: Promise<unknown>, kind: string): Promise<CorralError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CorralError, `not a CorralError: ${String(error)}`);
    assert.equal(error.kind, kind, error.message);
    return error;
  }
  assert.fail(`no ${kind} error`);
}

/** The next item of `stream` within `ms`. */
async function next<T>(stream: AsyncIterator<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
  });
  try {
    const result = await Promise.race([stream.next(), timeout]);
    assert.ok(!result.done, "the stream ended");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Items of `stream` until one matches. */
async function find<T>(stream: AsyncIterator<T>, matches: (item: T) => boolean): Promise<T> {
  for (;;) {
    const item = await next(stream);
    if (matches(item)) {
      return item;
    }
  }
}

describe("against a real corral serve", { timeout: 180_000 }, () => {
  let supervisor: Supervisor;
  let corral: Corral;

  before(async () => {
    supervisor = await Supervisor.start();
    corral = await supervisor.connect();
  });

  after(async () => {
    corral?.close();
    await supervisor?.stop();
  });

  it("shakes hands and calls hello", async () => {
    assert.match(corral.server, /^\d+\.\d+\.\d+/);
    assert.equal(await corral.callText("hello", "upper", "hi from node"), "HI FROM NODE");
    assert.deepEqual(await corral.call("hello", "echo", Uint8Array.of(0, 255, 7)), Uint8Array.of(0, 255, 7));
    assert.equal(await corral.callText("hello", "sum", "40 2"), "42");
    assert.deepEqual(await corral.callJson("hello", "echo", { a: [1, "ü"] }), { a: [1, "ü"] });
    assert.deepEqual(await corral.call("hello", "echo"), new Uint8Array(0));
  });

  it("matches replies to calls in flight by id, out of order", async () => {
    const order: string[] = [];
    const slow = corral.callText("hello", "sleep", "600").then((reply) => order.push(reply));
    const fast = corral.callText("pdf", "upper", "fast").then((reply) => order.push(reply));
    const many = Promise.all(
      Array.from({ length: 100 }, (_, i) => corral.callText("pdf", "echo", `call ${i}`)),
    );
    await Promise.all([slow, fast]);
    assert.deepEqual(order, ["FAST", "slept 600 ms"]);
    assert.deepEqual(await many, Array.from({ length: 100 }, (_, i) => `call ${i}`));
  });

  it("round-trips a 1 MiB input and reply byte-exact", async (t) => {
    const input = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7919) % 256);
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      const start = performance.now();
      const reply = await corral.call("hello", "echo", input);
      times.push(performance.now() - start);
      assert.equal(reply.length, input.length);
      assert.ok(Buffer.from(reply).equals(Buffer.from(input)), "the reply differs");
    }
    const text = "é".repeat(1 << 19);
    assert.equal(await corral.callText("hello", "echo", text), text);
    t.diagnostic(`1 MiB echo: ${times.map((ms) => ms.toFixed(0)).join(", ")} ms`);
  });

  it("fails calls with the kind of what went wrong", async () => {
    const unknown = await rejectsWith(corral.call("hello", "nope"), "unknown_method");
    assert.match(unknown.message, /nope/);
    await rejectsWith(corral.call("nobody", "echo"), "unknown_plugin");
    await rejectsWith(corral.call("hello", "sum", "1 x"), "plugin");
    await rejectsWith(corral.call("hello", "@reserved"), "bad_request");
    // None of these hurt the connection.
    assert.equal(await corral.callText("hello", "echo", "still here"), "still here");
  });

  it("fails a call whose worker crashes with crashed, and hello answers again after its restart", async () => {
    const before = (await corral.list()).find((p) => p.name === "hello")!;
    const error = await rejectsWith(corral.call("hello", "crash"), "crashed");
    assert.match(error.message, /signal|abort/i);
    await supervisor.waitReady("hello", before.pid);
    assert.equal(await corral.callText("hello", "upper", "again"), "AGAIN");
    const after = (await corral.list()).find((p) => p.name === "hello")!;
    assert.ok(after.restarts > before.restarts, `restarts ${before.restarts} -> ${after.restarts}`);
    assert.equal(after.last_exit?.cause, "signal");
  });

  it("fails a call past its deadline with timeout", async () => {
    const before = (await corral.list()).find((p) => p.name === "hello")!;
    const start = Date.now();
    await rejectsWith(corral.call("hello", "sleep", "1500", { timeoutMs: 300 }), "timeout");
    assert.ok(Date.now() - start < 1300, `took ${Date.now() - start} ms`);
    // A caller's deadline shorter than the plugin's does not kill the
    // worker: it answers once the sleep is over.
    assert.equal(await corral.callText("hello", "echo", "awake"), "awake");
    const after = (await corral.list()).find((p) => p.name === "hello")!;
    assert.equal(after.pid, before.pid);
  });

  it("lists plugins, finds providers and inspects one", async () => {
    const plugins = await corral.list();
    assert.deepEqual(plugins.map((p) => p.name).sort(), ["hello", "pdf"]);
    const hello = plugins.find((p) => p.name === "hello")!;
    assert.equal(hello.state, "ready");
    assert.equal(hello.version, "1.0.0");
    assert.equal(typeof hello.pid, "number");
    assert.ok(hello.calls > 0);
    assert.deepEqual(hello.provides, []);
    assert.deepEqual((await corral.providing("exporter")).map((p) => p.name), ["pdf"]);
    assert.deepEqual(await corral.providing("nothing"), []);

    const details = await corral.inspect("hello");
    assert.equal(details.info.name, "hello");
    assert.equal(details.kind, "native");
    assert.match(details.entry, /libhello\.so$/);
    assert.equal(typeof details.limits.call_timeout_ms, "number");
    assert.ok(Array.isArray(details.layers));
    await rejectsWith(corral.inspect("nobody"), "unknown_plugin");
  });

  it("delivers what one connection publishes to another's subscription", async () => {
    const subscriber = await supervisor.connect();
    try {
      const news = await subscriber.subscribe(["news.*", "exact"]);
      assert.equal(await corral.publish("news.today", "hello subscribers"), 1);
      assert.equal(await corral.publish("exact", Uint8Array.of(0, 1, 255)), 1);
      assert.equal(await corral.publish("other", "nobody listens"), 0);
      const first = await next(news);
      assert.deepEqual(
        { ...first, payload: Buffer.from(first.payload).toString() },
        { topic: "news.today", from: "", payload: "hello subscribers" },
      );
      assert.deepEqual((await next(news)).payload, Uint8Array.of(0, 1, 255));
      // Breaking out of `for await` closes the subscription.
      await corral.publish("news.more", "1");
      for await (const message of news) {
        assert.equal(message.topic, "news.more");
        break;
      }
      assert.deepEqual(await news.next(), { value: undefined, done: true });
      await rejectsWith(subscriber.subscribe("bad topic!"), "bad_request");
      await rejectsWith(corral.publish("", "x"), "bad_request");
      // The connection still calls.
      assert.equal(await subscriber.callText("hello", "echo", "ok"), "ok");
    } finally {
      subscriber.close();
    }
  });

  it("lists events, and follows new ones as they happen", async () => {
    const events = await corral.events();
    assert.ok(events.length > 0);
    assert.ok(
      events.some((e) => e.plugin === "hello" && e.kind === "state" && e.detail.endsWith("ready")),
      JSON.stringify(events),
    );
    const last = events[events.length - 1]!;
    assert.deepEqual(await corral.events({ after: last.seq }), []);

    const followed = corral.followEvents({ after: last.seq });
    await corral.control("pdf", "restart");
    const event: CorralEvent = await find(followed, (e) => e.plugin === "pdf" && e.detail.endsWith("ready"));
    assert.ok(event.seq > last.seq);
    followed.close();
    assert.equal(await corral.callText("pdf", "echo", "after restart"), "after restart");
  });

  it("runs admin requests: logs, control, kill", async () => {
    // Hello logs at debug level when it starts ("hello ready").
    const lines: string[] = [];
    for await (const line of corral.logs("hello")) {
      lines.push(line);
    }
    assert.ok(lines.some((line) => line.includes("hello ready")), lines.join("\n"));

    const following = corral.logs("hello", { sinceUnixMs: Date.now(), follow: true });
    const stopped = await corral.control("hello", "stop");
    assert.equal(stopped.state, "stopped");
    await rejectsWith(corral.call("hello", "echo"), "unavailable");
    const started = await corral.control("hello", "start");
    assert.equal(started.state, "ready");
    await find(following, (line) => line.includes("hello ready"));
    following.close();

    const pdf = (await corral.list()).find((p) => p.name === "pdf")!;
    const killed = await corral.kill("pdf", "SIGKILL");
    assert.equal(killed.name, "pdf");
    const back = await supervisor.waitReady("pdf", pdf.pid);
    assert.equal(back.last_exit?.signal, 9);
    await rejectsWith(corral.kill("pdf", "SIGNOPE" as NodeJS.Signals), "bad_request");
    await rejectsWith(corral.logs("nobody").next(), "unknown_plugin");
    // Faults need `corral serve --faults`.
    await rejectsWith(corral.inject("hello", "crash_on_next_call"), "permission_denied");
  });

  it("connects to $CORRAL_SOCKET by default", async () => {
    const saved = process.env.CORRAL_SOCKET;
    process.env.CORRAL_SOCKET = supervisor.socket;
    try {
      const byDefault = await Corral.connect();
      assert.equal(await byDefault.callText("hello", "echo", "default"), "default");
      byDefault.close();
    } finally {
      if (saved === undefined) {
        delete process.env.CORRAL_SOCKET;
      } else {
        process.env.CORRAL_SOCKET = saved;
      }
    }
  });

  it("runs examples/call.mjs: the reply on stdout, a refusal on stderr with exit 1", async () => {
    const script = fileURLToPath(new URL("../../examples/call.mjs", import.meta.url));
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env = { ...process.env, CORRAL_SOCKET: supervisor.socket };
        execFile(process.execPath, [script, ...args], { env }, (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      });
    assert.deepEqual(await run(["hello", "upper", "demo"]), { code: 0, stdout: "DEMO", stderr: "" });
    const refused = await run(["hello", "nope"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^corral: unknown_method: /);
    assert.equal((await run(["hello"])).code, 2);
  });
});
