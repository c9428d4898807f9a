// Tests of @corral/plugin-as through test/assembly/plugin.ts, driven the way
// corral's worker drives a module (testing.mjs). `npm test` builds it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { HostError, load } from "../testing.mjs";

const wasm = fileURLToPath(new URL("../build/test-plugin.wasm", import.meta.url));

test("the module exports the ABI and imports only from corral", () => {
  const module = new WebAssembly.Module(readFileSync(wasm));
  const exports = WebAssembly.Module.exports(module).map((e) => `${e.name}:${e.kind}`).sort();
  assert.deepEqual(exports, [
    "alloc:function",
    "call:function",
    "corral_abi_version:function",
    "dealloc:function",
    "health:function",
    "init:function",
    "memory:memory",
    "shutdown:function",
  ]);
  const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`).sort();
  assert.deepEqual(imports, ["corral.host_call", "corral.log", "corral.now_ms"]);
});

test("init reads settings, and its failure fails the start", async () => {
  const p = await load(wasm, { config: 'mode = "fast"\n' });
  assert.deepEqual(p.logs, [{ level: "info", message: "test plugin ready, mode fast" }]);
  await assert.rejects(load(wasm, { config: "fail_init = true\n" }), /init failed \(code 1\): init failed: asked to fail/);
});

test("registered, fallback and unknown methods", async () => {
  const p = await load(wasm);
  assert.equal(p.callText("dyn.x", "in"), "dyn:dyn.x:in");
  const unknown = p.call("zzz", "");
  assert.equal(unknown.code, 2);
  assert.equal(unknown.text, "unknown method `zzz`");
  assert.match(p.callText("methods", ""), /^events,sick,toml,lossy,valid,host,relay,kv,/);
  const badName = p.call(new Uint8Array([0xc3]), "");
  assert.deepEqual([badName.code, badName.text], [1, "method name is not UTF-8"]);
});

test("events: empty reply, errors passed on", async () => {
  const p = await load(wasm);
  const e = p.event("ticks", "1");
  assert.deepEqual([e.code, e.text], [0, ""]);
  const bad = p.event("bad", "x");
  assert.deepEqual([bad.code, bad.text], [1, "bad event: x"]);
  assert.equal(p.callText("events", ""), "ticks=1;");
});

test("health and shutdown hooks", async () => {
  const p = await load(wasm);
  assert.equal(p.health(), true);
  p.callText("sick", "");
  assert.equal(p.health(), false);
  p.shutdown();
  assert.equal(p.logs.at(-1).message, "bye");
  assert.equal(p.call("events", "").text, "plugin is not initialized");
});

test("host services: results with kinds", async () => {
  const p = await load(wasm, {
    call: (plugin, method, input) => {
      if (method === "fail") throw new HostError("crashed", "it died");
      return `${plugin}.${method}(${new TextDecoder().decode(input)})`;
    },
  });
  assert.equal(p.callText("host", "kv_get:nope"), "10 not_found|no key `nope`");
  assert.equal(p.callText("host", "kv_put:a\nvalue"), "0 ok|");
  assert.equal(p.callText("host", "kv_get:a"), "0 ok|value");
  assert.equal(p.callText("host", "config"), "0 ok|");
  assert.equal(p.callText("host", "weird"), "6 unavailable|host service `weird` is not in this test host");
  assert.equal(p.callText("relay", "other/up x y"), "other.up(x y)");
  const failed = p.call("relay", "other/fail x");
  assert.deepEqual([failed.code, failed.text], [1, "crashed: it died"]);
  assert.equal(p.callText("publish", "hello"), "");
  assert.equal(p.published[0].topic, "t");
  assert.ok(Math.abs(Number(p.callText("now", "")) - Date.now()) < 5000);
});

test("kv helpers", async () => {
  const p = await load(wasm);
  assert.equal(p.callText("kv", ""), "v1 k,k2 true true not_found");
  const denied = await load(wasm, { permissions: [] });
  assert.match(denied.call("relay", "x/y z").text, /^permission_denied: /);
});

test("kv.listPage pages through a prefix, in UTF-8 order", async () => {
  const keys = ["a", "a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "b/1", "u/\u{1F600}", "u/\uFF21", "u/z"];
  const p = await load(wasm, { kv: Object.fromEntries(keys.map((k) => [k, "x"])) });
  assert.equal(p.callText("pages", "a/\n3"), "a/1,a/2,a/3 > a/4\na/4,a/5,a/6 > a/7\na/7 > null");
  assert.equal(p.callText("pages", "a/\n100"), "a/1,a/2,a/3,a/4,a/5,a/6,a/7 > null");
  assert.equal(p.callText("pages", "none/\n3"), " > null");
  // UTF-16 order (Array.prototype.sort) would put U+1F600 before U+FF21.
  assert.equal(p.callText("pages", "u/\n2"), "u/z,u/\uFF21 > u/\u{1F600}\nu/\u{1F600} > null");
  assert.equal(p.callText("pages", "a/\n0"), "bad_request: a page holds at least one key");
});

test("kv.listPage gets at most 10000 keys a page", async () => {
  const kv = {};
  for (let i = 0; i < 10_001; i++) kv[`k/${String(i).padStart(5, "0")}`] = "";
  const p = await load(wasm, { kv });
  const pages = p.callText("pages", "k/\n50000").split("\n");
  assert.equal(pages.length, 2);
  assert.equal(pages[0].split(",").length, 10_000);
  assert.match(pages[0], /,k\/09999 > k\/10000$/);
  assert.equal(pages[1], "k/10000 > null");
});

test("kv.batch applies puts and deletes in order", async () => {
  const p = await load(wasm, { kv: { old: "1", gone: "2" } });
  const batch = "put text=h\u00e9llo\nzeros raw=3\nput old=3\ndelete gone\ndelete missing\nput brief=x\ndelete brief";
  assert.equal(p.callText("batch", batch), "");
  assert.deepEqual(
    Object.fromEntries([...p.kv].map(([k, v]) => [k, new TextDecoder().decode(v)])),
    { old: "3", text: "h\u00e9llo", raw: "\0\0\0" },
  );
  assert.equal(p.ops.at(-1), "kv_batch");
});

test("kv.batch writes nothing when one of its keys is bad", async () => {
  const p = await load(wasm, { kv: { a: "1" } });
  for (const bad of ["", "tab\there", "k".repeat(1025)]) {
    const result = p.call("batch", `put new=1\nput ${bad}=2\ndelete a`);
    assert.equal(result.code, 1);
    assert.match(result.text, /^bad_request: bad key ".*": a key /);
  }
  assert.deepEqual([...p.kv.keys()], ["a"]);
  assert.equal(p.callText("batch", `zeros ${"k".repeat(1024)}=0`), "");
  assert.equal(p.kv.size, 2);
});

test("the test host reads kv_page and kv_batch as plugin-api/src/kv.rs writes them", async () => {
  const p = await load(wasm, { kv: { "a/3": "", "a/4": "", "a/5": "", b: "" } });
  const host = (op, data) => p.callText("host", `${op}\n${data}`);
  assert.equal(host("kv_page:a/", "\x02\0\0\0a/4"), "0 ok|\na/4\na/5");
  assert.equal(host("kv_page:a/", "\x01\0\0\0"), "0 ok|a/4\na/3");
  assert.equal(host("kv_page:", "\x10\x27\0\0"), "0 ok|\na/3\na/4\na/5\nb");
  assert.equal(host("kv_page:a/", "\x01\0"), "8 bad_request|a page request starts with its size, a u32");
  assert.equal(host("kv_batch", "P\x01\0\0\0c\x01\0\0\x001D\x01\0\0\0bD\x01\0\0\0z"), "0 ok|");
  assert.deepEqual([...p.kv.keys()].sort(), ["a/3", "a/4", "a/5", "c"]);
  assert.equal(host("kv_batch", "P\x05\0\0\0ab"), "8 bad_request|a batch is cut short");
  assert.equal(host("kv_batch", "P\x01\0\0\0d"), "8 bad_request|a batch is cut short");
  assert.equal(host("kv_batch", "X\0\0\0\0"), "8 bad_request|a batch's write starts with `P` or `D`");
  assert.equal(host("kv_batch", ""), "0 ok|");
});

test("TOML settings", async () => {
  const p = await load(wasm);
  const toml = (t) => p.callText("toml", t);
  assert.equal(toml('greeting = "Hello"\n'), "greeting string Hello");
  assert.equal(toml("greeting = 'Hi \"there\"'"), 'greeting string Hi "there"');
  assert.equal(toml('a = "tab\\there \\u00e9 \\U0001F600 \\"q\\" \\\\"'), 'a string tab\there é 😀 "q" \\');
  assert.equal(
    toml("n = 42\nneg = -17\nbig = 9_223_372_036_854_775_807\nmin = -9223372036854775808\nhex = 0xff\noct = 0o17\nbin = 0b101\n"),
    "n integer 42\nneg integer -17\nbig integer 9223372036854775807\nmin integer -9223372036854775808\nhex integer 255\noct integer 15\nbin integer 5",
  );
  assert.equal(toml("f = 3.5\ne = 1e3\ni = -inf\nt = true\nfl = false"),
    "f float 3.5\ne float 1000.0\ni float -Infinity\nt boolean true\nfl boolean false");
  assert.equal(
    toml("# settings\ndpi = 300 # dots\n\n[paper]\nsize = \"a4\"\n[paper.margins]\ntop = 1.5\n"),
    "dpi integer 300\npaper table\npaper.size string a4\npaper.margins table\npaper.margins.top float 1.5",
  );
  assert.equal(toml('p = { size = "letter", m.top = 2 }\nl = [1, "two", [3]]'),
    "p table\np.size string letter\np.m.top integer 2\nl.0 integer 1\nl.1 string two\nl.2.0 integer 3\nl.2 array 1\nl array 3");
  assert.equal(toml('"quoted key".x = 1\nsite."a.b" = 2'), "quoted key.x integer 1\nsite.a.b integer 2");
  assert.equal(toml('m = """\nline one\nline \\\n   two"""\nl = \'\'\'\nraw \\n\'\'\''),
    "m string line one\nline two\nl string raw \\n");
  assert.equal(toml("d = 1979-05-27T07:32:00Z\nd2 = 1979-05-27 07:32:00"),
    "d datetime 1979-05-27T07:32:00Z\nd2 datetime 1979-05-27 07:32:00");
  assert.equal(toml("[[x]]\na = 1\n[[x]]\na = 2"), "x array 2\nx.0 table\nx.0.a integer 1\nx.1 table\nx.1.a integer 2");
  assert.equal(toml("a = 1\nb = \"open\nc = 2"), "a integer 1\nerror: line 2: unterminated string");
  assert.equal(toml("a = 99999999999999999999"), "error: line 1: `99999999999999999999` is not a TOML value");
  assert.equal(toml("a = 1 2"), "a integer 1\nerror: line 1: expected the end of the line");
});

test("UTF-8: strict and lossy as Rust", async () => {
  const p = await load(wasm);
  const samples = [
    [0x61, 0x62],
    [0xff],
    [0xc3, 0xa9],
    [0xc3],
    [0xe2, 0x82],
    [0xe2, 0x82, 0xac, 0x41],
    [0xed, 0xa0, 0x80],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xf0, 0x9f, 0x98],
    [0xf4, 0x90, 0x80, 0x80],
    [0xc0, 0xaf],
    [0xe0, 0x80, 0xaf],
    [0x61, 0xf1, 0x80, 0x80, 0xe1, 0x80, 0xc2, 0x62, 0x80, 0x63],
  ];
  for (const sample of samples) {
    const data = new Uint8Array(sample);
    // TextDecoder replaces as the WHATWG decoder, as Rust's from_utf8_lossy.
    assert.equal(p.callText("lossy", data), new TextDecoder().decode(data), `${sample}`);
    let valid = "yes";
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(data);
    } catch {
      valid = "no";
    }
    assert.equal(p.callText("valid", data), valid, `${sample}`);
  }
});

test("large replies, and memory is given back", async () => {
  const p = await load(wasm);
  for (let i = 0; i < 50; i++) {
    assert.equal(p.call("repeat", String(1 << 20)).bytes.length, 1 << 20);
    assert.equal(p.callText("garbage", ""), "418890");
  }
  assert.ok(p.exports.memory.buffer.byteLength < 16 << 20, `${p.exports.memory.buffer.byteLength}`);
});

test("Math.random and trace work without env imports", async () => {
  const p = await load(wasm);
  assert.equal(p.callText("random", ""), "ok");
  p.callText("trace", "");
  assert.deepEqual(p.logs.at(-1), { level: "debug", message: "trace: traced 1.5, 2.0" });
});

test("a throw or an index out of range traps, logging where", async () => {
  const p = await load(wasm);
  assert.throws(() => p.call("throw", "x"), WebAssembly.RuntimeError);
  assert.match(p.logs.at(-1).message, /^panic: thrown x at .*plugin\.ts:\d+:\d+$/);
  const q = await load(wasm);
  assert.throws(() => q.call("index", ""), WebAssembly.RuntimeError);
  assert.match(q.logs.at(-1).message, /^panic: Index out of range at ~lib\//);
});
