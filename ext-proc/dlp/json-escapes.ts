// A body that is not strict JSON is scanned as text (inspect.ts), yet the parser that reads it may
// be lenient (Python's json with its NaN, Go's json.Decoder reading the first value, JSON5 with its
// comments and trailing commas) and still decode the escapes of its strings: to it,
// "\u0034\u0035\u0033\u0039..." is a card. Such a text is also read as those parsers read their
// strings, with the way back to the original offsets, so a value found in the reading is masked
// where it is and written back escaped (jsonEscaped), as parseable as it was.

import { endianness } from 'node:os';
export interface EscapeReading {
  text: string;
  /** For each UTF-16 unit of the reading, the offset in the original where it came from; one more entry: the original's length. */
  origin: Int32Array;
}

/** The character a one-letter escape stands for, by the letter's code (JSON's, and JSON5's \v \0 \'); 0 when none. */
const escapedCharacter = new Int32Array(128);
for (const [letter, c] of [['b', 8], ['f', 12], ['n', 10], ['r', 13], ['t', 9], ['v', 11], ['/', 47], ['\\', 92], ['"', 34], ["'", 39]] as const) escapedCharacter[letter.charCodeAt(0)] = c;

/** The value of one hex digit's character code, or -1. */
export function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** `count` hex digits at `at` as a number, or -1. */
function hexAt(text: string, at: number, count: number): number {
  if (at + count > text.length) return -1;
  let value = 0;
  for (let k = 0; k < count; k++) {
    const h = hexValue(text.charCodeAt(at + k));
    if (h < 0) return -1;
    value = value * 16 + h;
  }
  return value;
}

/**
 * The escape at `i` (a backslash): the character it stands for and its length, or null when it is
 * none (the backslash then stays as it is). A backslash before a line break (JSON5's line
 * continuation) stands for nothing (character -1).
 */
function escapeAt(text: string, i: number): { character: number; length: number } | null {
  const c = text.charCodeAt(i + 1);
  if (c === 117) {
    const unit = hexAt(text, i + 2, 4);
    return unit < 0 ? null : { character: unit, length: 6 };
  }
  if (c === 120) {
    const byte = hexAt(text, i + 2, 2);
    return byte < 0 ? null : { character: byte, length: 4 };
  }
  if (c === 48 && !(text.charCodeAt(i + 2) >= 48 && text.charCodeAt(i + 2) <= 57)) return { character: 0, length: 2 };
  if (c === 13) return { character: -1, length: text.charCodeAt(i + 2) === 10 ? 3 : 2 };
  if (c === 10 || c === 0x2028 || c === 0x2029) return { character: -1, length: 2 };
  if (c < 128 && escapedCharacter[c] !== 0) return { character: escapedCharacter[c]!, length: 2 };
  return null;
}

const littleEndian = endianness() === 'LE';

/**
 * The string of units[0, n), lone surrogates kept. Read as UTF-16LE bytes where the platform stores
 * them so (one native copy; spreading thousands of units into String.fromCharCode cost ~100 times more).
 */
export function textOfUnits(units: Uint16Array, n: number): string {
  if (littleEndian) return Buffer.from(units.buffer, units.byteOffset, n * 2).toString('utf16le');
  let out = '';
  for (let k = 0; k < n; k += 8192) out += String.fromCharCode(...units.subarray(k, Math.min(n, k + 8192)));
  return out;
}

/**
 * The buffers of a reading of text (at most as long as the text), its first `unchanged` characters
 * copied as they are, each from its own offset.
 */
export function startReading(text: string, unchanged: number): { units: Uint16Array; origin: Int32Array } {
  const units = new Uint16Array(text.length);
  const origin = new Int32Array(text.length + 1);
  for (let k = 0; k < unchanged; k++) {
    units[k] = text.charCodeAt(k);
    origin[k] = k;
  }
  return { units, origin };
}

/** The text with its JSON string escapes decoded, and where each character came from; null when it has none. */
export function jsonEscapeReading(text: string): EscapeReading | null {
  let i = text.indexOf('\\');
  while (i >= 0 && escapeAt(text, i) === null) i = text.indexOf('\\', i + 1);
  if (i < 0) return null;
  const { units, origin } = startReading(text, i);
  let n = i;
  while (i < text.length) {
    const escape = text.charCodeAt(i) === 92 ? escapeAt(text, i) : null;
    if (escape === null) {
      units[n] = text.charCodeAt(i);
      origin[n++] = i++;
      continue;
    }
    if (escape.character >= 0) {
      units[n] = escape.character;
      origin[n++] = i;
    }
    i += escape.length;
  }
  origin[n] = text.length;
  return { text: textOfUnits(units, n), origin: origin.slice(0, n + 1) };
}

/** The text with its JSON string escapes decoded. */
export function decodeJsonEscapes(text: string): string {
  return jsonEscapeReading(text)?.text ?? text;
}

/**
 * A value written back where escapes were: what needs an escape inside a JSON string gets one, and
 * so does an apostrophe (the string may be single-quoted, JSON5), as \u0027, which every reader of
 * JSON strings takes.
 */
export function jsonEscaped(value: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 32 && c !== 34 && c !== 92 && c !== 39) continue;
    out += value.slice(from, i) + (c === 39 ? '\\u0027' : JSON.stringify(value[i]).slice(1, -1));
    from = i + 1;
  }
  return from === 0 ? value : out + value.slice(from);
}
