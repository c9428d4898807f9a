// `@NAME@`: a corral plugin in TypeScript, run by corral's JavaScript
// engine in a sandboxed worker. Every exported function is a method
// (`corral call @NAME@ greet world`); `init`, `on_event` and `health` are
// what corral calls itself. npm packages are bundled in by `npm run build`.
//
// | method  | input  | reply             |
// |---------|--------|-------------------|
// | `greet` | a name | `GREETING, NAME!` |
//
// `GREETING` is the `greeting` setting: `[config]` in plugin.toml, which an
// admin may override in corral.toml (`[plugins.@NAME@.config]`).

import { config, log, text } from "corral";

let greeting = "Hello";
let heard = 0;

/** Runs once in the sandboxed worker, before the first call. */
export function init(): void {
  greeting = config<{ greeting?: string }>().greeting ?? "Hello";
  log.info("@NAME@ ready");
}

export function greet(input: Uint8Array): string {
  return `${greeting}, ${text(input)}!`;
}

/** A publication on a topic `[events] subscribe` lists. */
export function on_event(topic: string, payload: Uint8Array): void {
  heard += 1;
  log.debug(`${topic}: ${payload.length} bytes (${heard} so far)`);
}
