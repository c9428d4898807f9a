// A plugin's tests under Node: `load` a built plugin module and call it as
// the worker does (same dispatch, same errors), on the fake host `host`.
//
//   import { host, load } from "corral/testing";
//   host.config = { greeting: "Hi" };
//   const plugin = await load(await import("../dist/plugin.js"));
//   assert.equal(await plugin.callText("greet", "corral"), "Hi, corral!");

import { state } from "./fake-host.js";
import { CorralError, __serve } from "./corral.js";

export { state as host };

const KINDS = ["ok", "plugin", "unknown_method"];

/** Runs the module's `init` and returns a caller for its methods. */
export async function load(module) {
  if (typeof module.init === "function") await module.init();
  const call = async (method, input = new Uint8Array(0)) => {
    const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
    const reply = await __serve(module, method, bytes);
    if (reply instanceof Uint8Array) return reply;
    throw new CorralError(KINDS[reply[0]] ?? "plugin", reply[1]);
  };
  return {
    call,
    callText: async (method, input) => new TextDecoder().decode(await call(method, input)),
    event: async (topic, payload = new Uint8Array(0)) => {
      await call(`@event:${topic}`, payload);
    },
  };
}

/** Empties storage, publications, logs, fakes and settings. */
export function reset() {
  state.config = {};
  state.kv.clear();
  state.published.length = 0;
  state.logs.length = 0;
  state.plugins.clear();
  state.grants = undefined;
}
