// Tests of corral's JavaScript test kit itself (plugin-api/js: the `corral`
// module on the fake host), run here because this is the suite CI runs that
// depends on it: paged listing and batched writes.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { kv } from "corral";
import { host, reset } from "corral/testing";
// The fake host's own binding (not exported: what `corral` calls).
import { binding } from "../node_modules/corral/fake-host.js";

const bytes = (text) => new TextEncoder().encode(text);

beforeEach(reset);

test("listPage pages through a prefix with the next page's start key", async () => {
  for (const key of ["a", "a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "b/1"]) host.kv.set(key, bytes("x"));
  const pages = [];
  let start = "";
  while (start !== null) {
    const page = await kv.listPage("a/", { start, limit: 3 });
    pages.push(page);
    start = page.next;
  }
  assert.deepEqual(pages, [
    { keys: ["a/1", "a/2", "a/3"], next: "a/4" },
    { keys: ["a/4", "a/5", "a/6"], next: "a/7" },
    { keys: ["a/7"], next: null },
  ]);
  assert.deepEqual(await kv.listPage("a/", { start: "a/35", limit: 2 }), { keys: ["a/4", "a/5"], next: "a/6" });
  assert.deepEqual(await kv.listPage("a/"), { keys: ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7"], next: null });
  assert.deepEqual(await kv.listPage("none/"), { keys: [], next: null });
});

test("listPage caps a page at 10000 keys and refuses an empty one", async () => {
  for (let i = 0; i < 10_001; i++) host.kv.set(`k/${String(i).padStart(5, "0")}`, bytes(""));
  const page = await kv.listPage("k/", { limit: 50_000 });
  assert.equal(page.keys.length, 10_000);
  assert.equal(page.next, "k/10000");
  await assert.rejects(kv.listPage("k/", { limit: 0 }), { kind: "bad_request", message: "a page holds at least one key" });
  await assert.rejects(kv.listPage("k/", { limit: -1 }), TypeError);
  await assert.rejects(kv.listPage("k/", { limit: 1.5 }), TypeError);
  await assert.rejects(kv.listPage("k/", { start: null }), /expected the start key as a string, not null/);
});

test("keys sort by their UTF-8 bytes, as the supervisor sorts them", async () => {
  // UTF-16 order (Array.prototype.sort) puts U+1F600 before U+FF21.
  for (const key of ["u/\u{1F600}", "u/\uFF21", "u/z"]) host.kv.set(key, bytes(""));
  assert.deepEqual(await kv.list("u/"), ["u/z", "u/\uFF21", "u/\u{1F600}"]);
  assert.deepEqual(await kv.listPage("u/", { limit: 2 }), { keys: ["u/z", "u/\uFF21"], next: "u/\u{1F600}" });
  assert.deepEqual(await kv.listPage("u/", { start: "u/\u{1F600}" }), { keys: ["u/\u{1F600}"], next: null });
});

test("batch applies puts and deletes in order", async () => {
  host.kv.set("old", bytes("1"));
  host.kv.set("gone", bytes("2"));
  await kv.batch([
    { put: "text", value: "héllo" },
    { put: "raw", value: new Uint8Array([0, 255]) },
    { put: "old", value: "3" },
    { delete: "gone" },
    { delete: "missing" },
    { put: "brief", value: "x" },
    { delete: "brief" },
  ]);
  assert.deepEqual(
    Object.fromEntries([...host.kv].map(([key, value]) => [key, [...value]])),
    { old: [51], text: [...bytes("héllo")], raw: [0, 255] },
  );
  await kv.batch([]);
  assert.equal(host.kv.size, 3);
});

test("batch writes nothing when one of its keys is bad", async () => {
  host.kv.set("a", bytes("1"));
  for (const bad of ["", "line\nbreak", "tab\there", "k".repeat(1025)]) {
    await assert.rejects(
      kv.batch([{ put: "new", value: "1" }, { put: bad, value: "2" }, { delete: "a" }]),
      { kind: "bad_request", message: /^bad key .*: a key / },
    );
  }
  assert.deepEqual([...host.kv.keys()], ["a"]);
  await kv.batch([{ put: "k".repeat(1024), value: "" }]);
  assert.equal(host.kv.size, 2);
});

test("batch takes only writes, and bytes or text as values", async () => {
  await assert.rejects(kv.batch([{ set: "a" }]), TypeError);
  await assert.rejects(kv.batch([null]), TypeError);
  await assert.rejects(kv.batch([{ put: "a" }]), /has no value/);
  await assert.rejects(kv.batch([{ put: "a", value: "1", delete: "a" }]), /not both/);
  await assert.rejects(kv.batch([{ put: "a", value: { n: 1 } }]), /use toJson\(\) for objects/);
  assert.equal(host.kv.size, 0);
});

test("paging and batches need the kv grant", async () => {
  host.grants = ["publish"];
  await assert.rejects(kv.listPage("a/"), { kind: "permission_denied" });
  await assert.rejects(kv.batch([{ delete: "a" }]), { kind: "permission_denied" });
});

test("the fake host reads kv_page and kv_batch as plugin-api/src/kv.rs writes them", () => {
  for (const key of ["a/3", "a/4", "a/5", "b"]) host.kv.set(key, bytes(""));
  const call = (op, data) => {
    const [code, reply] = binding.call(op, Uint8Array.from(data, (c) => c.charCodeAt(0)));
    return `${code} ${new TextDecoder().decode(reply)}`;
  };
  assert.equal(call("kv_page:a/", "\x02\0\0\0a/4"), "0 \na/4\na/5");
  assert.equal(call("kv_page:a/", "\x01\0\0\0"), "0 a/4\na/3");
  assert.equal(call("kv_page:", "\x10\x27\0\0"), "0 \na/3\na/4\na/5\nb");
  assert.equal(call("kv_page:a/", "\x01\0"), "8 a page request starts with its size, a u32");
  assert.equal(call("kv_batch", "P\x01\0\0\0c\x01\0\0\x001D\x01\0\0\0bD\x01\0\0\0z"), "0 ");
  assert.deepEqual([...host.kv.keys()].sort(), ["a/3", "a/4", "a/5", "c"]);
  assert.equal(call("kv_batch", "P\x05\0\0\0ab"), "8 a batch is cut short");
  assert.equal(call("kv_batch", "P\x01\0\0\0d"), "8 a batch is cut short");
  assert.equal(call("kv_batch", "X\0\0\0\0"), "8 a batch's write starts with `P` or `D`");
  assert.equal(call("kv_batch", ""), "0 ");
});
