// Characters that stand in for ASCII ones and would hide a value from patterns written for ASCII:
// a card typed with no-break spaces or zero-width marks between its digits, in full-width, Arabic-Indic
// or mathematical bold digits, an access key in full-width letters or smuggled as Unicode tag
// characters. The scan reads a value that holds any of them in its ASCII reading (see scan.ts), and
// maps what it finds back onto the original characters, so masks land where the value is.
//
// One table decides both what the RE2.Set's look-alike entry matches and how a text is read, so the
// two cannot disagree. What a character becomes:
// - invisible marks (zero-width space and joiners, the soft hyphen, word joiner, byte order mark,
//   bidirectional controls, variation selectors, the tag "cancel" and language marks), the C0 control
//   characters but tab, line feed and carriage return, DEL, and the C1 control characters
//   U+0080-U+009F (what bytes 0x80-0x9F of an ISO-8859-1 answer read as; nothing shows them): nothing;
// - fixed-width and no-break spaces: a space;
// - hyphen and minus variants (not the en and em dashes of prose): a hyphen;
// - decimal digits of any script (Arabic-Indic, Devanagari, mathematical bold, ...): the ASCII digit;
// - compatibility forms of one ASCII letter or digit (full-width, mathematical alphanumerics,
//   superscripts, circled letters: whatever NFKC maps to one ASCII letter or digit), and the full-width
//   punctuation and signs: that ASCII character;
// - tag characters U+E0020-U+E007E (invisible copies of ASCII): the ASCII character;
// - Cyrillic and Greek letters drawn like Latin ones: the Latin letter;
// - a percent-escape of a printable ASCII character (`%20`, `%40`): that character (a value
//   URL-encoded here and there; long encoded runs are the url decoder's, see compile.ts);
// - an XML or HTML character reference of a printable ASCII character or the no-break space
//   (`&#52;`, `&#x34;`, `&#160;`, `&nbsp;`): that character (a space for the no-break space).

import { hexValue, startReading, textOfUnits } from './json-escapes.ts';

/** What a BMP character becomes: its ASCII counterpart, `removed`, or 0 when it stays as it is. */
const bmpReading = new Uint8Array(0x10000);
/** The reading of a character outside the BMP, by code point (only those that change). */
const astralReading = new Map<number, number>();
const removed = 0xff;

const invisible: [number, number][] = [
  // C0 controls other than tab, line feed and carriage return, and DEL: nothing a reader sees either.
  [0x0000, 0x0008], [0x000b, 0x000c], [0x000e, 0x001f], [0x007f, 0x007f],
  [0x0080, 0x009f], [0x00ad, 0x00ad], [0x034f, 0x034f], [0x061c, 0x061c], [0x180e, 0x180e], [0x200b, 0x200f], [0x202a, 0x202e],
  [0x2060, 0x2064], [0x2066, 0x206f], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
  [0xe0001, 0xe0001], [0xe007f, 0xe007f], [0xe0100, 0xe01ef],
];
const spaces: [number, number][] = [[0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200a], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]];
const hyphens: [number, number][] = [[0x2010, 0x2012], [0x2212, 0x2212], [0xfe63, 0xfe63]];

/**
 * Cyrillic and Greek letters drawn like Latin ones (`АКІА` in Cyrillic for `AKIA`). They are read as
 * the Latin letter, but only where they mix with Latin letters or digits does the Set notice (see
 * lookAlikeSetSource): text written in those alphabets alone is not read twice for nothing.
 */
const latinLookingLetters: Record<string, string> = {
  А: 'A', В: 'B', Е: 'E', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', У: 'Y', Х: 'X', Ѕ: 'S', І: 'I', Ј: 'J', Ԛ: 'Q', Ԝ: 'W',
  а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', у: 'y', х: 'x', ѕ: 's', і: 'i', ј: 'j', һ: 'h', ԁ: 'd', ԛ: 'q', ԝ: 'w', ӏ: 'l',
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X', ο: 'o',
};

