// A fake corral host for a wasm plugin's tests under Node: it instantiates
// the module with the imports of module `corral` (log, now_ms, host_call)
// and drives the guest ABI exactly as corral's worker does (alloc the
// method, the input and the 8-byte `out`; call; read `[ptr, len]` at out;
// dealloc all four).
//
//     import { load } from "@corral/plugin-as/testing.mjs";
//     const plugin = await load("build/my-plugin.wasm", { config: 'greeting = "Hi"\n' });
//     assert.equal(plugin.callText("greet", "corral"), "Hi, corral!");
//
// Host services: `config` answers the given TOML; `kv_*` work on an
// in-memory map (`plugin.kv`), keys sorted by their UTF-8 bytes and a
// `kv_batch` applied all or none, as corral does; `publish` records
// (`plugin.published`);
// `call:PLUGIN/METHOD` goes to the `call` option (a function
// `(plugin, method, input) => Uint8Array`, which may throw a
// `HostError`), else answers `unavailable`, as does anything else.
// The log goes to `plugin.logs` (and to stderr when `verbose`).

import { readFileSync } from "node:fs";

/** Call results (`CORRAL_CALL_*`). */
export const CALL_OK = 0;
export const CALL_ERR_PLUGIN = 1;
export const CALL_ERR_UNKNOWN_METHOD = 2;
export const CALL_ERR_PANIC = 3;

/** Error kinds by code (`CORRAL_ERR_*`), as corral names them. */
export const KINDS = [
  "ok",
  "plugin",
  "unknown_method",
  "unknown_plugin",
  "crashed",
  "timeout",
  "unavailable",
  "protocol",
  "bad_request",
  "permission_denied",
  "not_found",
  "limit_exceeded",
];

/** What a fake host service fails with. */
export class HostError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const LEVELS = ["", "error", "warn", "info", "debug", "trace"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
/** The most keys a `kv_page` holds, as corral's. */
const MAX_PAGE = 10000;

/** Bytes of `value`: a string as UTF-8, bytes as they are. */
export function toBytes(value) {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value === "string") return encoder.encode(value);
  return new Uint8Array(value);
}

/** Loads the module at `path` (or its bytes) and runs its `init`, as the
 *  worker does. Throws when `init` fails or traps. */
export async function load(path, options = {}) {
  const plugin = new TestPlugin(options);
  const wasm = typeof path === "string" ? readFileSync(path) : path;
  await plugin.instantiate(wasm);
  return plugin;
}

export class TestPlugin {
  constructor(options = {}) {
    this.options = options;
    this.config = options.config ?? "";
    /** `{ level, message }` of each log line. */
    this.logs = [];
    /** Key-value storage. */
    this.kv = new Map(Object.entries(options.kv ?? {}).map(([k, v]) => [k, toBytes(v)]));
    /** `{ topic, payload }` of each publication. */
    this.published = [];
    /** Host services asked for, in order (`kv_get:count`, …). */
    this.ops = [];
    /** Granted host services, as in `[permissions] host` (default: all). */
    this.permissions = options.permissions ?? null;
  }

  async instantiate(wasm) {
    const imports = {
      corral: {
        log: (level, ptr, len) => {
          const message = decoder.decode(this.read(ptr, len));
          this.logs.push({ level: LEVELS[level] ?? String(level), message });
          if (this.options.verbose) process.stderr.write(`${LEVELS[level]}: ${message}\n`);
        },
        now_ms: () => BigInt(this.options.now ?? Date.now()),
        host_call: (op, opLen, input, inputLen, out) =>
          this.hostCall(decoder.decode(this.read(op, opLen)), this.read(input, inputLen).slice(), out),
      },
    };
    const { instance } = await WebAssembly.instantiate(wasm, imports);
    this.instance = instance;
    this.exports = instance.exports;
    for (const name of ["memory", "alloc", "dealloc", "call", "init", "corral_abi_version"]) {
      if (!(name in this.exports)) throw new Error(`the module exports no \`${name}\``);
    }
    const version = this.exports.corral_abi_version();
    if (version !== 1) throw new Error(`the module speaks plugin ABI ${version}, not 1`);
    const code = this.exports.init();
    if (code !== 0) {
      const why = this.logs.map((l) => l.message).join("; ");
      throw new Error(`plugin init failed (code ${code}): ${why}`);
    }
  }

