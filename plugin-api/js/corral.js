// The `corral` module of a JavaScript plugin: the host services (storage,
// publish, calls to other plugins, settings, logging) and byte helpers.
//
// In the worker, the engine loads this file as the built-in module
// `corral`, bound to the worker through `globalThis.__corral` (removed
// before the plugin runs). Under Node (a plugin's own tests), the same
// file runs on the fake host of `fake-host.js`, which `corral/testing`
// sets up.

const host = globalThis.__corral ?? (await import("./fake-host.js")).binding;
delete globalThis.__corral;

/** Error kinds, by the code the host reports them with. */
const KINDS = [
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

/** An error with a kind: what host services fail with, and what a method
 * may throw to answer with a kind other than `plugin`. */
export class CorralError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "CorralError";
    this.kind = kind;
  }
}

/** UTF-8 bytes of `text`. */
export function bytes(text) {
  return host.encode(String(text));
}

/** `data` as UTF-8 text. */
export function text(data) {
  return host.decode(data);
}

/** `data` (UTF-8 JSON) parsed. */
export function json(data) {
  return JSON.parse(host.decode(data));
}

/** `value` as UTF-8 JSON bytes. */
export function toJson(value) {
  return host.encode(JSON.stringify(value));
}

/** Milliseconds since the Unix epoch. */
export function nowMs() {
  return host.nowMs();
}

function toBytes(data) {
  const bytes = asBytes(data);
  if (bytes === undefined) {
    throw new TypeError(`expected bytes (a Uint8Array) or a string, not ${describe(data)}: use toJson() for objects`);
  }
  return bytes;
}

function asBytes(data) {
  if (data === undefined || data === null) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return host.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value !== "object") return `a ${typeof value}`;
  return `an object (${value.constructor?.name ?? "no prototype"})`;
}

function service(op, input) {
  const [code, reply] = host.call(op, toBytes(input));
  if (code === 0) return reply;
  const error = new CorralError(KINDS[code] ?? "plugin", host.decode(reply));
  error.fromHost = true;
  throw error;
}

function format(values) {
  return values
    .map((value) => {
      if (typeof value === "string") return value;
      if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
      try {
        return JSON.stringify(value) ?? String(value);
      } catch {
        return String(value);
      }
    })
    .join(" ");
}

/** The plugin's log, at five levels; lines go to the supervisor's log. */
export const log = {
  error: (...values) => host.log(1, format(values)),
  warn: (...values) => host.log(2, format(values)),
  info: (...values) => host.log(3, format(values)),
  debug: (...values) => host.log(4, format(values)),
  trace: (...values) => host.log(5, format(values)),
};

/** The plugin's storage (`host = ["kv"]`). */
export const kv = {
  async get(key) {
    try {
      return service(`kv_get:${key}`);
    } catch (error) {
      if (error.kind === "not_found") return null;
      throw error;
    }
  },
  async getText(key) {
    const value = await kv.get(key);
    return value === null ? null : text(value);
  },
  async getJson(key) {
    const value = await kv.get(key);
    return value === null ? null : json(value);
  },
  async put(key, value) {
    service(`kv_put:${key}`, value);
  },
  async delete(key) {
    try {
      service(`kv_delete:${key}`);
      return true;
    } catch (error) {
      if (error.kind === "not_found") return false;
      throw error;
    }
  },
  async list(prefix = "") {
    const keys = text(service(`kv_list:${prefix}`));
    return keys === "" ? [] : keys.split("\n");
  },
  async listPage(prefix = "", { start = "", limit = 100 } = {}) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new TypeError(`expected a page size (a whole number), not ${typeof limit === "number" ? limit : describe(limit)}`);
    }
    if (typeof start !== "string") {
      throw new TypeError(`expected the start key as a string, not ${describe(start)} (next is null after the last page)`);
    }
    const startBytes = bytes(start);
    const input = new Uint8Array(4 + startBytes.length);
    new DataView(input.buffer).setUint32(0, Math.min(limit, 0xffffffff), true);
    input.set(startBytes, 4);
    const [next, ...keys] = text(service(`kv_page:${prefix}`, input)).split("\n");
    return { keys, next: next === "" ? null : next };
  },
  async batch(writes) {
    const chunks = [];
    for (const write of writes) {
      if (write?.put !== undefined && write.delete !== undefined) {
        throw new TypeError(`a write puts or deletes, not both: ${JSON.stringify(write)}`);
      } else if (write?.put !== undefined && write.value === undefined) {
        throw new TypeError(`the put of ${JSON.stringify(write.put)} has no value`);
      } else if (write?.put !== undefined) {
        chunks.push(Uint8Array.of(0x50), ...sized(bytes(write.put)), ...sized(toBytes(write.value)));
      } else if (write?.delete !== undefined) {
        chunks.push(Uint8Array.of(0x44), ...sized(bytes(write.delete)));
      } else {
        throw new TypeError(`expected a write, { put: key, value } or { delete: key }, not ${describe(write)}`);
      }
    }
    const input = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      input.set(chunk, at);
      at += chunk.length;
    }
    service("kv_batch", input);
  },
};

