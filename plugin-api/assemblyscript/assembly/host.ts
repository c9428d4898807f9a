// The host's services: the imports of module `corral` (log, now_ms,
// host_call) and what they give a plugin (logging, the clock, storage,
// publish, calls into a dependency, settings).
//
// Nothing here imports from module `env`: the abort AssemblyScript calls
// on a failed assertion, an out-of-bounds access or a `throw` is
// `corral_abort` below (the plugin's asconfig.json says
// `"use": ["abort=corral_abort"]`, as the asconfig.json of this package,
// which a plugin's `extends`, does).

import { Reply, fail, ok } from "./reply";
import { bytes, text } from "./utf8";

// @ts-ignore: decorator
@external("corral", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;

// @ts-ignore: decorator
@external("corral", "now_ms")
declare function host_now_ms(): i64;

// @ts-ignore: decorator
@external("corral", "host_call")
declare function host_call(op: usize, opLen: usize, input: usize, inputLen: usize, out: usize): i32;

/** Log levels, as the ABI numbers them. */
export enum LogLevel {
  Error = 1,
  Warn = 2,
  Info = 3,
  Debug = 4,
  Trace = 5,
}

/** Writes `message` to the plugin's log (`corral logs NAME`). */
export function writeLog(level: LogLevel, message: string): void {
  let data = String.UTF8.encode(message, false, String.UTF8.ErrorMode.REPLACE);
  host_log(<i32>level, changetype<usize>(data), <usize>data.byteLength);
}

/** The plugin's log: `log.info("ready")`. */
export namespace log {
  export function error(message: string): void { writeLog(LogLevel.Error, message); }
  export function warn(message: string): void { writeLog(LogLevel.Warn, message); }
  export function info(message: string): void { writeLog(LogLevel.Info, message); }
  export function debug(message: string): void { writeLog(LogLevel.Debug, message); }
  export function trace(message: string): void { writeLog(LogLevel.Trace, message); }
}

/** The host's clock: milliseconds since the Unix epoch. */
export function nowMs(): i64 {
  return host_now_ms();
}

/** The kind of a failed host service, by the code the host reports
 *  (`CORRAL_ERR_*` in corral_plugin.h). */
export enum ErrorKind {
  Ok = 0,
  Plugin = 1,
  UnknownMethod = 2,
  UnknownPlugin = 3,
  Crashed = 4,
  Timeout = 5,
  Unavailable = 6,
  Protocol = 7,
  BadRequest = 8,
  PermissionDenied = 9,
  NotFound = 10,
  LimitExceeded = 11,
}

/** The name of error kind `code` as corral writes it (`not_found`, …);
 *  `ok` for 0. */
export function errorKindName(code: i32): string {
  switch (code) {
    case ErrorKind.Ok: return "ok";
    case ErrorKind.Plugin: return "plugin";
    case ErrorKind.UnknownMethod: return "unknown_method";
    case ErrorKind.UnknownPlugin: return "unknown_plugin";
    case ErrorKind.Crashed: return "crashed";
    case ErrorKind.Timeout: return "timeout";
    case ErrorKind.Unavailable: return "unavailable";
    case ErrorKind.Protocol: return "protocol";
    case ErrorKind.BadRequest: return "bad_request";
    case ErrorKind.PermissionDenied: return "permission_denied";
    case ErrorKind.NotFound: return "not_found";
    case ErrorKind.LimitExceeded: return "limit_exceeded";
    default: return "error " + code.toString();
  }
}

/** What a host service answered: `ok` with a `value`, or an error kind
 *  with a message. */
export class HostResult {
  constructor(
    /** 0 when it worked, else the error kind (`ErrorKind`). */
    public code: i32,
    /** The reply when it worked, else the UTF-8 message. */
    public value: Uint8Array,
  ) {}

  get ok(): bool {
    return this.code == ErrorKind.Ok;
  }

  /** `not_found`, `permission_denied`, …; `ok` when it worked. */
  get errorKind(): string {
    return errorKindName(this.code);
  }

  /** The error message; empty when it worked. */
  get message(): string {
    return this.code == ErrorKind.Ok ? "" : text(this.value);
  }

  /** Whether it failed with `kind`. */
  is(kind: ErrorKind): bool {
    return this.code == <i32>kind;
  }

  /** The value as text (invalid UTF-8 replaced). */
  text(): string {
    return text(this.value);
  }

  /** `KIND: MESSAGE`, as a Rust plugin's error reads when it passes a
   *  host error on with `?`. */
  describe(): string {
    return this.errorKind + ": " + this.message;
  }

  /** As a call's reply: the value, or a plugin error saying `describe()`. */
  toReply(): Reply {
    return this.ok ? ok(this.value) : fail(this.describe());
  }
}

/** Where host_call writes `[ptr, len]`. */
const OUT: usize = memory.data(8, 4);

/** Calls host service `op` (`kv_get:KEY`, `publish:TOPIC`,
 *  `call:PLUGIN/METHOD`, `config`, …) with `input`. */
export function hostCall(op: string, input: Uint8Array): HostResult {
  let opData = String.UTF8.encode(op, false, String.UTF8.ErrorMode.REPLACE);
  let code = host_call(
    changetype<usize>(opData),
    <usize>opData.byteLength,
    input.dataStart,
    <usize>input.byteLength,
    OUT,
  );
  let ptr = load<u32>(OUT);
  let len = load<u32>(OUT, 4);
  let value = new Uint8Array(<i32>len);
  if (len != 0) {
    memory.copy(value.dataStart, <usize>ptr, <usize>len);
  }
  if (ptr != 0) heap.free(<usize>ptr);
  return new HostResult(code, value);
}

/** The plugin's key-value storage (needs `host = ["kv"]`): values that
 *  survive worker crashes and supervisor restarts. */
export class kv {
  /** The value of `key`; error `NotFound` when there is none. */
  static get(key: string): HostResult {
    return hostCall("kv_get:" + key, new Uint8Array(0));
  }

  /** The value of `key` as text, or `null` when there is none or the
   *  storage failed (then logged). */
  static getText(key: string): string | null {
    let result = kv.get(key);
    if (result.ok) return result.text();
    if (!result.is(ErrorKind.NotFound)) log.warn("kv_get:" + key + ": " + result.describe());
    return null;
  }

  /** Stores `value` under `key`, durably, within the storage quota
   *  (`LimitExceeded` past it). */
  static put(key: string, value: Uint8Array): HostResult {
    return hostCall("kv_put:" + key, value);
  }

  static putText(key: string, value: string): HostResult {
    return kv.put(key, bytes(value));
  }

  /** Deletes `key`: ok, or error `NotFound` when there was none. */
  static delete(key: string): HostResult {
    return hostCall("kv_delete:" + key, new Uint8Array(0));
  }

  /** The keys starting with `prefix`, sorted, one per line in `value`. */
  static list(prefix: string = ""): HostResult {
    return hostCall("kv_list:" + prefix, new Uint8Array(0));
  }

  /** The keys starting with `prefix`, sorted (empty when the storage
   *  failed: use `list` to see why). */
  static keys(prefix: string = ""): string[] {
    let result = kv.list(prefix);
    let keys = new Array<string>();
    if (!result.ok) return keys;
    let lines = result.text().split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (lines[i].length > 0) keys.push(lines[i]);
    }
    return keys;
  }

  /** At most `limit` (capped at 10000; 0 fails with `BadRequest`) of the
   *  keys starting with `prefix`, sorted by their UTF-8 bytes, from
   *  `start` on (inclusive; `""` = from the first), and where the next
   *  page starts. */
  static listPage(prefix: string, start: string = "", limit: u32 = 100): KvPage {
    let from = bytes(start);
    let input = new Uint8Array(4 + from.length);
    store<u32>(input.dataStart, limit); // wasm is little-endian, as the format
    input.set(from, 4);
    return new KvPage(hostCall("kv_page:" + prefix, input));
  }

  /** Applies `writes` in order, all or none: after an error (a bad key,
   *  `LimitExceeded`) nothing is written. Deleting a missing key is not
   *  an error. */
  static batch(writes: KvWrite[]): HostResult {
    let keys = new Array<Uint8Array>(writes.length);
    let size = 0;
    for (let i = 0; i < writes.length; i++) {
      let value = writes[i].value;
      keys[i] = bytes(writes[i].key);
      size += 5 + keys[i].length + (value !== null ? 4 + value.length : 0);
    }
    let input = new Uint8Array(size);
    let at = 0;
    for (let i = 0; i < writes.length; i++) {
      let value = writes[i].value;
      input[at] = value !== null ? 0x50 : 0x44; // `P`, `D`
      at = putSized(input, at + 1, keys[i]);
      if (value !== null) at = putSized(input, at, value);
    }
    return hostCall("kv_batch", input);
  }
}

