// The plugin's handlers, registered by its top-level code, and the
// dispatch of calls and events to them.

import { Reply, ok, unknownMethod } from "./reply";

/** A method: its input in, its reply (or error) out. */
export type Handler = (input: Uint8Array) => Reply;

/** What handles every method no `register` names. */
export type FallbackHandler = (method: string, input: Uint8Array) => Reply;

/** A publication on a subscribed topic (`[events] subscribe`). */
export type EventHandler = (topic: string, payload: Uint8Array) => Reply;

/** Runs once before the first call; `fail(message)` stops the start. */
export type InitHook = () => Reply;

/** Whether the plugin is healthy (`[health]` checks). */
export type HealthHook = () => bool;

export type ShutdownHook = () => void;

/** The method name prefix of publications. */
export const EVENT_PREFIX = "@event:";

const methods = new Map<string, Handler>();
let fallback: FallbackHandler | null = null;
let eventHandler: EventHandler | null = null;
let initHook: InitHook | null = null;
let healthHook: HealthHook | null = null;
let shutdownHook: ShutdownHook | null = null;

/** Serves `method` with `handler` (a later registration replaces an
 *  earlier one). Call it from the module's top level. */
export function register(method: string, handler: Handler): void {
  methods.set(method, handler);
}

/** Serves every method not registered (else they fail with
 *  `unknown method `NAME``). */
export function onCall(handler: FallbackHandler): void {
  fallback = handler;
}

/** Receives publications on the topics the manifest subscribes to. Its
 *  reply is dropped; an error is logged by the supervisor. */
export function onEvent(handler: EventHandler): void {
  eventHandler = handler;
}

/** Runs when the worker starts the plugin, before any call; host services
 *  and settings work here. */
export function onInit(hook: InitHook): void {
  initHook = hook;
}

/** Answers the supervisor's health checks (healthy when not set). */
export function onHealth(hook: HealthHook): void {
  healthHook = hook;
}

/** Runs when the instance is about to go. */
export function onShutdown(hook: ShutdownHook): void {
  shutdownHook = hook;
}

/** The method names registered, in registration order. */
export function registeredMethods(): string[] {
  return methods.keys();
}

// For the ABI (abi.ts).

export function runInit(): Reply {
  let hook = initHook;
  return hook !== null ? hook() : ok();
}

export function runHealth(): bool {
  let hook = healthHook;
  return hook !== null ? hook() : true;
}

export function runShutdown(): void {
  let hook = shutdownHook;
  if (hook !== null) hook();
}

/** Runs one call of `method` (or one event, `@event:TOPIC`). */
export function dispatch(method: string, input: Uint8Array): Reply {
  if (method.startsWith(EVENT_PREFIX)) {
    let handler = eventHandler;
    if (handler === null) return ok();
    let reply = handler(method.substring(EVENT_PREFIX.length), input);
    // As a Rust plugin: an event's reply is empty.
    return reply.ok ? ok() : reply;
  }
  if (methods.has(method)) {
    return methods.get(method)(input);
  }
  let other = fallback;
  if (other !== null) return other(method, input);
  return unknownMethod(method);
}
