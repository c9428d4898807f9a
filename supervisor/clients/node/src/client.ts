// The client: one connection to a corral supervisor speaking the JSON
// form of the host protocol, with many requests in flight, matched by id.

import net from "node:net";
import os from "node:os";
import path from "node:path";
import { CorralError } from "./errors.js";
import {
  DEFAULT_MAX_FRAME,
  FrameDecoder,
  FrameTooLarge,
  bytesOf,
  encodeFrame,
  jsonFrame,
  readByteArray,
} from "./frames.js";
import { ReplyStream } from "./stream.js";
import type { Action, CorralEvent, Fault, Message, PluginDetails, PluginInfo } from "./types.js";

/** The host protocol version this client speaks (`wire::PROTOCOL_VERSION`). */
export const PROTOCOL_VERSION = 10;

/** A call's deadline unless told otherwise, as the Rust clients have it. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** How long past a request's deadline the client waits for the supervisor's own timeout answer. */
const TIMEOUT_SLACK_MS = 1_000;

/** How long the supervisor has to answer the hello. */
const HELLO_TIMEOUT_MS = 10_000;

/** Longest delay `setTimeout` takes. */
const MAX_TIMER_MS = 0x7fff_ffff;

/** Largest `timeout_ms` the protocol carries (a u32). */
const MAX_TIMEOUT_MS = 0xffff_ffff;

/** How to connect. */
export interface ConnectOptions {
  /** The supervisor's socket; default: {@link defaultSocket}. */
  socket?: string;
  /** This app's name, for the supervisor's logs. */
  client?: string;
  /** Deadline of calls and other requests, in ms (default 30 s); 0: the plugin's own deadline, no client timer. */
  timeoutMs?: number;
  /** Largest frame body either way (default 16 MiB, the supervisor's `--max-frame-mb`). */
  maxFrameBytes?: number;
}

/** Per-call options. */
export interface CallOptions {
  /**
   * The call's deadline in ms: the supervisor answers `timeout` at it (and
   * kills the worker only past the plugin's own `call_timeout_ms`); the
   * client gives up 1 s after it. 0: the plugin's own deadline, no client
   * timer.
   */
  timeoutMs?: number;
}

/** Bytes to send: a string stands for its UTF-8 bytes. */
export type Bytes = Uint8Array | string;

/**
 * The socket corral serves on by default: `$CORRAL_SOCKET`; else
 * `/run/corral/corral.sock` for root, `$XDG_RUNTIME_DIR/corral/corral.sock`
 * for anyone else (as `corral serve` picks it); `undefined` when none
 * applies.
 */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CORRAL_SOCKET) {
    return env.CORRAL_SOCKET;
  }
  if (process.getuid?.() === 0) {
    return "/run/corral/corral.sock";
  }
  return env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, "corral/corral.sock") : undefined;
}

/** Where the replies to a request in flight go. */
interface Pending {
  /** A reply with this request's id. */
  reply(reply: unknown): void;
  /** The connection is gone; `byUser` when {@link Corral.close} ended it. */
  fail(error: CorralError, byUser: boolean): void;
}

/**
 * One connection to a corral supervisor. Share it: every method may be
 * called while others wait, and replies are matched to requests by id.
 */
