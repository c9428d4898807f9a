// The host `corral.js` binds to under Node: storage in a Map, settings,
// publications and logs kept for a test to look at, calls to other plugins
// answered by handlers the test registers. `corral/testing` drives it.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
const CODES = { plugin: 1, unknown_method: 2, unknown_plugin: 3, permission_denied: 9, not_found: 10 };

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
      return [0, encoder.encode([...state.kv.keys()].filter((key) => key.startsWith(argument)).sort().join("\n"))];
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
