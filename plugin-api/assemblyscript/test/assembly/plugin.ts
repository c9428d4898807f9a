// A plugin that exercises the library, for test/library.test.mjs.

import {
  ErrorKind,
  Reply,
  ValueKind,
  bytes,
  callPlugin,
  fail,
  hostCall,
  isUtf8,
  kv,
  KvWrite,
  log,
  nowMs,
  ok,
  okText,
  onCall,
  onEvent,
  onHealth,
  onInit,
  onShutdown,
  parseToml,
  publishText,
  register,
  registeredMethods,
  settings,
  text,
  unknownMethod,
  utf8,
} from "../../assembly/index";

export * from "../../assembly/abi";

let healthy = true;
let events = "";

onInit((): Reply => {
  let s = settings();
  if (s.getBool("fail_init", false)) return fail("asked to fail");
  log.info("test plugin ready, mode " + s.getString("mode", "none"));
  return ok();
});

onHealth((): bool => healthy);

onShutdown((): void => {
  log.info("bye");
});

onEvent((topic: string, payload: Uint8Array): Reply => {
  if (topic == "bad") return fail("bad event: " + text(payload));
  events += topic + "=" + text(payload) + ";";
  return okText("ignored");
});

onCall((method: string, input: Uint8Array): Reply => {
  if (method.startsWith("dyn.")) return okText("dyn:" + method + ":" + text(input));
  return unknownMethod(method);
});

register("events", (input: Uint8Array): Reply => okText(events));

register("sick", (input: Uint8Array): Reply => {
  healthy = false;
  return ok();
});

/** Each setting of the TOML input: `PATH KIND VALUE` lines, or `error: …`. */
register("toml", (input: Uint8Array): Reply => {
  let s = parseToml(text(input));
  let lines = new Array<string>();
  let paths = s.paths();
  for (let i = 0; i < paths.length; i++) {
    let v = s.get(paths[i])!;
    let shown: string;
    switch (v.kind) {
      case ValueKind.String: shown = "string " + v.str; break;
      case ValueKind.Integer: shown = "integer " + v.int.toString(); break;
      case ValueKind.Float: shown = "float " + v.float.toString(); break;
      case ValueKind.Boolean: shown = "boolean " + (v.bool ? "true" : "false"); break;
      case ValueKind.DateTime: shown = "datetime " + v.str; break;
      case ValueKind.Array: shown = "array " + v.length.toString(); break;
      default: shown = "table";
    }
    lines.push(paths[i] + " " + shown);
  }
  if (s.error !== null) lines.push("error: " + s.error!);
  return okText(lines.join("\n"));
});

register("lossy", (input: Uint8Array): Reply => okText(text(input)));

register("valid", (input: Uint8Array): Reply => {
  let strict = utf8(input);
  if (isUtf8(input) != (strict !== null)) return fail("isUtf8 and utf8 disagree");
  return okText(strict !== null ? "yes" : "no");
});

/** `OP` newline `INPUT`: the host's answer as `CODE KIND|VALUE-or-MESSAGE`. */
register("host", (input: Uint8Array): Reply => {
  let s = text(input);
  let nl = s.indexOf("\n");
  let op = nl < 0 ? s : s.substring(0, nl);
  let data = nl < 0 ? "" : s.substring(nl + 1);
  let r = hostCall(op, bytes(data));
  return okText(r.code.toString() + " " + r.errorKind + "|" + (r.ok ? r.text() : r.message));
});

/** `PLUGIN/METHOD INPUT` through callPlugin; errors passed on as Rust's `?`. */
register("relay", (input: Uint8Array): Reply => {
  let s = text(input);
  let slash = s.indexOf("/");
  let space = s.indexOf(" ");
  if (slash < 0 || space < slash) return fail("relay: expected PLUGIN/METHOD INPUT");
  return callPlugin(s.substring(0, slash), s.substring(slash + 1, space), bytes(s.substring(space + 1))).toReply();
});

register("kv", (input: Uint8Array): Reply => {
  let before = kv.getText("k");
  if (before !== null) return fail("k was there: " + before);
  if (!kv.putText("k", "v1").ok) return fail("put failed");
  if (!kv.putText("k2", "v2").ok) return fail("put failed");
  let after = kv.getText("k");
  let keys = kv.keys("k");
  let gone = kv.delete("k");
  let again = kv.delete("k");
  return okText(after! + " " + keys.join(",") + " " + gone.ok.toString() + " " +
    again.is(ErrorKind.NotFound).toString() + " " + again.errorKind);
});

/** `PREFIX` newline `LIMIT`: every page, `KEYS > NEXT` a line (keys
 *  joined by `,`, NEXT `null` on the last), or `KIND: MESSAGE`. */
register("pages", (input: Uint8Array): Reply => {
  let s = text(input);
  let nl = s.indexOf("\n");
  let limit = U32.parseInt(s.substring(nl + 1));
  let lines = new Array<string>();
  let start: string | null = "";
  while (start !== null) {
    let page = kv.listPage(s.substring(0, nl), start, limit);
    if (!page.ok) return okText(page.describe());
    let next = page.next;
    lines.push(page.keys.join(",") + " > " + (next !== null ? next : "null"));
    start = next;
  }
  return okText(lines.join("\n"));
});

/** Writes through kv.batch, one a line: `put KEY=VALUE` (text),
 *  `zeros KEY=N` (N zero bytes) or `delete KEY`. */
register("batch", (input: Uint8Array): Reply => {
  let lines = text(input).split("\n");
  let writes = new Array<KvWrite>();
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    let space = line.indexOf(" ");
    let eq = line.indexOf("=");
    let verb = line.substring(0, space);
    if (verb == "put") {
      writes.push(KvWrite.putText(line.substring(space + 1, eq), line.substring(eq + 1)));
    } else if (verb == "zeros") {
      writes.push(KvWrite.put(line.substring(space + 1, eq), new Uint8Array(I32.parseInt(line.substring(eq + 1)))));
    } else if (verb == "delete") {
      writes.push(KvWrite.delete(line.substring(space + 1)));
    } else {
      return fail("batch: unknown write `" + line + "`");
    }
  }
  return kv.batch(writes).toReply();
});

register("publish", (input: Uint8Array): Reply => publishText("t", text(input)).toReply());

register("repeat", (input: Uint8Array): Reply => {
  let n = I32.parseInt(text(input));
  let out = new Uint8Array(n);
  out.fill(0x61);
  return ok(out);
});

register("now", (input: Uint8Array): Reply => okText(nowMs().toString()));

register("random", (input: Uint8Array): Reply => {
  let r = Math.random();
  return okText(r >= 0 && r < 1 ? "ok" : "bad");
});

register("trace", (input: Uint8Array): Reply => {
  trace("traced", 2, 1.5, 2);
  return ok();
});

register("throw", (input: Uint8Array): Reply => {
  throw new Error("thrown " + text(input));
});

register("index", (input: Uint8Array): Reply => {
  let a = new Array<i32>(1);
  return okText(a[input.length + 5].toString());
});

register("methods", (input: Uint8Array): Reply => okText(registeredMethods().join(",")));

register("garbage", (input: Uint8Array): Reply => {
  // Allocates enough to run the collector a few times.
  let total = 0;
  for (let i = 0; i < 2000; i++) {
    let s = "item " + i.toString() + " " + "x".repeat(200);
    total += bytes(s).length;
  }
  return okText(total.toString());
});
