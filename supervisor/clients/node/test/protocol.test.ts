// The client against a scripted server: what a real supervisor does
// rarely or never on cue (frames cut anywhere, replies out of order, a
// frame over the limit, an id-0 error, another protocol, silence).

import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Corral, CorralError, PROTOCOL_VERSION, defaultSocket } from "../src/index.js";
import { FrameDecoder, encodeFrame } from "../src/frames.js";

/** One client connection, as the scripted server sees it. */
interface Peer {
  /** The next JSON frame from the client. */
  receive(): Promise<any>;
  /** Sends raw bytes. */
  write(bytes: Uint8Array): Promise<void>;
  /** Sends `message` as a JSON frame. */
  send(message: unknown): Promise<void>;
  socket: net.Socket;
}

let dir: string;

/** A server on a fresh socket that runs `script` for each client. */
async function serve(script: (peer: Peer) => Promise<void>): Promise<{ socket: string; close(): void }> {
  const socket = path.join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
  const server = net.createServer((connection) => {
    const decoder = new FrameDecoder();
    const frames: any[] = [];
    const waiting: Array<(frame: any) => void> = [];
    connection.on("data", (chunk: Buffer) => {
      for (const body of decoder.push(chunk)) {
        const frame = JSON.parse(body.toString("utf8"));
        const waiter = waiting.shift();
        if (waiter) {
          waiter(frame);
        } else {
          frames.push(frame);
        }
      }
    });
    connection.on("error", () => {});
    const peer: Peer = {
      receive: () => (frames.length > 0 ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve))),
      write: (bytes) => new Promise((resolve) => connection.write(bytes, () => resolve())),
      send: (message) => peer.write(encodeFrame(Buffer.from(JSON.stringify(message)))),
      socket: connection,
    };
    script(peer).catch((error) => {
      console.error("script failed:", error);
      connection.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, close: () => server.close() };
}

/** Answers the hello as corral does. */
async function greet(peer: Peer): Promise<any> {
  const hello = await peer.receive();
  await peer.send({ protocol: PROTOCOL_VERSION, server: "scripted" });
  return hello;
}

function frame(message: unknown): Buffer {
  return encodeFrame(Buffer.from(JSON.stringify(message)));
}

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

describe("the client against a scripted server", { timeout: 60_000 }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-node-proto-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads frames cut byte by byte and merged, and matches replies by id out of order", async () => {
    const server = await serve(async (peer) => {
      const hello = await peer.receive();
      assert.equal(hello.protocol, PROTOCOL_VERSION);
      assert.equal(hello.client, "scripted test");
      for (const byte of frame({ protocol: PROTOCOL_VERSION, server: "9.9.9" })) {
        await peer.write(Uint8Array.of(byte));
      }
      const requests = [await peer.receive(), await peer.receive(), await peer.receive()];
      const replies = requests.reverse().map((request) => {
        const { input } = request.body.Call;
        return frame({ id: request.id, reply: { Called: typeof input === "string" ? [...Buffer.from(input)] : input } });
      });
      // All three in one write, the last request's reply first; then one more, in pieces.
      await peer.write(Buffer.concat(replies));
      const fourth = await peer.receive();
      const last = frame({ id: fourth.id, reply: { Called: [1, 2, 3] } });
      await peer.write(last.subarray(0, 3));
      await peer.write(last.subarray(3, 9));
      await peer.write(last.subarray(9));
    });
    const corral = await Corral.connect({ socket: server.socket, client: "scripted test" });
    assert.equal(corral.server, "9.9.9");
    const replies = await Promise.all([
      corral.callText("p", "m", "one"),
      corral.call("p", "m", Uint8Array.of(0, 255)),
      corral.callText("p", "m", "three ü"),
    ]);
    assert.deepEqual(replies, ["one", Uint8Array.of(0, 255), "three ü"]);
    assert.deepEqual(await corral.call("p", "m"), Uint8Array.of(1, 2, 3));
    corral.close();
    server.close();
  });

  it("sends strings as strings, bytes as numbers, the deadline as timeout_ms", async () => {
    const seen: any[] = [];
    const server = await serve(async (peer) => {
      await greet(peer);
      for (;;) {
        const request = await peer.receive();
        seen.push(request.body);
        setTimeout(() => void peer.send({ id: request.id, reply: { Called: [] } }), 20);
      }
    });
    const corral = await Corral.connect({ socket: server.socket, timeoutMs: 5000 });
    await corral.call("p", "m", "text \u{1F600} \"quoted\"");
    await corral.call("p", "m", Uint8Array.of(1, 2), { timeoutMs: 70 });
    await corral.call("p", "m", "lone \ud800 surrogate", { timeoutMs: 0 });
    // Longer than a u32 of ms, and than setTimeout takes: no timer fires early.
    await corral.call("p", "m", "", { timeoutMs: 1e12 });
    assert.deepEqual(seen, [
      { Call: { plugin: "p", method: "m", timeout_ms: 5000, input: "text \u{1F600} \"quoted\"" } },
      { Call: { plugin: "p", method: "m", timeout_ms: 70, input: [1, 2] } },
      // What the supervisor would refuse, replaced as UTF-8 has it.
      { Call: { plugin: "p", method: "m", timeout_ms: 0, input: "lone \ufffd surrogate" } },
      { Call: { plugin: "p", method: "m", timeout_ms: 0xffff_ffff, input: "" } },
    ]);
    corral.close();
    server.close();
  });

  it("gives up on a call 1 s past its deadline when the server stays silent", async () => {
    const server = await serve(async (peer) => {
      await greet(peer);
      for (;;) {
        const request = await peer.receive();
        if (request.body.Call.method === "late") {
          // Answers long after the client gave up: dropped.
          setTimeout(() => void peer.send({ id: request.id, reply: { Called: [] } }), 1500);
        }
      }
    });
    const corral = await Corral.connect({ socket: server.socket });
    const start = Date.now();
    const error = await rejectsWith(corral.call("p", "late", "", { timeoutMs: 100 }), "timeout");
    const waited = Date.now() - start;
    assert.ok(waited >= 1000 && waited < 3000, `waited ${waited} ms`);
    assert.match(error.message, /1100 ms/);
    await new Promise((resolve) => setTimeout(resolve, 700));
    corral.close();
    server.close();
  });

  it("fails everything in flight, and what follows, with an id-0 error's kind", async () => {
    const server = await serve(async (peer) => {
      await greet(peer);
      await peer.receive();
      await peer.receive();
      await peer.send({ id: 0, reply: { Error: { kind: "permission_denied", message: "uid 7 may not use this corral" } } });
      peer.socket.end();
    });
    const corral = await Corral.connect({ socket: server.socket });
    const events = corral.followEvents();
    const call = corral.call("p", "m", "x");
    const next = events.next();
    const error = await rejectsWith(call, "permission_denied");
    assert.equal(error.message, "uid 7 may not use this corral");
    await rejectsWith(next, "permission_denied");
    await rejectsWith(corral.list(), "permission_denied");
    await corral.closed;
    server.close();
  });

  it("refuses a frame over the limit from the server", async () => {
    const server = await serve(async (peer) => {
      await greet(peer);
      await peer.receive();
      const header = Buffer.alloc(4);
      header.writeUInt32LE(16 * 1024 * 1024 + 1);
      await peer.write(header);
    });
    const corral = await Corral.connect({ socket: server.socket });
    const error = await rejectsWith(corral.list(), "protocol");
    assert.match(error.message, /over the limit/);
    await corral.closed;
    server.close();
  });

  it("refuses a supervisor of another protocol at connect", async () => {
    const server = await serve(async (peer) => {
      await peer.receive();
      await peer.send({ protocol: PROTOCOL_VERSION + 1, server: "2.0.0" });
      await peer.send({ id: 0, reply: { Error: { kind: "protocol", message: "client speaks protocol 7" } } });
      peer.socket.end();
    });
    const error = await rejectsWith(Corral.connect({ socket: server.socket }), "protocol");
    assert.match(error.message, new RegExp(`speaks protocol ${PROTOCOL_VERSION + 1}, this client speaks ${PROTOCOL_VERSION}`));
    server.close();
  });

  it("fails a request over the frame limit alone, before sending it", async () => {
    const server = await serve(async (peer) => {
      await greet(peer);
      for (;;) {
        const request = await peer.receive();
        await peer.send({ id: request.id, reply: { Called: request.body.Call.input } });
      }
    });
    const corral = await Corral.connect({ socket: server.socket, maxFrameBytes: 64 * 1024 });
    const error = await rejectsWith(corral.call("p", "m", new Uint8Array(64 * 1024)), "bad_request");
    assert.match(error.message, /too large/);
    assert.deepEqual(await corral.call("p", "m", Uint8Array.of(9)), Uint8Array.of(9));
    corral.close();
    server.close();
  });

  it("close() fails calls in flight and ends streams quietly", async () => {
    const server = await serve(async (peer) => {
      await greet(peer);
      for (;;) {
        await peer.receive();
      }
    });
    const corral = await Corral.connect({ socket: server.socket });
    const call = corral.call("p", "m");
    const events = corral.followEvents();
    const next = events.next();
    corral.close();
    await rejectsWith(call, "disconnected");
    assert.deepEqual(await next, { value: undefined, done: true });
    await rejectsWith(corral.call("p", "m"), "disconnected");
    await corral.closed;
    server.close();
  });

  it("says where it could not connect", async () => {
    const missing = path.join(dir, "nobody.sock");
    const error = await rejectsWith(Corral.connect({ socket: missing }), "connect");
    assert.ok(error.message.includes(missing), error.message);
  });

  it("picks the default socket as corral serve does", () => {
    assert.equal(defaultSocket({ CORRAL_SOCKET: "/tmp/x.sock", XDG_RUNTIME_DIR: "/run/user/7" }), "/tmp/x.sock");
    const root = process.getuid?.() === 0;
    assert.equal(defaultSocket({ XDG_RUNTIME_DIR: "/run/user/7" }), root ? "/run/corral/corral.sock" : "/run/user/7/corral/corral.sock");
    assert.equal(defaultSocket({}), root ? "/run/corral/corral.sock" : undefined);
  });
});
