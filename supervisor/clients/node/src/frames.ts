// Frames of corral's host protocol, and the JSON form of bytes, with no
// I/O: a frame is a 4-byte little-endian body length, then the body; in
// JSON, bytes are arrays of numbers 0–255.
//
// Bytes are written and read by hand here because `JSON.stringify` of
// `Array.from(bytes)` and `Uint8Array.from(JSON.parse(…))` take about
// ten times as long for a megabyte (50 ms and 18 ms, against 5 ms each).

/** Length of a frame's header. */
export const HEADER_LEN = 4;

/** The supervisor's default largest frame body (`--max-frame-mb 16`). */
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;

/** A frame over the limit, in either direction. */
export class FrameTooLarge extends Error {
  constructor(
    readonly len: number,
    readonly max: number,
  ) {
    super(`a frame of ${len} bytes is over the limit of ${max} bytes`);
    this.name = "FrameTooLarge";
  }
}

/** A frame with `body`, as one buffer. */
export function encodeFrame(body: Uint8Array, max: number = DEFAULT_MAX_FRAME): Buffer {
  if (body.length > max) {
    throw new FrameTooLarge(body.length, max);
  }
  const frame = Buffer.allocUnsafe(HEADER_LEN + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.set(body, HEADER_LEN);
  return frame;
}

/**
 * Cuts a byte stream into frame bodies, whatever the chunks: a frame split
 * across chunks, or many in one. Checks a frame's length against `max`
 * before it waits for (or allocates) its body.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(readonly max: number = DEFAULT_MAX_FRAME) {}

  /** Takes `chunk`; returns the bodies it completed, in order. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const bodies: Buffer[] = [];
    while (this.buffered >= HEADER_LEN) {
      const len = this.peekLength();
      if (len > this.max) {
        throw new FrameTooLarge(len, this.max);
      }
      if (this.buffered < HEADER_LEN + len) {
        break;
      }
      const frame = this.take(HEADER_LEN + len);
      bodies.push(frame.subarray(HEADER_LEN));
    }
    return bodies;
  }

  /** Bytes received that are not yet a whole frame. */
  get pending(): number {
    return this.buffered;
  }

  private peekLength(): number {
    // A header split across chunks: move its bytes into the first one.
    while (this.chunks[0]!.length < HEADER_LEN) {
      const [first, second] = this.chunks as [Buffer, Buffer];
      const need = HEADER_LEN - first.length;
      const joined = Buffer.concat([first, second.subarray(0, need)]);
      const rest = second.subarray(need);
      this.chunks.splice(0, 2, ...(rest.length > 0 ? [joined, rest] : [joined]));
    }
    return this.chunks[0]!.readUInt32LE(0);
  }

  /** Removes the first `count` bytes (all buffered) and returns them. */
  private take(count: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= count) {
      const taken = first.subarray(0, count);
      if (first.length === count) {
        this.chunks.shift();
      } else {
        this.chunks[0] = first.subarray(count);
      }
      this.buffered -= count;
      return taken;
    }
    const taken = Buffer.allocUnsafe(count);
    let at = 0;
    while (at < count) {
      const chunk = this.chunks[0]!;
      const need = count - at;
      if (chunk.length <= need) {
        taken.set(chunk, at);
        at += chunk.length;
        this.chunks.shift();
      } else {
        taken.set(chunk.subarray(0, need), at);
        this.chunks[0] = chunk.subarray(need);
        at += need;
      }
    }
    this.buffered -= count;
    return taken;
  }
}

// The decimal digits of each byte value, 4 slots apiece, and their count.
const DIGITS = new Uint8Array(256 * 4);
const DIGIT_COUNT = new Uint8Array(256);
for (let value = 0; value < 256; value++) {
  const text = String(value);
  DIGIT_COUNT[value] = text.length;
  for (let i = 0; i < text.length; i++) {
    DIGITS[value * 4 + i] = text.charCodeAt(i);
  }
}

