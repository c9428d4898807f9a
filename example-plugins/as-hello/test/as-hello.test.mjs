// as-hello on the fake host of @corral/plugin-as/testing.mjs, which drives
// the guest ABI as corral's worker does. `npm test` builds it first.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { load } from "@corral/plugin-as/testing.mjs";

const wasm = fileURLToPath(new URL("../build/as-hello.wasm", import.meta.url));
const CONFIG = 'greeting = "Hello"\n';

test("answers as the Rust hello does", async () => {
  const p = await load(wasm, { config: CONFIG });
  assert.equal(p.callText("echo", "hi"), "hi");
  const binary = new Uint8Array([0, 255, 1, 128]);
  assert.deepEqual(p.call("echo", binary).bytes, binary);
  assert.equal(p.callText("echo", ""), "");
  assert.equal(p.callText("upper", "hello corral"), "HELLO CORRAL");
  assert.equal(p.callText("upper", "straße ǆemal ﬁx ᾳ"), "STRASSE ǄEMAL FIX ΑΙ");
  assert.deepEqual(p.call("upper", new Uint8Array([0xff])), {
    code: 1, kind: "plugin", bytes: new TextEncoder().encode("input is not UTF-8"), text: "input is not UTF-8",
  });
  assert.equal(p.callText("sum", "1 2 -3 40"), "40");
  assert.equal(p.callText("sum", ""), "0");
  assert.equal(p.callText("sum", " 7\t+5\n"), "12");
  assert.equal(p.callText("sum", "-9223372036854775808"), "-9223372036854775808");
  assert.equal(p.call("sum", "1 x").text, "sum: `x` is not an integer");
  assert.equal(p.call("sum", "9223372036854775807 1").text, "sum: overflow");
  assert.equal(p.call("sum", "99999999999999999999").text, "sum: `99999999999999999999` is not an integer");
  assert.equal(p.callText("sleep", "20"), "slept 20 ms");
  assert.equal(p.call("sleep", "soon").text, "sleep: expected milliseconds as text");
  assert.equal(p.callText("config", ""), CONFIG);
  const unknown = p.call("nope", "");
  assert.equal(unknown.kind, "unknown_method");
  assert.equal(unknown.text, "unknown method `nope`");
});

test("greets with the configured greeting", async () => {
  const p = await load(wasm, { config: 'greeting = "Hi"\n' });
  assert.equal(p.callText("greet", "corral"), "Hi, corral!");
});

test("stores in the host's storage", async () => {
  const p = await load(wasm, { config: CONFIG });
  assert.equal(p.callText("remember", "colour=teal"), "stored colour");
  assert.equal(new TextDecoder().decode(p.kv.get("colour")), "teal");
  assert.equal(p.callText("recall", "colour"), "teal");
  assert.equal(p.callText("keys", "col"), "colour");
  assert.equal(p.callText("forget", "colour"), "deleted");
  assert.equal(p.callText("forget", "colour"), "absent");
  assert.equal(p.call("recall", "colour").text, "recall: nothing stored under `colour`");
  assert.deepEqual(p.ops, ["config", "kv_put:colour", "kv_get:colour", "kv_list:col",
    "kv_delete:colour", "kv_delete:colour", "kv_get:colour"]);
});

