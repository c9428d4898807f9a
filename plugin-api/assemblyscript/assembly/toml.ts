// A small TOML reader for the plugin's settings (`config()`): every value
// by its dotted path (`greeting`, `paper.size`, `sizes.0`).
//
// It reads what corral hands a plugin (the `[config]` table, written by
// corral with the admin's overrides merged in) and most hand-written
// TOML: tables, dotted and quoted keys, basic, literal and multi-line
// strings with their escapes, integers (decimal, 0x, 0o, 0b, with `_`),
// floats (with inf and nan), booleans, dates (kept as their text), arrays
// and inline tables (their items by index or key, e.g. `sizes.0`).
// Arrays of tables (`[[x]]`) give `x.0.key`, `x.1.key`, ….

/** The type of a setting. */
export enum ValueKind {
  String = 0,
  Integer = 1,
  Float = 2,
  Boolean = 3,
  DateTime = 4,
  Array = 5,
  Table = 6,
}

/** One setting. */
export class Value {
  kind: ValueKind = ValueKind.Table;
  /** A string's value, a date's text. */
  str: string = "";
  int: i64 = 0;
  float: f64 = 0;
  bool: bool = false;
  /** An array's length. */
  length: i32 = 0;
}

/** Settings read from TOML text. */
export class Settings {
  /** Every value by its dotted path. */
  values: Map<string, Value> = new Map<string, Value>();
  /** Why the text could not be read (values before the problem are kept). */
  error: string | null = null;

  has(path: string): bool {
    return this.values.has(path);
  }

  /** The value at `path`, or null. */
  get(path: string): Value | null {
    return this.values.has(path) ? this.values.get(path) : null;
  }

  /** The string at `path`, or null when absent or not a string. */
  string(path: string): string | null {
    let v = this.get(path);
    return v !== null && v.kind == ValueKind.String ? v.str : null;
  }

  /** The string at `path`, `fallback` when absent or not a string. */
  getString(path: string, fallback: string): string {
    let s = this.string(path);
    return s !== null ? s : fallback;
  }

  /** The integer at `path`, `fallback` when absent or not an integer. */
  getInt(path: string, fallback: i64): i64 {
    let v = this.get(path);
    return v !== null && v.kind == ValueKind.Integer ? v.int : fallback;
  }

  /** The number at `path` (a float, or an integer), else `fallback`. */
  getFloat(path: string, fallback: f64): f64 {
    let v = this.get(path);
    if (v === null) return fallback;
    if (v.kind == ValueKind.Float) return v.float;
    if (v.kind == ValueKind.Integer) return <f64>v.int;
    return fallback;
  }

  /** The boolean at `path`, `fallback` when absent or not a boolean. */
  getBool(path: string, fallback: bool): bool {
    let v = this.get(path);
    return v !== null && v.kind == ValueKind.Boolean ? v.bool : fallback;
  }

  /** Every path, in the order read. */
  paths(): string[] {
    return this.values.keys();
  }
}

/** Reads TOML `text`. */
export function parseToml(text: string): Settings {
  let parser = new Parser(text);
  parser.document();
  return parser.settings;
}