/** Writes `data` at `at` after its length (a little-endian u32), as
 *  `kv_batch` reads it; returns where it ends. */
function putSized(out: Uint8Array, at: i32, data: Uint8Array): i32 {
  store<u32>(out.dataStart + <usize>at, <u32>data.length);
  out.set(data, at + 4);
  return at + 4 + data.length;
}

/** One page of keys (`kv.listPage`): the host's result, with `keys` and
 *  `next` read from it when it is ok. */
export class KvPage extends HostResult {
  /** The keys, sorted; none when it failed. */
  keys: string[] = new Array<string>();
  /** Where the next page starts (pass it as `start`); `null` after the
   *  last page, or when it failed. */
  next: string | null = null;

  constructor(result: HostResult) {
    super(result.code, result.value);
    if (this.ok) {
      let lines = this.text().split("\n");
      if (lines[0].length > 0) this.next = lines[0];
      this.keys = lines.slice(1);
    }
  }
}

/** One write of `kv.batch`: `KvWrite.put(key, value)`,
 *  `KvWrite.putText(key, value)` or `KvWrite.delete(key)`. */
export class KvWrite {
  constructor(
    /** The key written. */
    public key: string,
    /** The value stored, `null` for a delete. */
    public value: Uint8Array | null,
  ) {}

