// `as-hello`: the `hello` example plugin in AssemblyScript, with storage,
// events and settings besides.
//
// | method     | input                        | reply                                  |
// |------------|------------------------------|----------------------------------------|
// | `echo`     | any bytes                    | the same bytes                         |
// | `upper`    | UTF-8 text                   | the text in upper case                 |
// | `sum`      | integers separated by spaces | their sum, as text                     |
// | `sleep`    | milliseconds, as text        | `slept N ms` (waits on the host clock) |
// | `config`   | ignored                      | its settings, TOML text                |
// | `crash`    | ignored                      | never: traps (a `plugin` error)        |
// | `greet`    | a name                       | `GREETING, NAME!` (`greeting` setting) |
// | `remember` | `KEY=VALUE`                  | `stored KEY` (host storage)            |
// | `recall`   | a key                        | its value                              |
// | `forget`   | a key                        | `deleted` or `absent`                  |
// | `keys`     | a prefix (or none)           | stored keys, one per line              |
// | `page`     | `PREFIX`, `START`, `LIMIT` lines | the next page's start (empty on the last page), then its keys, a line each |
// | `batch`    | `put KEY VALUE` / `delete KEY` lines | `applied N writes` (all of them, or none) |
// | `publish`  | `TOPIC PAYLOAD`              | `published` (to the topic's subscribers) |
// | `events`   | ignored                      | how many events arrived, as text       |
// | `last`     | ignored                      | `TOPIC PAYLOAD` of the latest event    |
//
// The first six answer byte for byte as the Rust `hello` does, errors
// included (`input is not UTF-8`, ``sum: `x` is not an integer``,
// ``unknown method `NAME` ``).

import {
  ErrorKind,
  Reply,
  bytes,
  concat,
  config,
  fail,
  kv,
  KvWrite,
  log,
  nowMs,
  ok,
  okText,
  onEvent,
  onInit,
  publish,
  register,
  settings,
  text,
  utf8,
} from "@corral/plugin-as";

// The ABI's exports (alloc, call, init, …): corral calls these.
export * from "@corral/plugin-as/abi";

let greeting = "Hello";
let eventCount: i64 = 0;
let lastEvent = new Uint8Array(0);
// What parseI64 / parseU64 read.
let parsed: i64 = 0;
let parsedU: u64 = 0;

onInit((): Reply => {
  let s = settings();
  if (s.error !== null) return fail("[config]: " + s.error!);
  greeting = s.getString("greeting", "Hello");
  log.debug("as-hello ready");
  return ok();
});

register("echo", (input: Uint8Array): Reply => ok(input));

register("upper", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  return okText(s.toUpperCase());
});

register("sum", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let words = splitWhitespace(s);
  let total: i64 = 0;
  for (let i = 0; i < words.length; i++) {
    let word = words[i];
    if (!parseI64(word)) return fail("sum: `" + word + "` is not an integer");
    let n = parsed;
    let next = total + n;
    // Overflow: both operands of one sign, the result of the other.
    if ((total >= 0) == (n >= 0) && (next >= 0) != (total >= 0)) return fail("sum: overflow");
    total = next;
  }
  return okText(total.toString());
});

register("sleep", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let word = trimWhitespace(s);
  if (!parseU64(word)) return fail("sleep: expected milliseconds as text");
  let ms = parsedU;
  // No clock to sleep on in wasm32: wait on the host's (the call's
  // deadline stops it like any other call).
  let until = nowMs() + <i64>ms;
  while (nowMs() < until) {}
  return okText("slept " + ms.toString() + " ms");
});

register("config", (input: Uint8Array): Reply => okText(config()));

register("crash", (input: Uint8Array): Reply => {
  log.warn("crash requested: aborting");
  unreachable();
  return ok();
});

register("greet", (input: Uint8Array): Reply => {
  let name = utf8(input);
  if (name === null) return fail("greet: the name is not UTF-8");
  return okText(greeting + ", " + name + "!");
});

register("remember", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let eq = s.indexOf("=");
  if (eq <= 0) return fail("remember: expected KEY=VALUE");
  let key = s.substring(0, eq);
  let stored = kv.put(key, bytes(s.substring(eq + 1)));
  if (!stored.ok) return fail(stored.describe());
  return okText("stored " + key);
});

register("recall", (input: Uint8Array): Reply => {
  let key = utf8(input);
  if (key === null) return fail("input is not UTF-8");
  let value = kv.get(key);
  if (value.is(ErrorKind.NotFound)) return fail("recall: nothing stored under `" + key + "`");
  return value.toReply();
});

register("forget", (input: Uint8Array): Reply => {
  let key = utf8(input);
  if (key === null) return fail("input is not UTF-8");
  let deleted = kv.delete(key);
  if (deleted.ok) return okText("deleted");
  if (deleted.is(ErrorKind.NotFound)) return okText("absent");
  return fail(deleted.describe());
});

