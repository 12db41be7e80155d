// Cheap per-value prefilters for the detectors' RE2 patterns. At compile time a
// pattern is read once to learn what every match of it must contain (at least
// N digits, N upper-case letters, an "@"...). At scan time each JSON value gets
// the same counts in one pass over its characters, and a detector's pattern is
// run only over the values that can hold a match, so a body dense with emails
// no longer costs a full pass of the card patterns, and the other way round.
// The reading is conservative: a construct it does not know makes it give up
// (no requirement), never guess.

/** What every match of a pattern contains. All zero: nothing is known. */
export interface Requirement {
  minLength: number;
  digits: number;
  upper: number;
  lower: number;
  /** Bits of `punctuationBit` that every match contains. */
  punctuation: number;
}

export const noRequirement: Requirement = Object.freeze({ minLength: 0, digits: 0, upper: 0, lower: 0, punctuation: 0 });

const punctuationChars = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/** Bit per ASCII punctuation character (32 of them, one 32-bit mask). */
export const punctuationBit = new Int32Array(128);
for (let i = 0; i < punctuationChars.length; i++) punctuationBit[punctuationChars.charCodeAt(i)] = 1 << i;

/** 1 digit, 2 upper-case, 3 lower-case, 0 anything else (ASCII only). */
export const charKind = new Uint8Array(128);
for (let c = 48; c <= 57; c++) charKind[c] = 1;
for (let c = 65; c <= 90; c++) charKind[c] = 2;
for (let c = 97; c <= 122; c++) charKind[c] = 3;

class GiveUp extends Error {}

interface Node {
  minLength: number;
  digits: number;
  upper: number;
  lower: number;
  punctuation: number;
}

const empty = (): Node => ({ minLength: 0, digits: 0, upper: 0, lower: 0, punctuation: 0 });

function concat(a: Node, b: Node): Node {
  return { minLength: a.minLength + b.minLength, digits: a.digits + b.digits, upper: a.upper + b.upper, lower: a.lower + b.lower, punctuation: a.punctuation | b.punctuation };
}

function either(a: Node, b: Node): Node {
  return {
    minLength: Math.min(a.minLength, b.minLength), digits: Math.min(a.digits, b.digits), upper: Math.min(a.upper, b.upper),
    lower: Math.min(a.lower, b.lower), punctuation: a.punctuation & b.punctuation,
  };
}

function repeat(a: Node, times: number): Node {
  if (times === 0) return empty();
  return { minLength: a.minLength * times, digits: a.digits * times, upper: a.upper * times, lower: a.lower * times, punctuation: a.punctuation };
}