function setReading(cp: number, to: number): void {
  if (cp < 0x10000) bmpReading[cp] = to;
  else astralReading.set(cp, to);
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

(function buildReadings() {
  for (const [from, to] of invisible) for (let cp = from; cp <= to; cp++) setReading(cp, removed);
  for (const [from, to] of spaces) for (let cp = from; cp <= to; cp++) setReading(cp, 32);
  for (const [from, to] of hyphens) for (let cp = from; cp <= to; cp++) setReading(cp, 45);
  for (let cp = 0xff01; cp <= 0xff5e; cp++) setReading(cp, cp - 0xfee0);
  for (let cp = 0xe0020; cp <= 0xe007e; cp++) setReading(cp, cp - 0xe0000);
  for (const [letter, latin] of Object.entries(latinLookingLetters)) setReading(letter.codePointAt(0)!, latin.charCodeAt(0));
  // Decimal digits come in runs of ten, zero first (a Unicode stability rule).
  const decimal = /^\p{Nd}$/u;
  let runStart = -1;
  for (let cp = 0x80; cp <= 0x1ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp);
    if (decimal.test(ch)) {
      if (runStart < 0) runStart = cp;
      setReading(cp, 48 + ((cp - runStart) % 10));
      continue;
    }
    runStart = -1;
    if ((cp < 0x10000 ? bmpReading[cp] : astralReading.get(cp)) ?? 0) continue;
    // Cheap filter before NFKC: only blocks that hold compatibility forms of ASCII letters and digits.
    if (!(cp <= 0x24ff || (cp >= 0x1d400 && cp <= 0x1d7ff) || (cp >= 0x1f100 && cp <= 0x1f1ff))) continue;
    const compat = ch.normalize('NFKC');
    if (compat.length === 1 && isAsciiAlnum(compat.charCodeAt(0))) setReading(cp, compat.charCodeAt(0));
  }
})();

/** The characters that change in the ASCII reading, as code point ranges. */
function readingRanges(): [number, number][] {
  const ranges: [number, number][] = [];
  const add = (cp: number) => {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === cp - 1) last[1] = cp;
    else ranges.push([cp, cp]);
  };
  for (let cp = 0; cp < 0x10000; cp++) if (bmpReading[cp] !== 0 && !latinLooking.has(cp)) add(cp);
  for (const cp of [...astralReading.keys()].sort((a, b) => a - b)) add(cp);
  return ranges;
}

const latinLooking = new Set(Object.keys(latinLookingLetters).map((letter) => letter.codePointAt(0)!));

const hex = (cp: number) => `\\x{${cp.toString(16)}}`;

/**
 * The Set's look-alike entry: any character the ASCII reading changes, except the Latin-looking
 * Cyrillic and Greek letters, which count only glued to a Latin letter or digit.
 */
export const lookAlikeSetSource = (() => {
  const changed = `[${readingRanges()
    .map(([from, to]) => (from === to ? hex(from) : `${hex(from)}-${hex(to)}`))
    .join('')}]`;
  const latinLike = `[${[...latinLooking].map(hex).join('')}]`;
  const upperLatinLike = `[${[...latinLooking].filter((cp) => String.fromCodePoint(cp) !== String.fromCodePoint(cp).toLowerCase()).map(hex).join('')}]`;
  // Glued to a Latin letter or digit (АКІА7...), or a capital one beside one across a separator (an id's "-Х" or " С ").
  const mixedScript = `[A-Za-z0-9]${latinLike}|${latinLike}[A-Za-z0-9]|[A-Za-z0-9][-./ ]${upperLatinLike}|${upperLatinLike}[-./ ][A-Za-z0-9]`;
  // A percent-escape of a printable ASCII character: a space, sign or digit beside a digit
  // (4539%201488...), an escaped @ (jane%40example.com), or any other (Bearer%20eyJ..., a token's %2D).
  const percent = '%[2-7][0-9A-Fa-f]';
  // A character reference of one (see referencedCharacter).
  const reference = '&#(?:[3-9][0-9]|1[0-2][0-9]|160);|&#[xX](?:[2-7][0-9A-Fa-f]|[aA]0);|&nbsp;';
  return `${changed}|${mixedScript}|${percent}|${reference}`;
})();

export interface AsciiReading {
  text: string;
  /**
   * For each UTF-16 unit of the reading, the offset of the original character it came from, and one
   * more entry: the original's length. Null when the reading has the original's offsets (every
   * changed character was one unit and became one).
   */
  origin: Int32Array | null;
}

