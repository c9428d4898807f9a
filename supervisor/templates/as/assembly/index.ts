// `@NAME@`: a corral plugin in AssemblyScript.
//
// | method  | input  | reply             |
// |---------|--------|-------------------|
// | `greet` | a name | `GREETING, NAME!` |
//
// `GREETING` is the `greeting` setting: `[config]` in plugin.toml, which
// an admin may override in corral.toml (`[plugins.@NAME@.config]`).

import { Reply, fail, log, ok, okText, onInit, register, settings, utf8 } from "@corral/plugin-as";

// The exports corral calls (alloc, init, call, …): keep this line.
export * from "@corral/plugin-as/abi";

let greeting = "Hello";

// Runs once in the sandboxed worker, before the first call.
onInit((): Reply => {
  let config = settings();
  if (config.error !== null) return fail("[config]: " + config.error!);
  greeting = config.getString("greeting", "Hello");
  log.info("@NAME@ ready");
  return ok();
});

register("greet", (input: Uint8Array): Reply => {
  let name = utf8(input);
  if (name === null) return fail("greet: the name is not UTF-8");
  return okText(greeting + ", " + name + "!");
});