  static put(key: string, value: Uint8Array): KvWrite {
    return new KvWrite(key, value);
  }

  static putText(key: string, value: string): KvWrite {
    return new KvWrite(key, bytes(value));
  }

  static delete(key: string): KvWrite {
    return new KvWrite(key, null);
  }
}

/** Publishes `payload` on `topic` to every subscriber but this plugin
 *  (needs `host = ["publish"]`). */
export function publish(topic: string, payload: Uint8Array): HostResult {
  return hostCall("publish:" + topic, payload);
}

export function publishText(topic: string, payload: string): HostResult {
  return publish(topic, bytes(payload));
}

/** Calls `method` of `plugin`, a dependency (needs `"call:PLUGIN"` in
 *  `host` and PLUGIN in `[dependencies]`). The value is its reply; an
 *  error keeps its kind (`UnknownMethod`, `Crashed`, `Timeout`, …). */
export function callPlugin(plugin: string, method: string, input: Uint8Array): HostResult {
  return hostCall("call:" + plugin + "/" + method, input);
}

/** The plugin's settings as TOML text: `[config]` of plugin.toml with the
 *  admin's overrides from corral.toml. Always allowed. */
export function config(): string {
  let result = hostCall("config", new Uint8Array(0));
  if (!result.ok) {
    log.error("config: " + result.describe());
    return "";
  }
  return result.text();
}

/** Set while `corral_abort` runs: an abort inside it traps at once. */
let aborting = false;

/** What AssemblyScript calls on `throw`, a failed `assert`, an index out
 *  of range or memory exhausted (instead of importing `env.abort`): logs
 *  the message as an error and traps, which the caller gets as a `plugin`
 *  error (`wasm trap in `METHOD`: …`) and after which the worker makes a
 *  fresh instance. Select it with `"use": ["abort=corral_abort"]`. */
// @ts-ignore: decorator
@global
export function corral_abort(
  message: string | null = null,
  fileName: string | null = null,
  lineNumber: u32 = 0,
  columnNumber: u32 = 0,
): void {
  if (!aborting) {
    aborting = true;
    let text = "panic: " + (message !== null ? message : "abort");
    if (fileName !== null) {
      text += " at " + fileName + ":" + lineNumber.toString() + ":" + columnNumber.toString();
    }
    writeLog(LogLevel.Error, text);
  }
  unreachable();
}

/** Stands in for `env.seed` (`Math.random`'s seed): the host's clock
 *  (`"use": ["seed=corral_seed"]`). Math.random is not for secrets. */
// @ts-ignore: decorator
@global
export function corral_seed(): f64 {
  return <f64>host_now_ms();
}

/** Stands in for `env.trace`: writes the message and numbers to the log
 *  at debug level (`"use": ["trace=corral_trace"]`). */
// @ts-ignore: decorator
@global
export function corral_trace(
  message: string,
  n: i32 = 0,
  a0: f64 = 0,
  a1: f64 = 0,
  a2: f64 = 0,
  a3: f64 = 0,
  a4: f64 = 0,
): void {
  let line = "trace: " + message;
  if (n > 0) line += " " + a0.toString();
  if (n > 1) line += ", " + a1.toString();
  if (n > 2) line += ", " + a2.toString();
  if (n > 3) line += ", " + a3.toString();
  if (n > 4) line += ", " + a4.toString();
  writeLog(LogLevel.Debug, line);
}