export class Corral {
  /** The supervisor's version, from its hello. */
  get server(): string {
    return this.serverVersion;
  }
  /** Resolves once the connection is gone, for whatever reason. */
  readonly closed: Promise<void>;

  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private serverVersion = "";
  private failure: CorralError | undefined;
  private readonly decoder: FrameDecoder;
  private greeted: ((error?: CorralError) => void) | undefined;
  private markClosed!: () => void;

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
    private readonly maxFrame: number,
  ) {
    this.decoder = new FrameDecoder(maxFrame);
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** Connects to the supervisor and shakes hands. */
  static async connect(options: ConnectOptions = {}): Promise<Corral> {
    const where = options.socket ?? defaultSocket();
    if (!where) {
      throw new CorralError("connect", "no socket path: pass `socket`, or set CORRAL_SOCKET or XDG_RUNTIME_DIR");
    }
    const socket = await open(where);
    const corral = new Corral(
      socket,
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      options.maxFrameBytes ?? DEFAULT_MAX_FRAME,
    );
    await corral.greet(options.client ?? "corral-node");
    return corral;
  }

  /** Calls `method` of `plugin` with `input`; resolves to the reply's bytes. */
  async call(plugin: string, method: string, input: Bytes = "", options: CallOptions = {}): Promise<Uint8Array> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const timeout = timeoutMs > 0 ? Math.min(Math.max(Math.ceil(timeoutMs), 1), MAX_TIMEOUT_MS) : 0;
    const head = `"Call":{"plugin":${text(plugin)},"method":${text(method)},"timeout_ms":${timeout},"input":`;
    const reply = await this.request(bytesBody(head, input, "}"), timeout > 0 ? timeout + TIMEOUT_SLACK_MS : 0);
    return expect(reply, "Called", (called) => (called instanceof Uint8Array ? called : bytesOf(called)));
  }

  /** {@link call}, with the reply read as UTF-8 text. */
  async callText(plugin: string, method: string, input: Bytes = "", options?: CallOptions): Promise<string> {
    const reply = await this.call(plugin, method, input, options);
    return Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).toString("utf8");
  }

  /** {@link call} with `value` as JSON text, the reply parsed as JSON. */
  async callJson<T = unknown>(plugin: string, method: string, value?: unknown, options?: CallOptions): Promise<T> {
    const input = value === undefined ? "" : JSON.stringify(value);
    return JSON.parse(await this.callText(plugin, method, input, options)) as T;
  }

  /** Every plugin's status, as `corral ps --json` shows it. */
  async list(): Promise<PluginInfo[]> {
    const reply = await this.request(jsonBody("List"), this.wait());
    return expect(reply, "Plugins", (plugins) => (Array.isArray(plugins) ? (plugins as PluginInfo[]) : undefined));
  }

  /** The plugins that provide extension point `point` (`[plugin] provides`), in name order. */
  async providing(point: string): Promise<PluginInfo[]> {
    return (await this.list()).filter((plugin) => plugin.provides.includes(point));
  }

  /** Everything about one plugin, as `corral inspect --json` shows it. */
  async inspect(plugin: string): Promise<PluginDetails> {
    const reply = await this.request(jsonBody({ Inspect: { plugin } }), this.wait());
    return expect(reply, "Inspected", (details) => (isObject(details) ? (details as PluginDetails) : undefined));
  }

  /** Publishes `payload` on `topic`; resolves to how many subscribers took it. */
  async publish(topic: string, payload: Bytes = ""): Promise<number> {
    const head = `"Publish":{"topic":${text(topic)},"payload":`;
    const reply = await this.request(bytesBody(head, payload, "}"), this.wait());
    return expect(reply, "Published", (count) => (typeof count === "number" ? count : undefined));
  }

  /**
   * Subscribes to `topics` (exact names, or prefixes ending in `*`);
   * resolves once the subscription is in place, to the publications as
   * they come. `close()` it (or break out of `for await`) to stop.
   */
  async subscribe(topics: string | string[]): Promise<ReplyStream<Message>> {
    const list = typeof topics === "string" ? [topics] : topics;
    let confirm!: (error?: CorralError) => void;
    const confirmed = new Promise<void>((resolve, reject) => {
      confirm = (error) => (error ? reject(error) : resolve());
    });
    let subscribed = false;
    const stream = this.stream<Message>(
      jsonBody({ Subscribe: { topics: list } }),
      (reply, push) => {
        if (subscribed) {
          push(expect(reply, "Message", message));
        } else if (reply === "Subscribed") {
          subscribed = true;
          confirm();
        } else {
          throw unexpected(reply, "Subscribed");
        }
        return false;
      },
      // Before the confirmation: the subscription failed (settled promises ignore this).
      (error) => confirm(error ?? new CorralError("disconnected", "the connection was closed by this client")),
    );
    await confirmed;
    return stream;
  }

  /** The supervisor's events numbered above `after` (0: all it keeps), oldest first. */
  async events(options: { after?: number } = {}): Promise<CorralEvent[]> {
    const reply = await this.request(jsonBody({ Events: { after: options.after ?? 0 } }), this.wait());
    return expect(reply, "Events", events);
  }

  /** The events numbered above `after` (0: all it keeps), then each new one as it happens. */
  followEvents(options: { after?: number } = {}): ReplyStream<CorralEvent> {
    return this.stream<CorralEvent>(jsonBody({ FollowEvents: { after: options.after ?? 0 } }), (reply, push) => {
      for (const event of expect(reply, "Events", events)) {
        push(event);
      }
      return false;
    });
  }

  /**
   * `plugin`'s log lines (`TIME pid=PID TEXT`) written since `sinceUnixMs`
   * (0: all kept), oldest first; the stream ends after them unless
   * `follow`, which keeps sending new lines. Admin uids only.
   */
  logs(plugin: string, options: { sinceUnixMs?: number; follow?: boolean } = {}): ReplyStream<string> {
    const body = { Logs: { plugin, since_unix_ms: options.sinceUnixMs ?? 0, follow: options.follow ?? false } };
    return this.stream<string>(jsonBody(body), (reply, push) => {
      const chunk = expect(reply, "Logs", (logs) =>
        isObject(logs) && Array.isArray(logs.lines) && typeof logs.done === "boolean"
          ? { lines: logs.lines as string[], done: logs.done }
          : undefined,
      );
      for (const line of chunk.lines) {
        push(line);
      }
      return chunk.done;
    });
  }

  /**
   * Runs an admin action on `plugin`; resolves to its status once the
   * action has settled (a start waits for ready or failure). Admin uids only.
   */
  async control(plugin: string, action: Action, options: { timeoutMs?: number } = {}): Promise<PluginInfo> {
    const reply = await this.request(jsonBody({ Control: { plugin, action } }), this.wait(options.timeoutMs));
    return expect(reply, "Controlled", info);
  }

  /** Sends `signal` (a number, or a name such as `"SIGTERM"`) to `plugin`'s worker process group. Admin uids only. */
  async kill(plugin: string, signal: number | NodeJS.Signals = "SIGTERM"): Promise<PluginInfo> {
    const number = typeof signal === "number" ? signal : os.constants.signals[signal];
    if (number === undefined) {
      throw new CorralError("bad_request", `${String(signal)} is not a signal`);
    }
    const reply = await this.request(jsonBody({ Kill: { plugin, signal: number } }), this.wait());
    return expect(reply, "Controlled", info);
  }

  /** Injects `fault` into `plugin`'s worker: for tests, against `corral serve --faults`. Admin uids only. */
  async inject(plugin: string, fault: Fault): Promise<PluginInfo> {
    const reply = await this.request(jsonBody({ Fault: { plugin, fault } }), this.wait());
    return expect(reply, "Controlled", info);
  }

  /**
   * Closes the connection: requests in flight fail with kind
   * `disconnected`, streams end.
   */
  close(): void {
    this.fail(new CorralError("disconnected", "the connection was closed by this client"), true);
  }

  /** A request's wait: `timeoutMs`, else the connection's, plus the slack; 0: no timer. */
  private wait(timeoutMs: number = this.timeoutMs): number {
    return timeoutMs > 0 ? timeoutMs + TIMEOUT_SLACK_MS : 0;
  }

  /** Sends a request with one answer and waits up to `waitMs` (0: forever) for it. */
  private request(body: (id: number, max: number) => Buffer, waitMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const id = this.send(body, {
        reply: (reply) => {
          clearTimeout(timer);
          if (id !== undefined) {
            this.pending.delete(id);
          }
          if (isObject(reply) && "Error" in reply) {
            reject(CorralError.fromReply(reply.Error));
          } else {
            resolve(reply);
          }
        },
        fail: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      // Past setTimeout's limit (24.8 days), no timer rather than 1 ms.
      if (id !== undefined && waitMs > 0 && waitMs <= MAX_TIMER_MS && this.pending.has(id)) {
        const sent = id;
        timer = setTimeout(() => {
          this.pending.delete(sent);
          reject(new CorralError("timeout", `no answer from corral within ${waitMs} ms`));
        }, waitMs);
      }
    });
  }

  /**
   * Sends a streaming request. `read` takes each reply, pushes its items
   * and says whether it was the last; what it throws ends the stream.
   */
  private stream<T>(
    body: (id: number, max: number) => Buffer,
    read: (reply: unknown, push: (item: T) => void) => boolean,
    onEnd?: (error?: CorralError) => void,
  ): ReplyStream<T> {
    let id: number | undefined;
    const stream = new ReplyStream<T>(() => {
      if (id !== undefined) {
        this.pending.delete(id);
      }
    });
    const end = (error?: CorralError) => {
      if (id !== undefined) {
        this.pending.delete(id);
      }
      stream.end(error);
      onEnd?.(error);
    };
    id = this.send(body, {
      reply: (reply) => {
        if (isObject(reply) && "Error" in reply) {
          return end(CorralError.fromReply(reply.Error));
        }
        try {
          if (read(reply, (item) => stream.push(item))) {
            end();
          }
        } catch (error) {
          end(error instanceof CorralError ? error : new CorralError("protocol", String(error)));
        }
      },
      fail: (error, byUser) => end(byUser ? undefined : error),
    });
    return stream;
  }

  /**
   * Registers `pending` under a fresh id and sends the request; returns
   * the id, or `undefined` when it failed at once (`pending.fail` ran).
   */
  private send(body: (id: number, max: number) => Buffer, pending: Pending): number | undefined {
    if (this.failure) {
      pending.fail(this.failure, false);
      return undefined;
    }
    const id = this.nextId++;
    let frame: Buffer;
    try {
      frame = body(id, this.maxFrame);
    } catch (error) {
      if (error instanceof FrameTooLarge) {
        pending.fail(
          new CorralError("bad_request", `the request is too large: ${error.message} (the supervisor's --max-frame-mb)`),
          false,
        );
        return undefined;
      }
      throw error;
    }
    this.pending.set(id, pending);
    this.socket.write(frame);
    return id;
  }

  private greet(client: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new CorralError("timeout", `no hello from corral within ${HELLO_TIMEOUT_MS} ms`), false),
        HELLO_TIMEOUT_MS,
      );
      this.greeted = (error) => {
        clearTimeout(timer);
        this.greeted = undefined;
        if (error) {
          reject(error);
        } else {
          resolve();
        }
      };
      this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
      this.socket.on("error", (error) =>
        this.fail(new CorralError("disconnected", `connection to corral failed: ${error.message}`, { cause: error }), false),
      );
      this.socket.on("close", () => {
        this.fail(new CorralError("disconnected", "corral closed the connection"), false);
        this.markClosed();
      });
      this.socket.write(encodeFrame(Buffer.from(JSON.stringify({ protocol: PROTOCOL_VERSION, client: wellFormed(client) }))));
    });
  }

  private receive(chunk: Buffer): void {
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      return this.fail(new CorralError("protocol", `bad frame from corral: ${why}`), false);
    }
    for (const body of bodies) {
      if (this.failure) {
        return;
      }
      this.dispatch(body);
    }
  }

  private dispatch(body: Buffer): void {
    let response: { id: number; reply: unknown } | undefined;
    let parsed: unknown;
    try {
      response = readCalled(body);
      if (!response) {
        parsed = JSON.parse(body.toString("utf8"));
      }
    } catch (error) {
      return this.fail(new CorralError("protocol", `undecodable frame from corral: ${String(error)}`), false);
    }
    if (this.greeted) {
      return this.hello(parsed);
    }
    if (!response) {
      if (!isObject(parsed) || typeof parsed.id !== "number" || !("reply" in parsed)) {
        return this.fail(new CorralError("protocol", "a frame from corral that is not a response"), false);
      }
      response = { id: parsed.id, reply: parsed.reply };
    }
    const { id, reply } = response;
    if (id === 0) {
      const error =
        isObject(reply) && "Error" in reply
          ? CorralError.fromReply(reply.Error)
          : new CorralError("protocol", "a response with id 0 that is not an error");
      return this.fail(error, false);
    }
    // Unknown ids: a request that timed out, or a closed stream.
    this.pending.get(id)?.reply(reply);
  }

  private hello(hello: unknown): void {
    const greeted = this.greeted!;
    if (isObject(hello) && isObject(hello.reply) && "Error" in hello.reply) {
      const error = CorralError.fromReply(hello.reply.Error);
      this.fail(error, false);
      return greeted(error);
    }
    if (!isObject(hello) || typeof hello.protocol !== "number") {
      const error = new CorralError("protocol", `bad hello from corral: ${JSON.stringify(hello)}`);
      this.fail(error, false);
      return greeted(error);
    }
    this.serverVersion = typeof hello.server === "string" ? hello.server : "";
    if (hello.protocol !== PROTOCOL_VERSION) {
      const error = new CorralError(
        "protocol",
        `corral ${this.server} speaks protocol ${hello.protocol}, this client speaks ${PROTOCOL_VERSION}`,
      );
      this.fail(error, false);
      return greeted(error);
    }
    greeted();
  }

  /** Ends the connection: everything in flight fails with `error`. */
  private fail(error: CorralError, byUser: boolean): void {
    if (this.failure) {
      return;
    }
    this.failure = error;
    this.greeted?.(error);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const one of pending) {
      one.fail(error, byUser);
    }
    this.socket.destroy();
  }
}