/** One character from a set of ASCII codes (null: may be any character, or one outside ASCII). */
function oneOf(codes: Set<number> | null, caseless: boolean): Node {
  const n: Node = { ...empty(), minLength: 1 };
  if (codes === null || codes.size === 0) return n;
  if (caseless) {
    for (const c of [...codes]) {
      if (c >= 65 && c <= 90) codes.add(c + 32);
      else if (c >= 97 && c <= 122) codes.add(c - 32);
    }
  }
  let kinds = 0;
  for (const c of codes) kinds |= 1 << charKind[c]!;
  if (kinds === 1 << 1) n.digits = 1;
  else if (kinds === 1 << 2) n.upper = 1;
  else if (kinds === 1 << 3) n.lower = 1;
  if (codes.size === 1) {
    const only = codes.values().next().value!;
    if (only < 128) n.punctuation = punctuationBit[only]!;
  }
  return n;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const digitCodes = range(48, 57);

/**
 * What every match of an RE2 pattern must contain. Gives up (no requirement)
 * on anything it does not read with certainty.
 */
export function requirementOf(source: string, caseInsensitive = false): Requirement {
  return read(source, caseInsensitive).requirement;
}

/**
 * False only when no match of the pattern can contain a line feed: then the
 * pattern can be run over the lines of a value that can hold a match instead
 * of the whole value (see scan.ts). True when unsure.
 */
export function mayMatchLineFeed(source: string, caseInsensitive = false): boolean {
  return read(source, caseInsensitive).lineFeed;
}

function read(source: string, caseInsensitive: boolean): { requirement: Requirement; lineFeed: boolean } {
  try {
    const p = new Reader(source, caseInsensitive);
    const n = p.alternation();
    if (p.i !== source.length) throw new GiveUp();
    return { requirement: n, lineFeed: p.lineFeed };
  } catch (e) {
    if (e instanceof GiveUp) return { requirement: noRequirement, lineFeed: true };
    throw e;
  }
}

class Reader {
  i = 0;
  readonly s: string;
  caseless: boolean;
  /** "." matches a line feed ((?s)). */
  dotAll = false;
  /** Some atom of the pattern may match a line feed. */
  lineFeed = false;
  /** The letter of the last escape read, and whether that escape may match a line feed. */
  escapeLetter = '';
  escapeLineFeed = false;

  constructor(s: string, caseless: boolean) {
    this.s = s;
    this.caseless = caseless;
  }

  alternation(): Node {
    let n = this.sequence();
    while (this.s[this.i] === '|') {
      this.i++;
      n = either(n, this.sequence());
    }
    return n;
  }

  sequence(): Node {
    let n = empty();
    while (this.i < this.s.length && this.s[this.i] !== '|' && this.s[this.i] !== ')') n = concat(n, this.quantified());
    return n;
  }

  quantified(): Node {
    const atom = this.atom();
    if (atom === null) return empty();
    const c = this.s[this.i];
    let n = atom;
    if (c === '*' || c === '?') {
      this.i++;
      n = empty();
    } else if (c === '+') {
      this.i++;
    } else if (c === '{') {
      const counted = countedRepetition(this.s, this.i);
      if (!counted) throw new GiveUp();
      this.i += counted.text.length;
      n = repeat(atom, counted.min);
    } else {
      return n;
    }
    if (this.s[this.i] === '?') this.i++; // lazy
    return n;
  }

  /** null for a zero-width assertion or a flag group. */
  atom(): Node | null {
    const c = this.s[this.i]!;
    if (c === '(') return this.group();
    if (c === '[') return this.charClass();
    if (c === '^' || c === '$') {
      this.i++;
      return null;
    }
    if (c === '.') {
      this.i++;
      if (this.dotAll) this.lineFeed = true;
      return oneOf(null, false);
    }
    if (c === '\\') {
      const e = this.escape(false);
      if (e !== 'assertion' && this.escapeLineFeed) this.lineFeed = true;
      return e === 'assertion' ? null : oneOf(e, this.caseless);
    }
    if (c === '*' || c === '+' || c === '?' || c === '{' || c === ')') throw new GiveUp();
    this.i++;
    const code = c.charCodeAt(0);
    if (code === 10) this.lineFeed = true;
    return oneOf(code < 128 ? new Set([code]) : null, this.caseless);
  }

  group(): Node | null {
    this.i++;
    const saved = this.caseless;
    const savedDotAll = this.dotAll;
    if (this.s[this.i] === '?') {
      const m = /^\?([imsU-]*)(:|\))/.exec(this.s.slice(this.i));
      if (m) {
        this.i += m[0].length;
        const flags = m[1]!;
        const set = flags.split('-')[0]!.includes('i');
        const unset = (flags.split('-')[1] ?? '').includes('i');
        // (?s) and (?-s) are read as "may match a line feed" either way (conservative)
        if (flags.includes('s')) this.dotAll = true;
        if (m[2] === ')') {
          // (?i) applies to the rest of the enclosing group
          if (set) this.caseless = true;
          if (unset) this.caseless = false;
          return null;
        }
        if (set) this.caseless = true;
        if (unset) this.caseless = false;
      } else {
        const named = /^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(this.s.slice(this.i));
        if (!named) throw new GiveUp();
        this.i += named[0].length;
      }
    }
    const n = this.alternation();
    if (this.s[this.i] !== ')') throw new GiveUp();
    this.i++;
    this.caseless = saved;
    this.dotAll = savedDotAll;
    return n;
  }

  /** A backslash escape: a set of ASCII codes, null for "anything / unknown", or an assertion. */
  escape(inClass: boolean): Set<number> | null | 'assertion' {
    const c = this.s[this.i + 1];
    if (c === undefined) throw new GiveUp();
    this.i += 2;
    this.escapeLetter = c;
    // \s \D \W \P{..} \x.. \p{C..} (and \n) may stand for a line feed
    this.escapeLineFeed = c === 's' || c === 'D' || c === 'W' || c === 'P' || c === 'x' || c === 'n' || (c === 'p' && this.s[this.i] !== 'L' && this.s[this.i] !== 'N' && !/^\{(?:L|N|Lu|Ll|Nd)\}/.test(this.s.slice(this.i)));
    if (c === 'd') return new Set(digitCodes);
    if (c === 'b' || c === 'B' || c === 'A' || c === 'z') {
      if (inClass) throw new GiveUp();
      return 'assertion';
    }
    if ('DwWsSpPx'.includes(c)) {
      if (c === 'p' || c === 'P' || c === 'x') {
        if (this.s[this.i] === '{') {
          const close = this.s.indexOf('}', this.i);
          if (close < 0) throw new GiveUp();
          this.i = close + 1;
        } else {
          this.i += c === 'x' ? 2 : 1;
        }
      }
      return null;
    }
    const controls: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11 };
    if (controls[c] !== undefined) return new Set([controls[c]!]);
    if (/[A-Za-z0-9]/.test(c)) throw new GiveUp();
    return new Set([c.charCodeAt(0)]);
  }

  charClass(): Node {
    this.i++;
    let negated = false;
    if (this.s[this.i] === '^') {
      negated = true;
      this.i++;
    }
    const codes = new Set<number>();
    let unknown = false;
    let first = true;
    // an item that may be a line feed; the class names the line feed itself (\n, \s)
    let lineFeedItem = false;
    let lineFeedNamed = false;
    while (this.i < this.s.length && (this.s[this.i] !== ']' || first)) {
      first = false;
      if (this.s.startsWith('[:', this.i)) throw new GiveUp();
      let lo: number | null;
      if (this.s[this.i] === '\\') {
        const e = this.escape(true);
        if (e === 'assertion') throw new GiveUp();
        if (this.escapeLineFeed) lineFeedItem = true;
        if (this.escapeLetter === 's' || this.escapeLetter === 'n') lineFeedNamed = true;
        if (e === null) {
          unknown = true;
          continue;
        }
        if (e.size !== 1) {
          e.forEach((x) => codes.add(x));
          continue;
        }
        lo = e.values().next().value!;
      } else {
        lo = this.s.charCodeAt(this.i);
        this.i++;
      }
      if (this.s[this.i] === '-' && this.s[this.i + 1] !== ']' && this.i + 1 < this.s.length) {
        this.i++;
        let hi: number;
        if (this.s[this.i] === '\\') {
          const e = this.escape(true);
          if (e === null || e === 'assertion' || e.size !== 1) throw new GiveUp();
          hi = e.values().next().value!;
        } else {
          hi = this.s.charCodeAt(this.i);
          this.i++;
        }
        if (hi < lo) throw new GiveUp();
        if (hi >= 128) unknown = true;
        for (let x = lo; x <= Math.min(hi, 127); x++) codes.add(x);
      } else if (lo >= 128) {
        unknown = true;
      } else {
        codes.add(lo);
      }
    }
    if (this.s[this.i] !== ']') throw new GiveUp();
    this.i++;
    if (codes.has(10)) lineFeedItem = lineFeedNamed = true;
    if (negated ? !lineFeedNamed : lineFeedItem) this.lineFeed = true;
    if (negated || unknown) return oneOf(null, false);
    return oneOf(codes, this.caseless);
  }
}

