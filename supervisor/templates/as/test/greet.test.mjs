// `npm test`: builds the module, then runs it on a fake host that calls it
// through the guest ABI as corral's worker does.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { load } from "@corral/plugin-as/testing.mjs";

const wasm = fileURLToPath(new URL("../build/@NAME@.wasm", import.meta.url));

test("greets with the configured greeting", async () => {
  const plugin = await load(wasm, { config: 'greeting = "Hi"\n' });
  assert.equal(plugin.callText("greet", "corral"), "Hi, corral!");
  const error = plugin.call("nope", "");
  assert.equal(error.kind, "unknown_method", error.text);
  assert.equal(error.text, "unknown method `nope`");
});

test("greets with Hello by default", async () => {
  const plugin = await load(wasm, { config: "" });
  assert.equal(plugin.callText("greet", "world"), "Hello, world!");
});