/** Connects a Unix socket at `where`. */
function open(where: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: where });
    const failed = (error: NodeJS.ErrnoException) => {
      const hint = error.code === "ENOENT" ? " (start one with `corral serve`)" : "";
      reject(new CorralError("connect", `cannot connect to corral at ${where}: ${error.message}${hint}`, { cause: error }));
    };
    socket.once("error", failed);
    socket.once("connect", () => {
      socket.off("error", failed);
      resolve(socket);
    });
  });
}

/** A request body `{"id": N, "body": BODY}` from plain data. */
function jsonBody(body: unknown): (id: number, max: number) => Buffer {
  return (id, max) =>
    encodeFrame(Buffer.from(JSON.stringify({ id, body }, (_, value: unknown) => (typeof value === "string" ? wellFormed(value) : value))), max);
}

/**
 * A request body `{"id": N, "body": {HEAD BYTES TAIL}}` where `bytes` is
 * a byte array or a JSON string (which the supervisor takes as its UTF-8).
 */
function bytesBody(head: string, bytes: Bytes, tail: string): (id: number, max: number) => Buffer {
  return (id, max) => {
    const open = `{"id":${id},"body":{${head}`;
    const close = `${tail}}}`;
    if (typeof bytes === "string") {
      return jsonFrame([open + text(bytes) + close], max);
    }
    return jsonFrame([open, bytes, close], max);
  };
}