register("keys", (input: Uint8Array): Reply => {
  let prefix = utf8(input);
  if (prefix === null) return fail("input is not UTF-8");
  return kv.list(prefix).toReply();
});

// One page of keys: `PREFIX`, then optionally `START` (from the first key
// when empty or missing) and `LIMIT` (100 when missing), a line each.
register("page", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let lines = s.split("\n");
  let start = lines.length > 1 ? lines[1] : "";
  let limit: u64 = 100;
  if (lines.length > 2) {
    if (!parseU64(lines[2]) || parsedU > <u64>u32.MAX_VALUE) return fail("page: expected PREFIX, START, LIMIT lines");
    limit = parsedU;
  }
  let page = kv.listPage(lines[0], start, <u32>limit);
  if (!page.ok) return page.toReply();
  let next = page.next;
  let reply: string[] = [next !== null ? next : ""];
  return okText(reply.concat(page.keys).join("\n"));
});

// Writes applied together, a line each: `put KEY VALUE` (VALUE is the rest
// of the line) or `delete KEY`.
register("batch", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let lines = s.split("\n");
  let writes = new Array<KvWrite>();
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.startsWith("put ")) {
      let space = line.indexOf(" ", 4);
      if (space < 0) return fail("batch: expected `put KEY VALUE`, got `" + line + "`");
      writes.push(KvWrite.putText(line.substring(4, space), line.substring(space + 1)));
    } else if (line.startsWith("delete ")) {
      writes.push(KvWrite.delete(line.substring(7)));
    } else {
      return fail("batch: expected `put KEY VALUE` or `delete KEY`, got `" + line + "`");
    }
  }
  let applied = kv.batch(writes);
  if (!applied.ok) return applied.toReply();
  return okText("applied " + writes.length.toString() + " writes");
});

register("publish", (input: Uint8Array): Reply => {
  let s = utf8(input);
  if (s === null) return fail("input is not UTF-8");
  let space = s.indexOf(" ");
  let topic = space < 0 ? s : s.substring(0, space);
  let payload = space < 0 ? "" : s.substring(space + 1);
  if (topic.length == 0) return fail("publish: expected TOPIC PAYLOAD");
  let sent = publish(topic, bytes(payload));
  return sent.ok ? okText("published") : fail(sent.describe());
});

register("events", (input: Uint8Array): Reply => okText(eventCount.toString()));

register("last", (input: Uint8Array): Reply => ok(lastEvent));

onEvent((topic: string, payload: Uint8Array): Reply => {
  eventCount++;
  lastEvent = concat(bytes(topic + " "), payload);
  log.info("event " + eventCount.toString() + " on " + topic + ": " + text(payload));
  return ok();
});

// Rust's `char::is_whitespace` (Unicode White_Space), all in the BMP.
function isWhitespace(c: i32): bool {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
    c == 0x205f || c == 0x3000;
}

/** As Rust's `str::split_whitespace`. */
function splitWhitespace(s: string): string[] {
  let words = new Array<string>();
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (isWhitespace(s.charCodeAt(i))) {
      if (start >= 0) words.push(s.substring(start, i));
      start = -1;
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(s.substring(start));
  return words;
}

/** As Rust's `str::trim`. */
function trimWhitespace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isWhitespace(s.charCodeAt(start))) start++;
  while (end > start && isWhitespace(s.charCodeAt(end - 1))) end--;
  return s.substring(start, end);
}

/** As Rust's `str::parse::<i64>`: an optional sign, then ASCII digits,
 *  within range. The value goes to `parsed`. */
function parseI64(word: string): bool {
  let i = 0;
  let negative = false;
  if (word.length > 0 && (word.charCodeAt(0) == 0x2b || word.charCodeAt(0) == 0x2d)) {
    negative = word.charCodeAt(0) == 0x2d;
    i = 1;
  }
  if (i >= word.length) return false;
  // Accumulated negatively, so i64's minimum fits.
  let total: i64 = 0;
  for (; i < word.length; i++) {
    let d = <i64>word.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
    if (total < (i64.MIN_VALUE + d) / 10) return false;
    total = total * 10 - d;
  }
  if (!negative) {
    if (total == i64.MIN_VALUE) return false;
    total = -total;
  }
  parsed = total;
  return true;
}

/** As Rust's `str::parse::<u64>`: an optional `+`, then ASCII digits,
 *  within range. The value goes to `parsedU`. */
function parseU64(word: string): bool {
  let i = 0;
  if (word.length > 0 && word.charCodeAt(0) == 0x2b) i = 1;
  if (i >= word.length) return false;
  let total: u64 = 0;
  for (; i < word.length; i++) {
    let d = <u64>(<i64>word.charCodeAt(i) - 0x30);
    if (d > 9) return false;
    if (total > (u64.MAX_VALUE - d) / 10) return false;
    total = total * 10 + d;
  }
  parsedU = total;
  return true;
}