  read(ptr, len) {
    return new Uint8Array(this.exports.memory.buffer, ptr >>> 0, len >>> 0);
  }

  put(bytes) {
    const ptr = this.exports.alloc(bytes.length) >>> 0;
    this.read(ptr, bytes.length).set(bytes);
    return ptr;
  }

  hostCall(op, input, out) {
    this.ops.push(op);
    let code = 0;
    let reply;
    try {
      reply = this.service(op, input);
    } catch (error) {
      if (!(error instanceof HostError)) throw error;
      code = Math.max(1, KINDS.indexOf(error.kind));
      reply = encoder.encode(error.message);
    }
    const ptr = reply.length === 0 ? 0 : this.put(reply);
    const pair = new DataView(this.exports.memory.buffer, out >>> 0, 8);
    pair.setUint32(0, ptr, true);
    pair.setUint32(4, reply.length, true);
    return code;
  }

  allowed(service) {
    if (this.permissions !== null && !this.permissions.includes(service)) {
      throw new HostError(
        "permission_denied",
        `plugin may not use host service \`${service}\`: add "${service}" to [permissions] host`,
      );
    }
  }

  service(op, input) {
    const colon = op.indexOf(":");
    const name = colon < 0 ? op : op.slice(0, colon);
    const arg = colon < 0 ? "" : op.slice(colon + 1);
    switch (name) {
      case "config":
        return encoder.encode(this.config);
      case "kv_get":
        this.allowed("kv");
        if (!this.kv.has(arg)) throw new HostError("not_found", `no key \`${arg}\``);
        return this.kv.get(arg);
      case "kv_put":
        this.allowed("kv");
        this.kv.set(arg, input);
        return new Uint8Array(0);
      case "kv_delete":
        this.allowed("kv");
        if (!this.kv.delete(arg)) throw new HostError("not_found", `no key \`${arg}\``);
        return new Uint8Array(0);
      case "kv_list":
        this.allowed("kv");
        return encoder.encode(this.keysWith(arg).join("\n"));
      case "kv_page":
        this.allowed("kv");
        return this.page(arg, input);
      case "kv_batch":
        this.allowed("kv");
        return this.batch(input);
      case "publish":
        this.allowed("publish");
        this.published.push({ topic: arg, payload: input });
        return new Uint8Array(0);
      case "call": {
        const slash = arg.indexOf("/");
        const plugin = arg.slice(0, slash);
        this.allowed(`call:${plugin}`);
        if (!this.options.call) throw new HostError("unavailable", `no plugin \`${plugin}\` in this test`);
        return toBytes(this.options.call(plugin, arg.slice(slash + 1), input));
      }
      default:
        throw new HostError("unavailable", `host service \`${op}\` is not in this test host`);
    }
  }

