// UTF-8 helpers: strict checking (as Rust's `std::str::from_utf8`), lossy
// decoding (as `String::from_utf8_lossy`), and encoding.

/** The UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD). */
export function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE));
}

/** Whether `data` is valid UTF-8. */
export function isUtf8(data: Uint8Array): bool {
  return invalidAt(data.dataStart, data.byteLength, 0) < 0;
}

/** `data` as text when it is valid UTF-8, else `null` (as Rust's
 *  `std::str::from_utf8(...).ok()`). */
export function utf8(data: Uint8Array): string | null {
  if (!isUtf8(data)) return null;
  return String.UTF8.decodeUnsafe(data.dataStart, <usize>data.byteLength);
}

/** `data` as text, each invalid sequence replaced by U+FFFD (as Rust's
 *  `String::from_utf8_lossy`). */
export function text(data: Uint8Array): string {
  return decodeLossy(data.dataStart, data.byteLength);
}

/** Decodes `len` bytes at `ptr`, replacing invalid sequences. */
export function decodeLossy(ptr: usize, len: i32): string {
  let at = invalidAt(ptr, len, 0);
  if (at < 0) return String.UTF8.decodeUnsafe(ptr, <usize>len);
  let out = "";
  let start = 0;
  while (at >= 0) {
    out += String.UTF8.decodeUnsafe(ptr + <usize>start, <usize>(at - start));
    out += "\uFFFD";
    start = at + invalidLength(ptr, len, at);
    at = invalidAt(ptr, len, start);
  }
  return out + String.UTF8.decodeUnsafe(ptr + <usize>start, <usize>(len - start));
}

/** Length of the valid sequence starting at `i` (1 to 4), or 0 when the
 *  bytes there are not a valid sequence. */
// @ts-ignore: decorator
@inline
function sequenceAt(ptr: usize, len: i32, i: i32): i32 {
  let b0 = <u32>load<u8>(ptr + <usize>i);
  if (b0 < 0x80) return 1;
  let need: i32;
  let lo: u32 = 0x80;
  let hi: u32 = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0; // no overlong forms
    if (b0 == 0xed) hi = 0x9f; // no surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90; // no overlong forms
    if (b0 == 0xf4) hi = 0x8f; // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (i + need >= len) return 0; // truncated
  let b1 = <u32>load<u8>(ptr + <usize>i + 1);
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k <= need; k++) {
    let b = <u32>load<u8>(ptr + <usize>(i + k));
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return need + 1;
}

/** Index of the first invalid byte at or after `from`, or -1. */
function invalidAt(ptr: usize, len: i32, from: i32): i32 {
  let i = from;
  while (i < len) {
    let n = sequenceAt(ptr, len, i);
    if (n == 0) return i;
    i += n;
  }
  return -1;
}

/** How many bytes at `at` (where `invalidAt` stopped) make up one
 *  replacement: the maximal prefix of a valid sequence, at least 1 (as
 *  Rust's `Utf8Error::error_len`, and the WHATWG decoder). */
function invalidLength(ptr: usize, len: i32, at: i32): i32 {
  let b0 = <u32>load<u8>(ptr + <usize>at);
  let need: i32;
  let lo: u32 = 0x80;
  let hi: u32 = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 1;
  }
  let n = 1;
  for (let k = 1; k <= need; k++) {
    if (at + k >= len) break;
    let b = <u32>load<u8>(ptr + <usize>(at + k));
    let okLo = k == 1 ? lo : 0x80;
    let okHi = k == 1 ? hi : 0xbf;
    if (b < okLo || b > okHi) break;
    n++;
  }
  return n;
}

/** `a` followed by `b`. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  let out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
