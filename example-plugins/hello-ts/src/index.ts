// `hello-ts`: the hello example plugin in TypeScript, the twin of the Rust
// `hello` (example-plugins/hello): the same replies and the same errors.
//
// | method  | input                         | reply                    |
// |---------|-------------------------------|--------------------------|
// | `echo`  | any bytes                     | the same bytes           |
// | `upper` | UTF-8 text                    | the text in upper case   |
// | `sum`   | integers separated by spaces  | their sum, as text       |
// | `sleep` | a duration (`250`, `2s`)      | `slept N ms`             |
// | `spin`  | ignored                       | never: loops until the deadline stops it |
//
// `sleep` reads its duration with the `ms` npm package, so it also takes
// `2s` or `1m` where the Rust plugin takes milliseconds only; the engine
// has no timers, so it waits by looping on the clock.

import { log, nowMs, text } from "corral";
import ms from "ms";

export function init(): void {
  log.debug("hello ready");
}

export function echo(input: Uint8Array): Uint8Array {
  return input;
}

export function upper(input: Uint8Array): string {
  return utf8(input).toUpperCase();
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export function sum(input: Uint8Array): string {
  let total = 0n;
  for (const word of utf8(input).split(/\s+/).filter((word) => word !== "")) {
    if (!/^[+-]?\d+$/.test(word)) throw new Error(`sum: \`${word}\` is not an integer`);
    const n = BigInt(word);
    if (n < I64_MIN || n > I64_MAX) throw new Error(`sum: \`${word}\` is not an integer`);
    total += n;
    if (total < I64_MIN || total > I64_MAX) throw new Error("sum: overflow");
  }
  return total.toString();
}

export function sleep(input: Uint8Array): string {
  const millis = ms(utf8(input).trim() as ms.StringValue) as number | undefined;
  if (millis === undefined || !Number.isFinite(millis) || millis < 0) {
    throw new Error("sleep: expected milliseconds as text");
  }
  const until = nowMs() + millis;
  while (nowMs() < until) {
    // no timers in the engine: wait on the clock
  }
  return `slept ${millis} ms`;
}

export function spin(): never {
  for (;;) {
    // a runaway loop: the call's deadline stops it
  }
}

/** The input as UTF-8 text, refused as the Rust plugin refuses it. */
function utf8(input: Uint8Array): string {
  const decoded = text(input);
  if (!sameBytes(new TextEncoder().encode(decoded), input)) throw new Error("input is not UTF-8");
  return decoded;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}
