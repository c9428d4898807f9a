// `npm test`: builds the plugin, then calls it as corral's worker does, on
// the test kit's fake host (`corral/testing`).

import assert from "node:assert/strict";
import { test } from "node:test";
import { host, load } from "corral/testing";

host.config = { greeting: "Hi" };
const plugin = await load(await import("../dist/plugin.js"));

test("greets with the configured greeting", async () => {
  assert.equal(await plugin.callText("greet", "corral"), "Hi, corral!");
});

test("an unknown method is refused as corral refuses it", async () => {
  await assert.rejects(plugin.call("nope"), { kind: "unknown_method", message: "unknown method `nope`" });
});

test("publications reach on_event", async () => {
  await plugin.event("news.today", new TextEncoder().encode("hello"));
  assert.match(host.logs.at(-1).text, /news\.today: 5 bytes/);
});