function readingOf(cp: number): number {
  return cp < 0x10000 ? bmpReading[cp]! : (astralReading.get(cp) ?? 0);
}

/** The printable ASCII character a percent-escape at `i` stands for (`%20`, `%34`, `%40`), or 0. */
function percentEscaped(text: string, i: number): number {
  if (text.charCodeAt(i) !== 0x25 || i + 2 >= text.length) return 0;
  const hi = hexValue(text.charCodeAt(i + 1));
  const lo = hexValue(text.charCodeAt(i + 2));
  if (hi < 0 || lo < 0) return 0;
  const c = hi * 16 + lo;
  return c >= 0x20 && c <= 0x7e ? c : 0;
}

/**
 * The character reference at `i` (`&#52;`, `&#x34;`, `&#160;`, `&nbsp;`) of a printable ASCII character
 * or the no-break space: that character (a space for the no-break space) and the reference's length;
 * null for any other.
 */
function referencedCharacter(text: string, i: number): { character: number; length: number } | null {
  if (text.charCodeAt(i) !== 0x26) return null;
  if (text.startsWith('&nbsp;', i)) return { character: 32, length: 6 };
  if (text.charCodeAt(i + 1) !== 0x23) return null;
  const hex = text.charCodeAt(i + 2) === 0x78 || text.charCodeAt(i + 2) === 0x58;
  let j = hex ? i + 3 : i + 2;
  let value = 0;
  const first = j;
  for (; j < text.length && j - first < 4; j++) {
    const c = text.charCodeAt(j);
    const digit = hex ? hexValue(c) : c >= 48 && c <= 57 ? c - 48 : -1;
    if (digit < 0) break;
    value = value * (hex ? 16 : 10) + digit;
  }
  if (j === first || text.charCodeAt(j) !== 0x3b) return null;
  if (value === 0xa0) return { character: 32, length: j + 1 - i };
  return value >= 0x20 && value <= 0x7e ? { character: value, length: j + 1 - i } : null;
}

/** The ASCII reading of a text, or null when no character in it changes. */
export function asciiReading(text: string): AsciiReading | null {
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0x25 ? percentEscaped(text, i) !== 0 : c === 0x26 ? referencedCharacter(text, i) !== null : bmpReading[c] !== 0) break;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff) {
      const cp = text.codePointAt(i)!;
      if (readingOf(cp) !== 0) break;
      if (cp > 0xffff) i++;
    } else if (bmpReading[c] !== 0) break;
  }
  if (i === text.length) return null;
  const { units, origin } = startReading(text, i);
  let n = i;
  let sameOffsets = true;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    // Most characters are ASCII that reads as itself: copied without the lookups below.
    if (c < 0x80 && c !== 0x25 && c !== 0x26 && bmpReading[c] === 0) {
      units[n] = c;
      origin[n++] = i++;
      continue;
    }
    const escaped = c === 0x25 ? percentEscaped(text, i) : 0;
    if (escaped !== 0) {
      units[n] = escaped;
      origin[n++] = i;
      sameOffsets = false;
      i += 3;
      continue;
    }
    const reference = c === 0x26 ? referencedCharacter(text, i) : null;
    if (reference !== null) {
      units[n] = reference.character;
      origin[n++] = i;
      sameOffsets = false;
      i += reference.length;
      continue;
    }
    const wide = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length;
    const cp = wide ? text.codePointAt(i)! : c;
    const to = readingOf(cp);
    const width = cp > 0xffff ? 2 : 1;
    if (to === removed) {
      sameOffsets = false;
    } else if (to !== 0) {
      units[n] = to;
      origin[n++] = i;
      if (width === 2) sameOffsets = false;
    } else {
      for (let k = 0; k < width; k++) {
        units[n] = text.charCodeAt(i + k);
        origin[n++] = i + k;
      }
    }
    i += width;
  }
  origin[n] = text.length;
  return { text: textOfUnits(units, n), origin: sameOffsets ? null : origin.slice(0, n + 1) };
}

/** The ASCII reading alone (fingerprints: a value and its look-alike spelling are the same value). */
export function readAsAscii(text: string): string {
  return asciiReading(text)?.text ?? text;
}
