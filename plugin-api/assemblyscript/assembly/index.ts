// @corral/plugin-as: corral plugins in AssemblyScript.
//
//     import { register, okText, fail, text } from "@corral/plugin-as";
//     export * from "@corral/plugin-as/abi";  // the exports corral calls
//
//     register("greet", (input: Uint8Array): Reply => okText("Hello, " + text(input) + "!"));
//
// See README.md beside this folder.

export { Reply, CallCode, ok, okText, fail, unknownMethod } from "./reply";
export {
  Handler,
  FallbackHandler,
  EventHandler,
  InitHook,
  HealthHook,
  ShutdownHook,
  EVENT_PREFIX,
  register,
  onCall,
  onEvent,
  onInit,
  onHealth,
  onShutdown,
  registeredMethods,
} from "./plugin";
export {
  LogLevel,
  writeLog,
  log,
  nowMs,
  ErrorKind,
  errorKindName,
  HostResult,
  hostCall,
  kv,
  KvPage,
  KvWrite,
  publish,
  publishText,
  callPlugin,
  config,
} from "./host";
export { bytes, text, utf8, isUtf8, concat } from "./utf8";
export { Settings, Value, ValueKind, parseToml } from "./toml";

import { parseToml, Settings } from "./toml";
import { config } from "./host";

/** The plugin's settings (`config()`), read: `settings().getString("greeting", "Hello")`. */
export function settings(): Settings {
  return parseToml(config());
}