/** Per-value counts, compared with a Requirement by `mayMatch`. */
export interface Features {
  length: Int32Array;
  digits: Int32Array;
  upper: Int32Array;
  lower: Int32Array;
  punctuation: Int32Array;
  /** Characters outside ASCII. */
  wide: Int32Array;
}

export function mayMatch(f: Features, i: number, r: Requirement): boolean {
  return (
    f.length[i]! >= r.minLength && f.digits[i]! >= r.digits && f.upper[i]! >= r.upper && f.lower[i]! >= r.lower &&
    (f.punctuation[i]! & r.punctuation) === r.punctuation
  );
}

export function isTrivial(r: Requirement): boolean {
  return r.minLength <= 1 && r.digits === 0 && r.upper === 0 && r.lower === 0 && r.punctuation === 0;
}

/**
 * Counted repetitions above this bound are loosened in the RE2.Set's copy of a pattern (see
 * loosenedForSet). At 8 the Set hit the generated clean tool result (ordinary ids and dates have
 * the shape of a VIN or a bitcoin address cut to 8 characters), and every hit costs a pattern pass.
 */
export const setRepetitionBound = 16;

/**
 * A pattern as the RE2.Set carries it: each counted repetition with an upper bound above `bound`
 * (`x{m,n}`, `x{m}`, `x{m,}`) becomes `x{min(m, bound),}`. Every text the pattern matches, the
 * loosened one matches too (a repetition only accepts more counts), so a Set hit still gates the
 * detector's own pattern, which finds the exact matches. Why: the Set's automaton is the product of
 * its entries' automata, and an entry that counts up to 64 characters of a run ("a local part of
 * up to 64 characters before an @") multiplies the states it needs on every new text by those
 * counts. RE2 builds states as a text needs them, so on text it has not met (most traffic) the Set
 * pass ran at about 1 MB/s and its cache grew by ~10 MB per MB read.
 */
