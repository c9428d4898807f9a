// Types of the `corral` module: the host API of a corral plugin written in
// JavaScript or TypeScript (kind = "js"). A plugin is an ES module whose
// exported functions are its methods:
//
//   import { config, kv, log, text } from "corral";
//   export function init(): void { … }                      // optional, once at start
//   export async function greet(input: Uint8Array) { … }    // a method: `corral call NAME greet …`
//   export function on_event(topic: string, payload: Uint8Array): void { … }
//   export function health(): boolean { … }                 // optional

/** Error kinds, as the host protocol names them. */
export type ErrorKind =
  | "plugin"
  | "unknown_method"
  | "unknown_plugin"
  | "crashed"
  | "timeout"
  | "unavailable"
  | "protocol"
  | "bad_request"
  | "permission_denied"
  | "not_found"
  | "limit_exceeded";

/** What a host service fails with. A method may throw one of kind
 * `unknown_method`; any other error it throws answers with kind `plugin`
 * and the error's message (a host service's error that escapes:
 * `KIND: MESSAGE`), as a Rust plugin's `?` does. */
export class CorralError extends Error {
  constructor(kind: ErrorKind, message: string);
  readonly kind: ErrorKind;
}

/** Bytes a host service or a method accepts: a string stands for its UTF-8. */
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/** What a method may return: bytes, a string (its UTF-8), or nothing. */
export type Reply = Bytes | null | undefined | void;

/** A method: the call's input in, the reply out. */
export type Method = (input: Uint8Array) => Reply | Promise<Reply>;

/** The plugin's log: lines go to the supervisor's log with the plugin's
 * name. Values that are not strings are written as JSON. */
export const log: {
  error(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  info(...values: unknown[]): void;
  debug(...values: unknown[]): void;
  trace(...values: unknown[]): void;
};

/** The plugin's storage, kept by the supervisor across restarts
 * (`[permissions] host = ["kv"]`). */
export const kv: {
  /** The value, or `null` when there is none. */
  get(key: string): Promise<Uint8Array | null>;
  getText(key: string): Promise<string | null>;
  getJson<T = unknown>(key: string): Promise<T | null>;
  put(key: string, value: Bytes): Promise<void>;
  /** Whether there was a value. */
  delete(key: string): Promise<boolean>;
  /** Keys starting with `prefix`, sorted. */
  list(prefix?: string): Promise<string[]>;
  /** At most `limit` (default 100, capped at 10000; 0 fails with
   * `bad_request`) of the keys starting with `prefix`, sorted by their
   * UTF-8 bytes, from `start` on (inclusive; default: the first), and
   * where the next page starts, `null` after the last one:
   *
   *     let start: string | null = "";
   *     while (start !== null) {
   *       const page = await kv.listPage("user/", { start });
   *       for (const key of page.keys) { … }
   *       start = page.next;
   *     }
   */
  listPage(prefix?: string, options?: { start?: string; limit?: number }): Promise<KvPage>;
  /** Applies `writes` in order, all or none: after an error (a bad key,
   * the storage quota) nothing is written. Deleting a missing key is not
   * an error. */
  batch(writes: KvWrite[]): Promise<void>;
};

/** One page of keys (`kv.listPage`). */
export interface KvPage {
  /** The keys, sorted. */
  keys: string[];
  /** Where the next page starts, `null` after the last one. */
  next: string | null;
}

/** One write of `kv.batch`: a put (a string value stands for its UTF-8)
 * or a delete. */
export type KvWrite = { put: string; value: Bytes } | { delete: string };

/** Publishes `payload` on `topic` to the plugins and host apps subscribed
 * (`host = ["publish"]`). */
export function publish(topic: string, payload: Bytes): Promise<void>;

/** Calls `method` of `plugin`, one of this plugin's `[dependencies]`
 * (`host = ["call:PLUGIN"]`), within what is left of the current call's
 * deadline. */
export function call(plugin: string, method: string, input?: Bytes): Promise<Uint8Array>;

/** The plugin's settings: its `[config]` with corral.toml's overrides. */
export function config<T = Record<string, unknown>>(): T;

/** UTF-8 bytes of `text`. */
export function bytes(text: string): Uint8Array;
/** `data` as UTF-8 text. */
export function text(data: Uint8Array): string;
/** `data` (UTF-8 JSON) parsed. */
export function json<T = unknown>(data: Uint8Array): T;
/** `value` as UTF-8 JSON bytes. */
export function toJson(value: unknown): Uint8Array;
/** Milliseconds since the Unix epoch. */
export function nowMs(): number;