  /** The stored keys starting with `prefix`, in corral's order: by UTF-8
   *  bytes, i.e. by code point (`sort()`'s UTF-16 order differs past
   *  U+FFFF). */
  keysWith(prefix) {
    return [...this.kv.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
  }

  /** `kv_page:PREFIX`: input = page size (u32 LE) and start key; reply =
   *  the next page's start key, then each key after a `\n`. */
  page(prefix, input) {
    if (input.length < 4) throw new HostError("bad_request", "a page request starts with its size, a u32");
    const limit = new DataView(input.buffer, input.byteOffset, 4).getUint32(0, true);
    const start = strictText(input.subarray(4), "a page request's start key is not UTF-8");
    if (limit === 0) throw new HostError("bad_request", "a page holds at least one key");
    const keys = this.keysWith(prefix).filter((k) => compareKeys(k, start) >= 0);
    const shown = keys.slice(0, Math.min(limit, MAX_PAGE));
    return encoder.encode([keys[shown.length] ?? "", ...shown].join("\n"));
  }

  /** `kv_batch`: input = `P`, key length, key, value length, value (u32
   *  LE lengths) for a put, `D`, key length, key for a delete. Every
   *  write is read and checked before any is applied: all or none. */
  batch(input) {
    const view = new DataView(input.buffer, input.byteOffset, input.length);
    let at = 0;
    const chunk = () => {
      const end = at + 4 <= input.length ? at + 4 + view.getUint32(at, true) : Infinity;
      if (end > input.length) throw new HostError("bad_request", "a batch is cut short");
      const bytes = input.slice(at + 4, end);
      at = end;
      return bytes;
    };
    const writes = [];
    while (at < input.length) {
      const tag = input[at++];
      if (tag !== 0x50 && tag !== 0x44) throw new HostError("bad_request", "a batch's write starts with `P` or `D`");
      const key = strictText(chunk(), "a batch's key is not UTF-8");
      const value = tag === 0x50 ? chunk() : null;
      const problem = keyProblem(key);
      if (problem !== undefined) throw new HostError("bad_request", `bad key ${JSON.stringify(key)}: ${problem}`);
      writes.push([key, value]);
    }
    for (const [key, value] of writes) {
      if (value === null) this.kv.delete(key);
      else this.kv.set(key, value);
    }
    return new Uint8Array(0);
  }

  /** Calls `method` with `input` (a string or bytes) as the worker does:
   *  `{ code, kind, bytes, text }`, `kind` being `ok`, `plugin`,
   *  `unknown_method` or `panic`. A trap throws (the worker answers a
   *  `plugin` error and makes a fresh instance). */
  call(method, input) {
    const e = this.exports;
    const methodBytes = toBytes(method);
    const inputBytes = toBytes(input);
    const methodPtr = this.put(methodBytes);
    const inputPtr = this.put(inputBytes);
    const out = e.alloc(8) >>> 0;
    const code = e.call(methodPtr, methodBytes.length, inputPtr, inputBytes.length, out);
    const pair = new DataView(e.memory.buffer, out, 8);
    const ptr = pair.getUint32(0, true);
    const len = pair.getUint32(4, true);
    const bytes = this.read(ptr, len).slice();
    for (const [p, l] of [
      [methodPtr, methodBytes.length],
      [inputPtr, inputBytes.length],
      [ptr, len],
      [out, 8],
    ]) {
      e.dealloc(p, l);
    }
    const kind = ["ok", "plugin", "unknown_method", "panic"][code] ?? "plugin";
    return { code, kind, bytes, text: decoder.decode(bytes) };
  }

  /** The reply of `method` as text; throws when the call fails. */
  callText(method, input) {
    const result = this.call(method, input);
    if (result.code !== CALL_OK) throw new Error(`${method}: ${result.kind}: ${result.text}`);
    return result.text;
  }

  /** Delivers a publication on `topic`, as a call of `@event:TOPIC`. */
  event(topic, payload) {
    return this.call(`@event:${topic}`, payload);
  }

  /** The `health` export: true when healthy (or when there is none). */
  health() {
    return this.exports.health ? this.exports.health() === 0 : true;
  }

  shutdown() {
    if (this.exports.shutdown) this.exports.shutdown();
  }
}

function compareKeys(a, b) {
  for (let i = 0; i < a.length && i < b.length; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/** Why `key` cannot be a storage key, as corral says; `undefined` when it
 *  can. */
function keyProblem(key) {
  if (key === "") return "a key is not empty";
  if (encoder.encode(key).length > 1024) return "a key is at most 1024 bytes";
  if (/\p{Cc}/u.test(key)) return "a key has no control characters (newlines, tabs, ...)";
  return undefined;
}

function strictText(bytes, problem) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new HostError("bad_request", problem);
  }
}
