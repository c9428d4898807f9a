// Frames and the JSON form of bytes, without a supervisor.

import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { PROTOCOL_VERSION } from "../src/index.js";
import {
  FrameDecoder,
  FrameTooLarge,
  bytesOf,
  encodeFrame,
  jsonFrame,
  readByteArray,
} from "../src/frames.js";

/** A deterministic pseudo-random number generator (xorshift). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

describe("FrameDecoder", () => {
  it("cuts frames split across chunks and merged in one, whatever the cuts", () => {
    const bodies = [Buffer.from("{}"), Buffer.alloc(0), Buffer.from("x".repeat(70_000)), Buffer.from("[1,2]")];
    const stream = Buffer.concat(bodies.map((body) => encodeFrame(body)));
    const next = random(7);
    for (let round = 0; round < 200; round++) {
      const decoder = new FrameDecoder();
      const got: Buffer[] = [];
      let at = 0;
      while (at < stream.length) {
        // Mostly tiny cuts (split headers), sometimes large ones (merged frames).
        const size = next() < 0.5 ? 1 + Math.floor(next() * 5) : 1 + Math.floor(next() * 100_000);
        got.push(...decoder.push(stream.subarray(at, at + size)));
        at += size;
      }
      assert.deepEqual(got.map(String), bodies.map(String));
      assert.equal(decoder.pending, 0);
    }
  });

  it("waits for the rest of a frame", () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame(Buffer.from("hello"));
    assert.deepEqual(decoder.push(frame.subarray(0, 2)), []);
    assert.deepEqual(decoder.push(frame.subarray(2, 6)), []);
    assert.deepEqual(decoder.push(frame.subarray(6)).map(String), ["hello"]);
  });

  it("refuses a frame over the limit from its header, before its body", () => {
    const decoder = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(1025);
    assert.throws(() => decoder.push(header), (error: unknown) => error instanceof FrameTooLarge && error.len === 1025);
    assert.deepEqual(new FrameDecoder(1024).push(encodeFrame(Buffer.alloc(1024))).length, 1);
    assert.throws(() => encodeFrame(Buffer.alloc(1025), 1024), FrameTooLarge);
    assert.throws(() => jsonFrame(["[", new Uint8Array(512), "]"], 1024), FrameTooLarge);
  });
});

describe("bytes in JSON", () => {
  const every = Uint8Array.from({ length: 512 }, (_, i) => i % 256);

  it("writes byte arrays JSON.parse reads back", () => {
    for (const bytes of [new Uint8Array(0), Uint8Array.of(0), every]) {
      const frame = jsonFrame(['{"a":1,"input":', bytes, ',"b":"é"}']);
      assert.equal(frame.readUInt32LE(0), frame.length - 4);
      const parsed = JSON.parse(frame.subarray(4).toString("utf8")) as { input: number[]; b: string };
      assert.deepEqual(parsed.input, Array.from(bytes));
      assert.equal(parsed.b, "é");
    }
  });

  it("reads byte arrays as serde_json writes them", () => {
    const text = Buffer.from(`x${JSON.stringify(Array.from(every))}y`);
    const read = readByteArray(text, 1);
    assert.ok(read);
    assert.deepEqual(read.bytes, every);
    assert.equal(text[read.end], "y".charCodeAt(0));
    assert.deepEqual(readByteArray(Buffer.from("[]"), 0)?.bytes, new Uint8Array(0));
  });

  it("leaves anything else to JSON.parse", () => {
    for (const text of ["[1, 2]", "[256]", "[01]", "[-1]", "[1.5]", "[1,]", "[", "[1", "{}", "[1e2]"]) {
      assert.equal(readByteArray(Buffer.from(text), 0), undefined, text);
    }
  });

  it("checks parsed values are bytes", () => {
    assert.deepEqual(bytesOf([0, 255]), Uint8Array.of(0, 255));
    for (const value of [[256], [-1], [0.5], ["1"], "ab", null, {}]) {
      assert.equal(bytesOf(value), undefined, JSON.stringify(value));
    }
  });
});

describe("the protocol version", () => {
  it("is the one plugin-api's wire module speaks", () => {
    const wire = fs.readFileSync(new URL("../../../../../plugin-api/src/wire/mod.rs", import.meta.url), "utf8");
    const rust = /pub const PROTOCOL_VERSION: u32 = (\d+);/.exec(wire);
    assert.ok(rust, "no PROTOCOL_VERSION in plugin-api/src/wire/mod.rs");
    assert.equal(PROTOCOL_VERSION, Number(rust[1]), "bump PROTOCOL_VERSION in src/client.ts");
  });
});