/** `value` as a JSON string. */
function text(value: string): string {
  return JSON.stringify(wellFormed(value));
}

/**
 * `value` with lone surrogates replaced by U+FFFD, as `TextEncoder` does:
 * JSON would carry them as `\ud800`, which the supervisor refuses in a
 * name (closing the connection) and takes as WTF-8 in bytes.
 */
function wellFormed(value: string): string {
  return /\p{Cs}/u.test(value) ? Buffer.from(value, "utf8").toString("utf8") : value;
}

const CALLED_HEAD = Buffer.from('{"id":');
const CALLED_MIDDLE = Buffer.from(',"reply":{"Called":');

/**
 * A call's reply read without `JSON.parse` when the supervisor sent it as
 * it does (`{"id":N,"reply":{"Called":[…]}}`, no spaces); `undefined` for
 * anything else.
 */
function readCalled(body: Buffer): { id: number; reply: { Called: Uint8Array } } | undefined {
  if (body.length < CALLED_HEAD.length + CALLED_MIDDLE.length || body.compare(CALLED_HEAD, 0, CALLED_HEAD.length, 0, CALLED_HEAD.length) !== 0) {
    return undefined;
  }
  let at = CALLED_HEAD.length;
  let id = 0;
  const start = at;
  while (at < body.length && body[at]! >= 0x30 && body[at]! <= 0x39 && at - start < 16) {
    id = id * 10 + (body[at]! - 0x30);
    at++;
  }
  if (at === start || body.compare(CALLED_MIDDLE, 0, CALLED_MIDDLE.length, at, at + CALLED_MIDDLE.length) !== 0) {
    return undefined;
  }
  const array = readByteArray(body, at + CALLED_MIDDLE.length);
  if (!array || array.end + 2 !== body.length || body[array.end] !== 0x7d || body[array.end + 1] !== 0x7d) {
    return undefined;
  }
  return { id, reply: { Called: array.bytes } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The value of a reply `{variant: VALUE}`, read by `read`; a protocol error for anything else. */
function expect<T>(reply: unknown, variant: string, read: (value: unknown) => T | undefined): T {
  if (isObject(reply) && variant in reply) {
    const value = read(reply[variant]);
    if (value !== undefined) {
      return value;
    }
  }
  throw unexpected(reply, variant);
}

function unexpected(reply: unknown, expected?: string): CorralError {
  const what = isObject(reply) ? Object.keys(reply)[0] : JSON.stringify(reply);
  const wanted = expected ? ` (expected ${expected})` : "";
  return new CorralError("protocol", `unexpected ${what ?? "reply"} from corral${wanted}`);
}

function info(value: unknown): PluginInfo | undefined {
  return isObject(value) ? (value as unknown as PluginInfo) : undefined;
}

function events(value: unknown): CorralEvent[] | undefined {
  return Array.isArray(value) ? (value as CorralEvent[]) : undefined;
}

function message(value: unknown): Message | undefined {
  if (!isObject(value) || typeof value.topic !== "string" || typeof value.from !== "string") {
    return undefined;
  }
  const payload = bytesOf(value.payload);
  return payload && { topic: value.topic, from: value.from, payload };
}