function isBare(c: i32): bool {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c == 0x5f || c == 0x2d;
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function join(prefix: string, key: string): string {
  return prefix.length > 0 ? prefix + "." + key : key;
}

class Parser {
  settings: Settings = new Settings();
  pos: i32 = 0;
  line: i32 = 1;
  failed: bool = false;
  /** How many `[[x]]` tables each array-of-tables path has. */
  tableArrays: Map<string, i32> = new Map<string, i32>();

  constructor(public src: string) {}

  peek(offset: i32 = 0): i32 {
    let i = this.pos + offset;
    return i < this.src.length ? <i32>this.src.charCodeAt(i) : -1;
  }

  fail(message: string): void {
    if (!this.failed) {
      this.failed = true;
      this.settings.error = "line " + this.line.toString() + ": " + message;
    }
  }

  /** Skips spaces and tabs. */
  spaces(): void {
    while (this.peek() == 0x20 || this.peek() == 0x09) this.pos++;
  }

  /** Skips spaces, tabs, newlines and comments. */
  blank(): void {
    while (true) {
      let c = this.peek();
      if (c == 0x20 || c == 0x09 || c == 0x0d) {
        this.pos++;
      } else if (c == 0x0a) {
        this.pos++;
        this.line++;
      } else if (c == 0x23) {
        this.comment();
      } else {
        return;
      }
    }
  }

  comment(): void {
    while (this.peek() != -1 && this.peek() != 0x0a) this.pos++;
  }

  /** After a key/value or a header: nothing but a comment on the line. */
  endOfLine(): void {
    this.spaces();
    if (this.peek() == 0x23) this.comment();
    if (this.peek() == 0x0d) this.pos++;
    if (this.peek() == -1) return;
    if (this.peek() != 0x0a) {
      this.fail("expected the end of the line");
      return;
    }
    this.pos++;
    this.line++;
  }

  set(path: string, value: Value): void {
    this.settings.values.set(path, value);
  }

  document(): void {
    let prefix = "";
    while (!this.failed) {
      this.blank();
      let c = this.peek();
      if (c == -1) return;
      if (c == 0x5b) {
        let array = this.peek(1) == 0x5b;
        this.pos += array ? 2 : 1;
        this.spaces();
        let key = this.key();
        this.spaces();
        if (this.peek() != 0x5d || (array && this.peek(1) != 0x5d)) {
          this.fail("expected `]` after the table name");
          return;
        }
        this.pos += array ? 2 : 1;
        if (array) {
          let n = this.tableArrays.has(key) ? this.tableArrays.get(key) : 0;
          this.tableArrays.set(key, n + 1);
          let table = new Value();
          table.kind = ValueKind.Array;
          table.length = n + 1;
          this.set(key, table);
          prefix = key + "." + n.toString();
        } else {
          prefix = key;
        }
        this.set(prefix, new Value());
        this.endOfLine();
      } else {
        this.keyValue(prefix);
        this.endOfLine();
      }
    }
  }

  /** `key = value`, under `prefix`. */
  keyValue(prefix: string): void {
    let key = this.key();
    if (this.failed) return;
    this.spaces();
    if (this.peek() != 0x3d) {
      this.fail("expected `=` after `" + key + "`");
      return;
    }
    this.pos++;
    this.spaces();
    this.value(join(prefix, key));
  }

  /** A dotted key, its parts joined with `.`. */
  key(): string {
    let parts = "";
    while (true) {
      this.spaces();
      let part: string;
      let c = this.peek();
      if (c == 0x22) {
        part = this.basicString();
      } else if (c == 0x27) {
        part = this.literalString();
      } else {
        let start = this.pos;
        while (isBare(this.peek())) this.pos++;
        if (this.pos == start) {
          this.fail("expected a key");
          return parts;
        }
        part = this.src.substring(start, this.pos);
      }
      parts = join(parts, part);
      this.spaces();
      if (this.peek() != 0x2e) return parts;
      this.pos++;
    }
  }

  value(path: string): void {
    let c = this.peek();
    let v = new Value();
    if (c == 0x22 || c == 0x27) {
      v.kind = ValueKind.String;
      if (c == 0x22) {
        v.str = this.peek(1) == 0x22 && this.peek(2) == 0x22 ? this.multiBasic() : this.basicString();
      } else {
        v.str = this.peek(1) == 0x27 && this.peek(2) == 0x27 ? this.multiLiteral() : this.literalString();
      }
      if (!this.failed) this.set(path, v);
    } else if (c == 0x5b) {
      this.pos++;
      let n = 0;
      while (!this.failed) {
        this.blank();
        if (this.peek() == 0x5d) {
          this.pos++;
          break;
        }
        this.value(path + "." + n.toString());
        n++;
        this.blank();
        if (this.peek() == 0x2c) {
          this.pos++;
        } else if (this.peek() == 0x5d) {
          this.pos++;
          break;
        } else {
          this.fail("expected `,` or `]` in the array `" + path + "`");
        }
      }
      v.kind = ValueKind.Array;
      v.length = n;
      this.set(path, v);
    } else if (c == 0x7b) {
      this.pos++;
      this.set(path, v); // a table
      this.spaces();
      if (this.peek() == 0x7d) {
        this.pos++;
        return;
      }
      while (!this.failed) {
        this.keyValue(path);
        this.spaces();
        if (this.peek() == 0x2c) {
          this.pos++;
        } else if (this.peek() == 0x7d) {
          this.pos++;
          return;
        } else {
          this.fail("expected `,` or `}` in the table `" + path + "`");
        }
      }
    } else {
      let start = this.pos;
      while (true) {
        let d = this.peek();
        // Dates may hold one space ("1979-05-27 07:32:00").
        if (d == 0x20 && this.pos - start == 10 && this.peek(1) >= 0x30 && this.peek(1) <= 0x39) {
          this.pos++;
          continue;
        }
        if (d == -1 || d == 0x20 || d == 0x09 || d == 0x0d || d == 0x0a || d == 0x2c ||
          d == 0x5d || d == 0x7d || d == 0x23) break;
        this.pos++;
      }
      this.scalar(path, this.src.substring(start, this.pos), v);
    }
  }

  scalar(path: string, word: string, v: Value): void {
    if (word == "true" || word == "false") {
      v.kind = ValueKind.Boolean;
      v.bool = word == "true";
    } else if (word == "inf" || word == "+inf" || word == "-inf") {
      v.kind = ValueKind.Float;
      v.float = word.startsWith("-") ? -Infinity : Infinity;
    } else if (word == "nan" || word == "+nan" || word == "-nan") {
      v.kind = ValueKind.Float;
      v.float = NaN;
    } else if (word.length >= 10 && word.charCodeAt(4) == 0x2d && word.charCodeAt(7) == 0x2d ||
      word.length >= 8 && word.charCodeAt(2) == 0x3a) {
      v.kind = ValueKind.DateTime;
      v.str = word;
    } else if (!this.integer(word, v) && !this.float(word, v)) {
      this.fail("`" + word + "` is not a TOML value");
      return;
    }
    this.set(path, v);
  }

  integer(word: string, v: Value): bool {
    let i = 0;
    let negative = false;
    let c = word.length > 0 ? <i32>word.charCodeAt(0) : -1;
    if (c == 0x2b || c == 0x2d) {
      negative = c == 0x2d;
      i = 1;
    }
    let radix = 10;
    if (i == 0 && word.length > 2 && word.charCodeAt(0) == 0x30) {
      let r = word.charCodeAt(1);
      if (r == 0x78) radix = 16;
      else if (r == 0x6f) radix = 8;
      else if (r == 0x62) radix = 2;
      if (radix != 10) i = 2;
    }
    if (i >= word.length) return false;
    // Accumulated negatively, so i64's minimum fits.
    let total: i64 = 0;
    let lastUnderscore = true;
    for (; i < word.length; i++) {
      let d = <i32>word.charCodeAt(i);
      if (d == 0x5f) {
        if (lastUnderscore) return false;
        lastUnderscore = true;
        continue;
      }
      let digit = hexValue(d);
      if (digit < 0 || digit >= radix) return false;
      lastUnderscore = false;
      let r = <i64>radix;
      if (total < (i64.MIN_VALUE + <i64>digit) / r) return false; // overflow
      total = total * r - <i64>digit;
    }
    if (lastUnderscore) return false;
    if (!negative) {
      if (total == i64.MIN_VALUE) return false;
      total = -total;
    }
    v.kind = ValueKind.Integer;
    v.int = total;
    return true;
  }

  float(word: string, v: Value): bool {
    let clean = word.replaceAll("_", "");
    if (clean.length == 0) return false;
    let sawDigit = false;
    let sawPointOrExponent = false;
    for (let i = 0; i < clean.length; i++) {
      let c = <i32>clean.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) {
        sawDigit = true;
      } else if (c == 0x2e || c == 0x65 || c == 0x45) {
        sawPointOrExponent = true;
      } else if (!(c == 0x2b || c == 0x2d)) {
        return false;
      }
    }
    // A TOML float has a fraction or an exponent; digits alone are an
    // integer (and one out of range is an error, not a float).
    if (!sawDigit || !sawPointOrExponent) return false;
    let f = parseFloat(clean);
    if (isNaN(f)) return false;
    v.kind = ValueKind.Float;
    v.float = f;
    return true;
  }

  /** An escape after `\` in a basic string. */
  escape(): string {
    let c = this.peek();
    this.pos++;
    switch (c) {
      case 0x62: return "\b";
      case 0x74: return "\t";
      case 0x6e: return "\n";
      case 0x66: return "\f";
      case 0x72: return "\r";
      case 0x65: return "\x1b";
      case 0x22: return "\"";
      case 0x5c: return "\\";
      case 0x75:
      case 0x55: {
        let digits = c == 0x75 ? 4 : 8;
        let code = 0;
        for (let k = 0; k < digits; k++) {
          let h = hexValue(this.peek());
          if (h < 0) {
            this.fail("bad \\u escape");
            return "";
          }
          code = code * 16 + h;
          this.pos++;
        }
        if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
          this.fail("bad \\u escape");
          return "";
        }
        return String.fromCodePoint(code);
      }
      default:
        this.fail("unknown escape in a string");
        return "";
    }
  }

  basicString(): string {
    this.pos++; // "
    let out = "";
    let start = this.pos;
    while (true) {
      let c = this.peek();
      if (c == -1 || c == 0x0a) {
        this.fail("unterminated string");
        return out;
      }
      if (c == 0x22) {
        out += this.src.substring(start, this.pos);
        this.pos++;
        return out;
      }
      if (c == 0x5c) {
        out += this.src.substring(start, this.pos);
        this.pos++;
        out += this.escape();
        start = this.pos;
        continue;
      }
      this.pos++;
    }
  }

  literalString(): string {
    this.pos++; // '
    let start = this.pos;
    while (true) {
      let c = this.peek();
      if (c == -1 || c == 0x0a) {
        this.fail("unterminated string");
        return "";
      }
      if (c == 0x27) {
        let s = this.src.substring(start, this.pos);
        this.pos++;
        return s;
      }
      this.pos++;
    }
  }

  /** Skips the newline right after an opening `"""` or `'''`. */
  firstNewline(): void {
    if (this.peek() == 0x0a) {
      this.pos++;
      this.line++;
    } else if (this.peek() == 0x0d && this.peek(1) == 0x0a) {
      this.pos += 2;
      this.line++;
    }
  }

  multiBasic(): string {
    this.pos += 3;
    this.firstNewline();
    let out = "";
    let start = this.pos;
    while (true) {
      let c = this.peek();
      if (c == -1) {
        this.fail("unterminated string");
        return out;
      }
      if (c == 0x22 && this.peek(1) == 0x22 && this.peek(2) == 0x22) {
        // Up to two more quotes belong to the string.
        let extra = 0;
        while (extra < 2 && this.peek(3 + extra) == 0x22) extra++;
        out += this.src.substring(start, this.pos + extra);
        this.pos += 3 + extra;
        return out;
      }
      if (c == 0x5c) {
        out += this.src.substring(start, this.pos);
        this.pos++;
        // A line-ending backslash eats the newline and the blanks after.
        let k = 0;
        while (this.peek(k) == 0x20 || this.peek(k) == 0x09) k++;
        if (this.peek(k) == 0x0a || (this.peek(k) == 0x0d && this.peek(k + 1) == 0x0a)) {
          while (true) {
            let d = this.peek();
            if (d == 0x20 || d == 0x09 || d == 0x0d) {
              this.pos++;
            } else if (d == 0x0a) {
              this.pos++;
              this.line++;
            } else {
              break;
            }
          }
        } else {
          out += this.escape();
        }
        start = this.pos;
        continue;
      }
      if (c == 0x0a) this.line++;
      this.pos++;
    }
  }

  multiLiteral(): string {
    this.pos += 3;
    this.firstNewline();
    let start = this.pos;
    while (true) {
      let c = this.peek();
      if (c == -1) {
        this.fail("unterminated string");
        return "";
      }
      if (c == 0x27 && this.peek(1) == 0x27 && this.peek(2) == 0x27) {
        let extra = 0;
        while (extra < 2 && this.peek(3 + extra) == 0x27) extra++;
        let s = this.src.substring(start, this.pos + extra);
        this.pos += 3 + extra;
        return s;
      }
      if (c == 0x0a) this.line++;
      this.pos++;
    }
  }
}
