// A call's outcome: a reply, or an error message (AssemblyScript has no
// exceptions, so a method returns one of these instead of throwing).

import { bytes } from "./utf8";

/** `CORRAL_CALL_*`: what the ABI's `call` returns. */
export enum CallCode {
  Ok = 0,
  Plugin = 1,
  UnknownMethod = 2,
  Panic = 3,
}

/** What a method answers: `ok(bytes)`, `okText(text)`, `fail(message)`
 *  or `unknownMethod(name)`. */
export class Reply {
  constructor(
    /** A `CallCode`. */
    public code: i32,
    /** The reply, or the UTF-8 error message. */
    public bytes: Uint8Array,
  ) {}

  get ok(): bool {
    return this.code == CallCode.Ok;
  }
}

/** Answers with `data` (nothing by default). */
export function ok(data: Uint8Array | null = null): Reply {
  return new Reply(CallCode.Ok, data !== null ? data : new Uint8Array(0));
}

/** Answers with the UTF-8 bytes of `text`. */
export function okText(text: string): Reply {
  return new Reply(CallCode.Ok, bytes(text));
}

/** Fails the call: the caller gets a `plugin` error with `message`. */
export function fail(message: string): Reply {
  return new Reply(CallCode.Plugin, bytes(message));
}

/** Fails the call as an `unknown_method` error: ``unknown method `NAME` ``,
 *  as a Rust plugin's `PluginError::unknown_method`. */
export function unknownMethod(method: string): Reply {
  return new Reply(CallCode.UnknownMethod, bytes("unknown method `" + method + "`"));
}