test("pages through keys with the next cursor", async () => {
  const keys = ["item/3", "item/1", "item/5", "item/2", "item/4", "other/1", "u/z", "u/\uFF21", "u/\u{1F600}"];
  const p = await load(wasm, { config: CONFIG, kv: Object.fromEntries(keys.map((k) => [k, "v"])) });
  const pages = [];
  let start = "";
  for (;;) {
    const [next, ...page] = p.callText("page", `item/\n${start}\n2`).split("\n");
    pages.push(page);
    if (next === "") break;
    start = next;
  }
  assert.deepEqual(pages, [["item/1", "item/2"], ["item/3", "item/4"], ["item/5"]]);
  // Start inclusive, need not be stored; LIMIT and START may be left out.
  assert.equal(p.callText("page", "item/\nitem/25"), "\nitem/3\nitem/4\nitem/5");
  assert.equal(p.callText("page", "other/"), "\nother/1");
  assert.equal(p.callText("page", "none/"), "");
  // By UTF-8 bytes: U+FF21 before U+1F600.
  assert.equal(p.callText("page", "u/\n\n2"), "u/\u{1F600}\nu/z\nu/\uFF21");
  const zero = p.call("page", "item/\n\n0");
  assert.equal(zero.kind, "plugin");
  assert.equal(zero.text, "bad_request: a page holds at least one key");
  assert.equal(p.call("page", "item/\n\nmany").text, "page: expected PREFIX, START, LIMIT lines");
  assert.deepEqual(p.ops.filter((op) => op !== "config").slice(0, 3), ["kv_page:item/", "kv_page:item/", "kv_page:item/"]);
});

test("writes a batch all or nothing", async () => {
  const p = await load(wasm, { config: CONFIG, kv: { old: "1", gone: "2" } });
  const stored = () => Object.fromEntries([...p.kv].map(([k, v]) => [k, new TextDecoder().decode(v)]));
  assert.equal(p.callText("batch", "put a/1 one\nput a/2 two words\ndelete gone\ndelete never\nput old 3"), "applied 5 writes");
  assert.deepEqual(stored(), { old: "3", "a/1": "one", "a/2": "two words" });
  // A bad key in the middle: neither the put before it nor the delete after it.
  const bad = p.call("batch", "put a/3 three\nput bad\tkey x\ndelete a/1");
  assert.equal(bad.kind, "plugin");
  assert.equal(bad.text, 'bad_request: bad key "bad\\tkey": a key has no control characters (newlines, tabs, ...)');
  assert.deepEqual(stored(), { old: "3", "a/1": "one", "a/2": "two words" });
  assert.equal(p.call("batch", "put a/4").text, "batch: expected `put KEY VALUE`, got `put a/4`");
  assert.equal(p.call("batch", "get a/1").text, "batch: expected `put KEY VALUE` or `delete KEY`, got `get a/1`");
  assert.equal(p.ops.filter((op) => op === "kv_batch").length, 2);
});

test("a refused host service is an error with its kind", async () => {
  const p = await load(wasm, { config: CONFIG, permissions: [] });
  const refused = p.call("remember", "a=b");
  assert.equal(refused.kind, "plugin");
  assert.match(refused.text, /^permission_denied: /);
});

test("publishes and receives events", async () => {
  const p = await load(wasm, { config: CONFIG });
  assert.equal(p.callText("publish", "as-hello.out payload"), "published");
  assert.equal(p.published[0].topic, "as-hello.out");
  assert.equal(new TextDecoder().decode(p.published[0].payload), "payload");
  assert.equal(p.event("ticks", "1").code, 0);
  assert.equal(p.event("ticks", "2").text, "");
  assert.equal(p.callText("events", ""), "2");
  assert.equal(p.callText("last", ""), "ticks 2");
  assert.ok(p.logs.some((l) => l.message === "event 2 on ticks: 2"));
});

test("a crash traps, after logging", async () => {
  const p = await load(wasm, { config: CONFIG });
  assert.throws(() => p.call("crash", ""), WebAssembly.RuntimeError);
  assert.deepEqual(p.logs.at(-1), { level: "warn", message: "crash requested: aborting" });
});

test("memory handed to the host is freed", async () => {
  const p = await load(wasm, { config: CONFIG });
  const big = "x".repeat(100000);
  for (let i = 0; i < 200; i++) assert.equal(p.callText("echo", big).length, big.length);
  // 200 calls of 100 kB each would be 40 MB if nothing were freed.
  assert.ok(p.exports.memory.buffer.byteLength < 8 * 1024 * 1024, `${p.exports.memory.buffer.byteLength}`);
  assert.ok(p.health());
});