const COMMA = 0x2c;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const ZERO = 0x30;
const NINE = 0x39;

/** Bytes the JSON array of `bytes` takes. */
export function byteArrayLength(bytes: Uint8Array): number {
  let len = 2 + Math.max(bytes.length - 1, 0);
  for (let i = 0; i < bytes.length; i++) {
    len += DIGIT_COUNT[bytes[i]!]!;
  }
  return len;
}

/** Writes `bytes` as a JSON array of numbers into `out` at `at`; returns where it ended. */
export function writeByteArray(bytes: Uint8Array, out: Uint8Array, at: number): number {
  let p = at;
  out[p++] = OPEN;
  for (let i = 0; i < bytes.length; i++) {
    if (i > 0) {
      out[p++] = COMMA;
    }
    const value = bytes[i]!;
    const digits = value * 4;
    out[p++] = DIGITS[digits]!;
    if (value >= 10) {
      out[p++] = DIGITS[digits + 1]!;
      if (value >= 100) {
        out[p++] = DIGITS[digits + 2]!;
      }
    }
  }
  out[p++] = CLOSE;
  return p;
}

/**
 * A frame whose body is JSON text with byte arrays spliced in, built in
 * one buffer: `parts` alternate text and bytes, so `["{\"input\":", bytes,
 * "}"]` is the body `{"input":[1,2,3]}`.
 */
export function jsonFrame(parts: ReadonlyArray<string | Uint8Array>, max: number = DEFAULT_MAX_FRAME): Buffer {
  const encoded = parts.map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : part));
  let len = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    len += typeof part === "string" ? encoded[i]!.length : byteArrayLength(part);
  }
  if (len > max) {
    throw new FrameTooLarge(len, max);
  }
  const frame = Buffer.allocUnsafe(HEADER_LEN + len);
  frame.writeUInt32LE(len, 0);
  let at = HEADER_LEN;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (typeof part === "string") {
      frame.set(encoded[i]!, at);
      at += encoded[i]!.length;
    } else {
      at = writeByteArray(part, frame, at);
    }
  }
  return frame;
}

/**
 * Reads the JSON array of byte values that starts at `text[at]` (`[`):
 * returns the bytes and the index just past `]`, or `undefined` when it is
 * not a plain array of integers 0–255 without spaces (then parse it with
 * `JSON.parse`).
 */
export function readByteArray(text: Uint8Array, at: number): { bytes: Uint8Array; end: number } | undefined {
  if (text[at] !== OPEN) {
    return undefined;
  }
  let p = at + 1;
  if (text[p] === CLOSE) {
    return { bytes: new Uint8Array(0), end: p + 1 };
  }
  // Each value takes at least 2 characters with its separator.
  const out = new Uint8Array(Math.ceil((text.length - at) / 2));
  let count = 0;
  for (;;) {
    let value = 0;
    let digits = 0;
    let c = text[p];
    while (c !== undefined && c >= ZERO && c <= NINE) {
      value = value * 10 + (c - ZERO);
      digits++;
      c = text[++p];
    }
    if (digits === 0 || digits > 3 || value > 255 || (digits > 1 && text[p - digits] === ZERO)) {
      return undefined;
    }
    out[count++] = value;
    if (c === COMMA) {
      p++;
    } else if (c === CLOSE) {
      return { bytes: out.slice(0, count), end: p + 1 };
    } else {
      return undefined;
    }
  }
}

/** A JSON value that should be bytes, as bytes; `undefined` when it is not an array of integers 0–255. */
export function bytesOf(value: unknown): Uint8Array | undefined {
  if (!Array.isArray(value)) {
    return undefined;
  }
  const bytes = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const byte: unknown = value[i];
    if (typeof byte !== "number" || !Number.isInteger(byte) || byte < 0 || byte > 255) {
      return undefined;
    }
    bytes[i] = byte;
  }
  return bytes;
}
