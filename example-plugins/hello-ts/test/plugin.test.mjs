// The plugin's own tests, on corral's test kit: `npm test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { load } from "corral/testing";

const plugin = await load(await import("../dist/plugin.js"));

test("upper and sum answer as the Rust hello does", async () => {
  assert.equal(await plugin.callText("upper", "straße"), "STRASSE");
  assert.equal(await plugin.callText("sum", "1 2 -3 40"), "40");
  assert.equal(await plugin.callText("sum", ""), "0");
});

test("errors carry the Rust hello's messages", async () => {
  await assert.rejects(plugin.call("sum", "1 x"), { kind: "plugin", message: "sum: `x` is not an integer" });
  await assert.rejects(plugin.call("sum", "9223372036854775807 1"), { message: "sum: overflow" });
  await assert.rejects(plugin.call("upper", new Uint8Array([0xff])), { message: "input is not UTF-8" });
  await assert.rejects(plugin.call("nope"), { kind: "unknown_method", message: "unknown method `nope`" });
});

test("sleep takes milliseconds, or a duration through the ms package", async () => {
  assert.equal(await plugin.callText("sleep", "5"), "slept 5 ms");
  assert.equal(await plugin.callText("sleep", "0.01s"), "slept 10 ms");
  await assert.rejects(plugin.call("sleep", "soon"), { message: "sleep: expected milliseconds as text" });
});