/** `data` after its length, a little-endian u32, as `kv_batch` takes it. */
function sized(data) {
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, data.length, true);
  return [length, data];
}

/** Publishes `payload` on `topic` (`host = ["publish"]`). */
export async function publish(topic, payload) {
  service(`publish:${topic}`, payload);
}

/** Calls `method` of `plugin`, one of this plugin's dependencies
 * (`host = ["call:PLUGIN"]`), within what is left of the current call's
 * deadline. */
export async function call(plugin, method, input) {
  return service(`call:${plugin}/${method}`, input);
}

let settings;
/** The plugin's settings: its `[config]` with corral.toml's overrides. */
export function config() {
  settings ??= host.config();
  return settings;
}

if (globalThis.console === undefined) {
  globalThis.console = {
    log: log.info,
    info: log.info,
    warn: log.warn,
    error: log.error,
    debug: log.debug,
    trace: log.trace,
  };
}

if (globalThis.TextEncoder === undefined) {
  globalThis.TextEncoder = class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return host.encode(String(input));
    }
  };
  globalThis.TextDecoder = class TextDecoder {
    get encoding() {
      return "utf-8";
    }
    decode(input) {
      return input === undefined ? "" : host.decode(toBytes(input));
    }
  };
}

/** How the worker (and the test kit) calls a plugin's exports: `method`
 * with `input`; `@event:TOPIC` goes to `on_event(topic, payload)`.
 * Resolves to the reply's bytes, or `[KIND_CODE, MESSAGE]`, as a Rust
 * plugin would answer: an error thrown by a method is a `plugin` error
 * with its message (a host service's error that escapes, `KIND:
 * MESSAGE`), except a `CorralError` of kind `unknown_method`. Not part of
 * the plugin API. */
export async function __serve(plugin, method, input) {
  try {
    if (method.startsWith("@event:")) {
      if (typeof plugin.on_event === "function") await plugin.on_event(method.slice(7), input);
      return new Uint8Array(0);
    }
    const reserved = method === "init" || method === "on_event" || method === "health";
    const handler = reserved ? undefined : plugin[method];
    if (typeof handler !== "function") return [2, `unknown method \`${method}\``];
    const reply = await handler(input);
    return asBytes(reply) ?? [1, `method \`${method}\` returned ${describe(reply)}: return a Uint8Array or a string (toJson() for objects)`];
  } catch (error) {
    if (!(error instanceof Error)) return [1, String(error)];
    if (error instanceof CorralError && error.kind === "unknown_method" && !error.fromHost) {
      return [2, error.message];
    }
    return [1, error.fromHost ? `${error.kind}: ${error.message}` : error.message];
  }
}
