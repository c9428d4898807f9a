// The host `corral.js` binds to under Node: storage in a Map, settings,
// publications and logs kept for a test to look at, calls to other plugins
// answered by handlers the test registers. `corral/testing` drives it.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** What the fake host holds; `corral/testing` exports it as `host`. */
export const state = {
  /** The plugin's `[config]`, as `config()` returns it. */
  config: {},
  /** The plugin's storage. */
  kv: new Map(),
  /** Publications, in order: `{ topic, payload }`. */
  published: [],
  /** Log lines, in order: `{ level, text }` (level 1 error … 5 trace). */
  logs: [],
  /** `"PLUGIN/METHOD"` → `(input: Uint8Array) => reply`, for `call`. */
  plugins: new Map(),
  /** Host services granted (`[permissions] host`); `undefined`: all. */
  grants: undefined,
};

const LEVELS = ["", "error", "warn", "info", "debug", "trace"];
const CODES = { plugin: 1, unknown_method: 2, unknown_plugin: 3, bad_request: 8, permission_denied: 9, not_found: 10 };
/** The most keys a `kv_page` holds, as the supervisor's. */
const MAX_PAGE = 10000;

function fail(kind, message) {
  return [CODES[kind] ?? 1, encoder.encode(message)];
}

function granted(grant) {
  return state.grants === undefined || state.grants.includes(grant);
}

function serve(op, input) {
  const [name, argument = ""] = op.split(/:(.*)/s);
  const grant = name.startsWith("kv_") ? "kv" : name === "call" ? `call:${argument.split("/")[0]}` : name;
  if (!granted(grant)) return fail("permission_denied", `host service \`${op}\` not granted: add "${grant}" to [permissions] host`);
  switch (name) {
    case "kv_get":
      return state.kv.has(argument) ? [0, state.kv.get(argument).slice()] : fail("not_found", `no key \`${argument}\``);
    case "kv_put":
      state.kv.set(argument, input.slice());
      return [0, new Uint8Array(0)];
    case "kv_delete":
      return state.kv.delete(argument) ? [0, new Uint8Array(0)] : fail("not_found", `no key \`${argument}\``);
    case "kv_list":
      return [0, encoder.encode(keysWith(argument).join("\n"))];
    case "kv_page":
      return page(argument, input);
    case "kv_batch":
      return batch(input);
    case "publish":
      state.published.push({ topic: argument, payload: input.slice() });
      return [0, new Uint8Array(0)];
    case "call": {
      const handler = state.plugins.get(argument);
      if (handler === undefined) return fail("unknown_plugin", `no fake for \`${argument}\`: register one with host.plugins.set("${argument}", fn)`);
      const reply = handler(input);
      return [0, typeof reply === "string" ? encoder.encode(reply) : reply];
    }
    default:
      return fail("bad_request", `unknown host service \`${op}\``);
  }
}

/** The stored keys starting with `prefix`, in the supervisor's order: by
 * UTF-8 bytes, i.e. by code point (`sort()`'s UTF-16 order differs past
 * U+FFFF). */
function keysWith(prefix) {
  return [...state.kv.keys()].filter((key) => key.startsWith(prefix)).sort(compareKeys);
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

/** Why `key` cannot be a storage key, as the supervisor says; `undefined`
 * when it can. */
function keyProblem(key) {
  if (key === "") return "a key is not empty";
  if (encoder.encode(key).length > 1024) return "a key is at most 1024 bytes";
  if (/\p{Cc}/u.test(key)) return "a key has no control characters (newlines, tabs, ...)";
  return undefined;
}

/** `kv_page:PREFIX`: input = page size (u32 LE) and start key; reply =
 * the next page's start key, then each key after a `\n`. */
function page(prefix, input) {
  if (input.length < 4) return fail("bad_request", "a page request starts with its size, a u32");
  const limit = new DataView(input.buffer, input.byteOffset, 4).getUint32(0, true);
  let start;
  try {
    start = strictDecoder.decode(input.subarray(4));
  } catch {
    return fail("bad_request", "a page request's start key is not UTF-8");
  }
  if (limit === 0) return fail("bad_request", "a page holds at least one key");
  const keys = keysWith(prefix).filter((key) => compareKeys(key, start) >= 0);
  const shown = keys.slice(0, Math.min(limit, MAX_PAGE));
  return [0, encoder.encode([keys[shown.length] ?? "", ...shown].join("\n"))];
}

/** `kv_batch`: input = `P`, key length, key, value length, value (u32 LE
 * lengths) for a put, `D`, key length, key for a delete. Every write is
 * read and checked before any is applied: all or none. */
function batch(input) {
  const view = new DataView(input.buffer, input.byteOffset, input.length);
  let at = 0;
  const chunk = () => {
    if (at + 4 > input.length) return undefined;
    const end = at + 4 + view.getUint32(at, true);
    if (end > input.length) return undefined;
    const bytes = input.slice(at + 4, end);
    at = end;
    return bytes;
  };
  const writes = [];
  while (at < input.length) {
    const tag = input[at++];
    if (tag !== 0x50 && tag !== 0x44) return fail("bad_request", "a batch's write starts with `P` or `D`");
    const keyBytes = chunk();
    const value = keyBytes !== undefined && tag === 0x50 ? chunk() : null;
    if (keyBytes === undefined || value === undefined) return fail("bad_request", "a batch is cut short");
    let key;
    try {
      key = strictDecoder.decode(keyBytes);
    } catch {
      return fail("bad_request", "a batch's key is not UTF-8");
    }
    const problem = keyProblem(key);
    if (problem !== undefined) return fail("bad_request", `bad key ${JSON.stringify(key)}: ${problem}`);
    writes.push([key, value]);
  }
  for (const [key, value] of writes) {
    if (value === null) state.kv.delete(key);
    else state.kv.set(key, value);
  }
  return [0, new Uint8Array(0)];
}

export const binding = {
  log(level, text) {
    state.logs.push({ level, text });
    if (process.env.CORRAL_TEST_LOG) console.error(`[${LEVELS[level]}] ${text}`);
  },
  nowMs: () => Date.now(),
  encode: (text) => encoder.encode(text),
  decode: (bytes) => decoder.decode(bytes),
  config: () => structuredClone(state.config),
  call: serve,
};
