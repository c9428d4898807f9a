// corral's host client for Node.js: calls, status, pub/sub, events and
// logs over the supervisor's Unix socket, in the JSON form of the host
// protocol. No dependencies beyond node's `net`.

export { Corral, DEFAULT_TIMEOUT_MS, PROTOCOL_VERSION, defaultSocket } from "./client.js";
export type { Bytes, CallOptions, ConnectOptions } from "./client.js";
export { CorralError } from "./errors.js";
export type { ErrorKind } from "./errors.js";
export { ReplyStream } from "./stream.js";
export type {
  Action,
  CorralEvent,
  EffectiveLimits,
  ExitInfo,
  Fault,
  Message,
  PluginDetails,
  PluginInfo,
  PluginState,
} from "./types.js";