export function loosenedForSet(source: string, bound = setRepetitionBound): string {
  if (source.includes('\\Q')) return source; // quoted text is not read here
  let out = '';
  let skipTo = 0;
  for (const piece of patternPieces(source)) {
    if (piece.start < skipTo) continue;
    if (piece.text === '{' && !piece.escape && !piece.inClass) {
      const counted = countedRepetition(source, piece.start);
      if (counted !== null) {
        out += counted.max > bound ? `{${Math.min(counted.min, bound)},}` : counted.text;
        skipTo = piece.start + counted.text.length;
        continue;
      }
    }
    out += piece.text;
  }
  return out;
}

/** The counted repetition (`{m}`, `{m,}`, `{m,n}`) that starts at `at` in a pattern's text, or null. */
export function countedRepetition(source: string, at: number): { min: number; max: number; text: string } | null {
  const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(source.slice(at, at + 16));
  if (m === null) return null;
  const min = Number(m[1]);
  return { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]), text: m[0] };
}

/** A piece of a pattern's text: an escape (`\b`, `\.`, `\x{2028}`, `\p{L}`) or one other character. */
export interface PatternPiece {
  text: string;
  start: number;
  escape: boolean;
  /** It stands inside a character class (`[...]`), the brackets included. */
  inClass: boolean;
}

/** A pattern's text cut into its pieces, in order (joined, they are the text again). */
export function patternPieces(source: string): PatternPiece[] {
  const pieces: PatternPiece[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; ) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      const close = (next === 'x' || next === 'p' || next === 'P') && source[i + 2] === '{' ? source.indexOf('}', i) : -1;
      const end = close >= 0 ? close + 1 : Math.min(i + 2, source.length);
      pieces.push({ text: source.slice(i, end), start: i, escape: true, inClass });
      i = end;
      continue;
    }
    if (c === '[' && !inClass) {
      inClass = true;
      pieces.push({ text: c, start: i, escape: false, inClass });
      i++;
      // a ] right after [ or [^ is a member
      for (const member of ['^', ']']) {
        if (source[i] === member) pieces.push({ text: member, start: i++, escape: false, inClass });
      }
      continue;
    }
    pieces.push({ text: c, start: i, escape: false, inClass });
    if (c === ']' && inClass) inClass = false;
    i++;
  }
  return pieces;
}
