// The one error the client throws: the supervisor's or a plugin's answer,
// or the client's own trouble with the connection.

/**
 * The kinds an error can have. The first eleven come from the supervisor
 * (corral's `ErrorKind`); `connect` and `disconnected` are the client's own.
 */
export type ErrorKind =
  /** The plugin returned an error, or panicked (the message says so). */
  | "plugin"
  /** The plugin has no such method. */
  | "unknown_method"
  /** No plugin of that name. */
  | "unknown_plugin"
  /** The worker died while the call was in flight; the message says how. */
  | "crashed"
  /** No answer within the call's deadline (the supervisor's or the client's). */
  | "timeout"
  /** The plugin is not running now (restarting, stopped). */
  | "unavailable"
  /** A frame broke the protocol (either side), or the protocols differ. */
  | "protocol"
  /** A malformed request: too large, a reserved method, a bad topic. */
  | "bad_request"
  /** This uid may not do this (corral.toml `allowed_uids`, `admin_uids`). */
  | "permission_denied"
  /** Host services: no such key. */
  | "not_found"
  /** Host services: a quota is full. */
  | "limit_exceeded"
  /** The socket could not be reached. */
  | "connect"
  /** The connection ended with the request in flight, or before it was sent. */
  | "disconnected";

/** An error from corral: match on `kind`; `message` says what, for people. */
export class CorralError extends Error {
  /** What went wrong, to match on. A newer supervisor may send kinds this client does not list. */
  readonly kind: ErrorKind | (string & {});

  constructor(kind: ErrorKind | (string & {}), message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CorralError";
    this.kind = kind;
  }

  /** The error an `{"Error": {"kind", "message"}}` reply carries. */
  static fromReply(error: unknown): CorralError {
    if (typeof error === "object" && error !== null) {
      const { kind, message } = error as { kind?: unknown; message?: unknown };
      if (typeof kind === "string" && typeof message === "string") {
        return new CorralError(kind, message);
      }
    }
    return new CorralError("protocol", `a malformed error from corral: ${JSON.stringify(error)}`);
  }
}
