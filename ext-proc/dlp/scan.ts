// The scanning core. Input: a table of text segments (JSON string values with
// the name of their field, as spans of a few large strings) and, optionally,
// the RE2.Set hits already known for the raw body. Output: candidate matches
// (segment, offsets, detector, confidence); never the matched text.
//
// Cost model (issue #3): one RE2 pass costs ~2-4 ns per byte whatever it finds,
// and a pass per hit detector over the whole body does not fit the budget of a
// body dense with findings. So each detector's pattern runs only over the
// values that can hold a match (see prefilter.ts), keyword-gated detectors look
// at field names once per distinct name and at values only when the Set saw a
// keyword in them, and the per-candidate path allocates little.
import RE2 from 're2';
import { standaloneNumberGroups, type CompiledDataProtectionOk, type CompiledDetector, type SetEntry } from './compile.ts';
import { asciiReading } from './look-alikes.ts';
import { checkInspectionBudget } from './budget.ts';
import { ampersandContinues, assignedValueAt, isCodeReference, nameEndsWithWord, unquotedValueEnd, maxValueLength as maxAssignedValueLength } from './assignment.ts';
import { charKind, isTrivial, mayMatch, patternPieces, punctuationBit, type Features, type Requirement } from './prefilter.ts';

/** One piece of text to scan: a JSON string value with the name of its field (the context). */
export interface TextSegment {
  key: string;
  value: string;
}

/**
 * Segments as spans: segment i is texts[text[i]].slice(start[i], end[i]), in a
 * field named key[i]. Values of one JSON document share its text, so building
 * the table allocates no string per value.
 */
export interface SegmentTable {
  texts: string[];
  text: Int32Array;
  start: Int32Array;
  end: Int32Array;
  key: string[];
  count: number;
}

export interface Match {
  segment: number;
  /** UTF-16 offsets inside the segment value. */
  start: number;
  end: number;
  detector: CompiledDetector;
  confidence: number;
  /**
   * Set when the value was found inside a base64, hex or URL-encoded run (start/end cover that run), or
   * spelled with percent-escapes or character references (`character-reference`) here and there.
   */
  encoding: 'base64' | 'hex' | 'url' | 'character-reference' | null;
}

/** How deep encoded-inside-encoded segments are followed. */
const maxDecodeDepth = 2;
/** Characters before a match searched for context and negative words. */
const contextLookback = 64;
/** Longest keyword-gated region scanned after a keyword. */
const keywordRegionLimit = 320;
/**
 * How many characters before a match can change whether or how it is found: context and negative
 * words near it, and the keyword a context-gated detector's candidate must follow. A stream keeps
 * this much of the text it released as context for what comes next (see stream.ts).
 */
export function contextReachOf(compiled: CompiledDataProtectionOk): number {
  let reach = contextLookback;
  for (const d of compiled.detectors) {
    let keyword = 0;
    for (const k of d.keywordsLower) keyword = Math.max(keyword, k.length);
    // the keyword, the character before it that its pattern reads, and the window after it
    reach = Math.max(reach, d.contextWindow + keyword + 2);
  }
  return reach;
}
/** Per-detector caches (context words in a field name) are dropped past this size. */
const cacheLimit = 4096;

export function tableOf(segments: TextSegment[]): SegmentTable {
  const n = segments.length;
  const t: SegmentTable = { texts: new Array(n), text: new Int32Array(n), start: new Int32Array(n), end: new Int32Array(n), key: new Array(n), count: n };
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    t.texts[i] = s.value;
    t.text[i] = i;
    t.start[i] = 0;
    t.end[i] = s.value.length;
    t.key[i] = s.key;
  }
  return t;
}

export function valueOf(t: SegmentTable, i: number): string {
  return t.texts[t.text[i]!]!.slice(t.start[i]!, t.end[i]!);
}

export function scanSegments(compiled: CompiledDataProtectionOk, segments: TextSegment[], depth = 0): Match[] {
  if (!compiled.set || segments.length === 0) return [];
  return scanTable(compiled, tableOf(segments), null, depth);
}

/** Some values (or lines of values) joined with "\n" (a non-word character, as between JSON values), with the join offsets. */
interface Joined {
  text: string;
  segs: number[];
  /** Offset of each part in text; one more entry for the end. */
  at: number[];
  /** Offset of each part inside its segment's value (lines); null when every part is a whole value. */
  from: number[] | null;
}

function join(t: SegmentTable, segs: number[]): Joined {
  const parts: string[] = new Array(segs.length);
  const at: number[] = new Array(segs.length + 1);
  let o = 0;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const v = t.texts[t.text[s]!]!.slice(t.start[s]!, t.end[s]!);
    parts[i] = v;
    at[i] = o;
    o += v.length + 1;
  }
  at[segs.length] = o;
  return { text: parts.join('\n'), segs, at, from: null };
}

/**
 * The lines of values, for patterns that never match a line feed: a value's
 * lines are what a join of values is, parts separated by "\n", so such a
 * pattern finds the same matches in the lines that can hold one as in the
 * whole values. In a multi-line text (a comment thread, a log) a detector
 * then reads the few lines with enough digits, an "@"..., not all of it.
 */
interface Lines {
  seg: number[];
  /** Offset of the line in its segment's value. */
  start: number[];
  length: number[];
  digits: number[];
  upper: number[];
  lower: number[];
  punctuation: number[];
}

function pushLine(l: Lines, seg: number, start: number, length: number, digits: number, upper: number, lower: number, punctuation: number): void {
  l.seg.push(seg);
  l.start.push(start);
  l.length.push(length);
  l.digits.push(digits);
  l.upper.push(upper);
  l.lower.push(lower);
  l.punctuation.push(punctuation);
}

function lineMayMatch(l: Lines, i: number, r: Requirement): boolean {
  return l.length[i]! >= r.minLength && l.digits[i]! >= r.digits && l.upper[i]! >= r.upper && l.lower[i]! >= r.lower && (l.punctuation[i]! & r.punctuation) === r.punctuation;
}

/** Per ASCII character: 1 for a digit, 1 << 10 for a capital, 1 << 20 for a small letter. */
const countBits = new Int32Array(128);
for (let c = 0; c < 128; c++) countBits[c] = charKind[c] === 1 ? 1 : charKind[c] === 2 ? 1 << 10 : charKind[c] === 3 ? 1 << 20 : 0;

/** Lines for segments 0..upTo-1, each a line of its own (their counts are known), once a value with a line feed is met. */
function newLines(f: Features, upTo: number): Lines {
  const l: Lines = { seg: [], start: [], length: [], digits: [], upper: [], lower: [], punctuation: [] };
  for (let i = 0; i < upTo; i++) if (f.length[i]! > 0) pushLine(l, i, 0, f.length[i]!, f.digits[i]!, f.upper[i]!, f.lower[i]!, f.punctuation[i]!);
  return l;
}

/** State of one scan over a table. */
class Scan {
  readonly compiled: CompiledDataProtectionOk;
  readonly t: SegmentTable;
  readonly depth: number;
  readonly out: Match[] = [];
  #features: Features | null = null;
  /** Lines of values with their counts; null when no value has a line feed (the values are the lines). */
  #lines: Lines | null = null;
  readonly #joined = new Map<string, Joined>();
  #all: number[] | null = null;
  /** Set before keyword-gated detectors run. */
  covered: Covered | null = null;
  /** Each segment's field name as its index in the distinct names (see distinctKeys), once they are read. */
  keyIds: Int32Array | null = null;
  /** The values are few characters in all: line-free patterns skip the per-value counts (see smallFor). */
  readonly small: boolean;
  /** Small tables: the lines where the hit line-free patterns can match, when they were located. */
  located: Joined | null = null;

  constructor(compiled: CompiledDataProtectionOk, t: SegmentTable, depth: number) {
    this.compiled = compiled;
    this.t = t;
    this.depth = depth;
    let total = 0;
    for (let i = 0; i < t.count && total <= smallTable; i++) total += t.end[i]! - t.start[i]!;
    this.small = total <= smallTable;
  }

  /**
   * What a line-free pattern runs over in a small table: the located lines,
   * else all values. Counting characters in JavaScript costs about what an RE2
   * pass over them does, so a small table is not counted for these patterns.
   */
  smallFor(need: Requirement): Joined {
    const c = markOf(need);
    if (c === null) return this.located ?? this.joinedFor(noNeed);
    // A character every match contains: the lines holding it, found with indexOf.
    const k = `mark ${c}`;
    let j = this.#joined.get(k);
    if (j) return j;
    const all = this.joinedFor(noNeed);
    const positions: number[] = [];
    for (let p = all.text.indexOf(c); p >= 0; ) {
      positions.push(p);
      const end = all.text.indexOf('\n', p);
      if (end < 0) break;
      p = all.text.indexOf(c, end + 1);
    }
    j = linesAt(all, positions);
    this.#joined.set(k, j);
    return j;
  }

  all(): number[] {
    if (!this.#all) {
      const all: number[] = new Array(this.t.count);
      for (let i = 0; i < all.length; i++) all[i] = i;
      this.#all = all;
    }
    return this.#all;
  }

  features(): Features {
    if (this.#features) return this.#features;
    const t = this.t;
    const n = t.count;
    const f: Features = { length: new Int32Array(n), digits: new Int32Array(n), upper: new Int32Array(n), lower: new Int32Array(n), punctuation: new Int32Array(n), wide: new Int32Array(n) };
    let lines: Lines | null = null;
    for (let i = 0; i < n; i++) {
      const s = t.texts[t.text[i]!]!;
      const end = t.end[i]!;
      const start = t.start[i]!;
      if (end - start < 1023) {
        // A short value (the usual one): no count can pass 10 bits, so no chunks; a line feed sends it to the loop below.
        let packed = 0;
        let punctuation = 0;
        let wide = 0;
        let j = start;
        for (; j < end; j++) {
          const c = s.charCodeAt(j);
          if (c >= 128) {
            wide++;
            continue;
          }
          if (c === 10) break;
          packed += countBits[c]!;
          punctuation |= punctuationBit[c]!;
        }
        if (j === end) {
          const digits = packed & 1023;
          const upper = (packed >> 10) & 1023;
          const lower = packed >>> 20;
          if (lines && end > start) pushLine(lines, i, 0, end - start, digits, upper, lower, punctuation);
          f.length[i] = end - start;
          f.digits[i] = digits;
          f.upper[i] = upper;
          f.lower[i] = lower;
          f.wide[i] = wide;
          f.punctuation[i] = punctuation;
          continue;
        }
      }
      // The current line's digits, capitals and small letters are counted in one number, 10 bits
      // each, moved to the line's counters at a line feed or every 1023 characters.
      let packed = 0;
      let chunk = 0;
      let digits = 0;
      let upper = 0;
      let lower = 0;
      let punctuation = 0;
      let wide = 0;
      // the value's counts, lines before the current one
      let valueDigits = 0;
      let valueUpper = 0;
      let valueLower = 0;
      let valuePunctuation = 0;
      let valueWide = 0;
      let lineStart = start;
      for (let j = start; j < end; j++) {
        const c = s.charCodeAt(j);
        if (c < 128) {
          if (c === 10) {
            digits += packed & 1023;
            upper += (packed >> 10) & 1023;
            lower += packed >>> 20;
            lines ??= newLines(f, i);
            if (j > lineStart) pushLine(lines, i, lineStart - start, j - lineStart, digits, upper, lower, punctuation);
            valueDigits += digits;
            valueUpper += upper;
            valueLower += lower;
            valuePunctuation |= punctuation;
            valueWide += wide;
            packed = chunk = digits = upper = lower = punctuation = wide = 0;
            lineStart = j + 1;
            continue;
          }
          packed += countBits[c]!;
          punctuation |= punctuationBit[c]!;
        } else {
          wide++;
        }
        if (++chunk === 1023) {
          digits += packed & 1023;
          upper += (packed >> 10) & 1023;
          lower += packed >>> 20;
          packed = chunk = 0;
        }
      }
      digits += packed & 1023;
      upper += (packed >> 10) & 1023;
      lower += packed >>> 20;
      if (lines && end > lineStart) pushLine(lines, i, lineStart - start, end - lineStart, digits, upper, lower, punctuation);
      f.length[i] = end - start;
      f.digits[i] = valueDigits + digits;
      f.upper[i] = valueUpper + upper;
      f.lower[i] = valueLower + lower;
      f.wide[i] = valueWide + wide;
      f.punctuation[i] = valuePunctuation | punctuation;
    }
    this.#features = f;
    this.#lines = lines;
    return f;
  }

  /**
   * The lines that may hold a match of r, joined (patterns that never match a
   * line feed and have no ^ or $); the values themselves when no value has a line feed.
   */
  linesFor(r: Requirement): Joined {
    this.features();
    const l = this.#lines;
    if (l === null || isTrivial(r)) return this.joinedFor(r);
    const k = `lines ${r.minLength},${r.digits},${r.upper},${r.lower},${r.punctuation}`;
    let j = this.#joined.get(k);
    if (j) return j;
    const t = this.t;
    const segs: number[] = [];
    const from: number[] = [];
    const at: number[] = [];
    const parts: string[] = [];
    let o = 0;
    for (let i = 0; i < l.seg.length; i++) {
      if (!lineMayMatch(l, i, r)) continue;
      const seg = l.seg[i]!;
      const begin = t.start[seg]! + l.start[i]!;
      segs.push(seg);
      from.push(l.start[i]!);
      at.push(o);
      parts.push(t.texts[t.text[seg]!]!.slice(begin, begin + l.length[i]!));
      o += l.length[i]! + 1;
    }
    at.push(o);
    j = { text: parts.join('\n'), segs, at, from };
    this.#joined.set(k, j);
    return j;
  }

  /** The values that may hold a match of r, joined; shared by detectors with the same requirement. */
  joinedFor(r: Requirement): Joined {
    const k = `${r.minLength},${r.digits},${r.upper},${r.lower},${r.punctuation}`;
    let j = this.#joined.get(k);
    if (j) return j;
    let segs: number[];
    if (isTrivial(r)) {
      segs = this.all();
    } else {
      const f = this.features();
      segs = [];
      for (let i = 0; i < this.t.count; i++) if (mayMatch(f, i, r)) segs.push(i);
    }
    j = join(this.t, segs);
    this.#joined.set(k, j);
    return j;
  }

  /** Values with a letter or any non-ASCII character: the only ones a context word can be in. */
  withLetters(): Joined {
    let j = this.#joined.get('letters');
    if (j) return j;
    const f = this.features();
    const segs: number[] = [];
    for (let i = 0; i < this.t.count; i++) if (f.upper[i]! + f.lower[i]! + f.wide[i]! > 0) segs.push(i);
    j = join(this.t, segs);
    this.#joined.set('letters', j);
    return j;
  }
}

/**
 * Runs the detectors over a table. `rawHits` are the Set hits of the raw body
 * the table was read from, when they can be trusted for the values (no JSON
 * escapes changed the text); otherwise the Set runs over the values here.
 */
export function scanTable(compiled: CompiledDataProtectionOk, t: SegmentTable, rawHits: number[] | null, depth: number): Match[] {
  if (!compiled.set || t.count === 0) return [];
  // Validators (stdnum) report a rejected candidate as an Error: no stack is taken for them, once for the whole scan.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return scanWithHits(compiled, wellFormed(t), rawHits, depth, false);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * RE2 finds nothing at all in a string with a lone surrogate (a "\ud800" escape in JSON is one):
 * such a text, or field name, is scanned with each lone surrogate read as U+FFFD, which keeps
 * every offset.
 */
function wellFormed(t: SegmentTable): SegmentTable {
  let texts: string[] | null = null;
  for (let i = 0; i < t.texts.length; i++) {
    const text = t.texts[i]!;
    if (text.isWellFormed()) continue;
    texts ??= t.texts.slice();
    texts[i] = text.toWellFormed();
  }
  let keys: string[] | null = null;
  for (let i = 0; i < t.count; i++) {
    const key = t.key[i]!;
    if (key.isWellFormed()) continue;
    keys ??= t.key.slice();
    keys[i] = key.toWellFormed();
  }
  return texts === null && keys === null ? t : { ...t, texts: texts ?? t.texts, key: keys ?? t.key };
}

/**
 * The table with every text in its ASCII reading (see look-alikes.ts), and for the texts whose
 * offsets changed (a mark removed, a character outside the BMP read as one unit) where each
 * segment now starts and ends, and the way back to the original offsets.
 */
function asciiReadingOf(t: SegmentTable): { table: SegmentTable; origins: (Int32Array | null)[] | null } {
  let origins: (Int32Array | null)[] | null = null;
  const texts = t.texts.map((text, i) => {
    const reading = asciiReading(text);
    if (reading === null) return text;
    if (reading.origin !== null) (origins ??= new Array<Int32Array | null>(t.texts.length).fill(null))[i] = reading.origin;
    return reading.text;
  });
  if (origins === null) return { table: { ...t, texts }, origins: null };
  const start = t.start.slice();
  const end = t.end.slice();
  const shifted = origins as (Int32Array | null)[];
  // Original offset -> offset in the reading: the first character of the reading at or after it.
  const readingOffsets = shifted.map((origin, i) => {
    if (origin === null) return null;
    const length = t.texts[i]!.length;
    const at = new Int32Array(length + 1);
    let j = 0;
    for (let o = 0; o <= length; o++) {
      while (origin[j]! < o) j++;
      at[o] = j;
    }
    return at;
  });
  for (let s = 0; s < t.count; s++) {
    const at = readingOffsets[t.text[s]!];
    if (!at) continue;
    start[s] = at[t.start[s]!]!;
    end[s] = at[t.end[s]!]!;
  }
  return { table: { ...t, texts, start, end }, origins: shifted };
}

/**
 * A match in a text's ASCII reading, as offsets into the original segment (covering marks removed
 * inside it). A match that was percent-encoded in the original counts as URL-encoded, one spelled
 * with character references as such: like the url decoder's finds, it is redacted whole (masking
 * inside escapes would leave them half-readable).
 */
function originalSpan(m: Match, t: SegmentTable, reading: SegmentTable, origins: (Int32Array | null)[]): Match {
  const textIndex = t.text[m.segment]!;
  const origin = origins[textIndex];
  if (!origin) return m;
  const base = reading.start[m.segment]!;
  const from = t.start[m.segment]!;
  const original = t.texts[textIndex]!;
  const read = reading.texts[textIndex]!;
  let encoding = m.encoding;
  for (let k = base + m.start; k < base + m.end && encoding === null; k++) {
    const c = original.charCodeAt(origin[k]!);
    if (c === 0x25 && read.charCodeAt(k) !== 0x25) encoding = 'url';
    else if (c === 0x26 && read.charCodeAt(k) !== 0x26) encoding = 'character-reference';
  }
  return { ...m, start: origin[base + m.start]! - from, end: Math.min(origin[base + m.end]!, t.end[m.segment]!) - from, encoding };
}

/**
 * The matches of a text as it is and of another reading of it (mapped back onto the same offsets):
 * where both find the same characters the usual overlap rules choose.
 */
export function withReading(plain: Match[], read: Match[]): Match[] {
  if (read.length === 0) return plain;
  if (plain.length === 0) return read;
  return resolveOverlaps([...plain, ...read].sort((a, b) => a.segment - b.segment || a.start - b.start || b.end - a.end));
}

function scanWithHits(compiled: CompiledDataProtectionOk, t: SegmentTable, rawHits: number[] | null, depth: number, mapped: boolean): Match[] {
  const set = compiled.set!;
  const scan = new Scan(compiled, t, depth);
  const entries = compiled.setEntries;
  let hits: number[];
  let valueHits: Set<number> | null = null;
  if (rawHits === null) {
    hits = set.match(scan.joinedFor(noNeed).text);
    valueHits = new Set(hits);
  } else {
    hits = rawHits;
  }
  if (!mapped && hits.some((h) => entries[h]?.kind === 'look-alike')) {
    // The values hold look-alike characters: they are read again in their ASCII reading, the Set
    // runs over that, and what it finds is mapped back onto the original characters. The values as
    // they are are scanned too (a decoder's run of escapes, a word boundary the reading glues away),
    // and where both find the same characters the usual overlap rules choose.
    const { table, origins } = asciiReadingOf(t);
    const read = scanWithHits(compiled, table, null, depth, true);
    const readBack = origins === null ? read : read.map((m) => originalSpan(m, t, table, origins));
    return withReading(scanWithHits(compiled, t, rawHits, depth, true), readBack);
  }
  const keywordHit = hits.some((h) => entries[h]?.kind === 'keyword');
  // Field names: one Set pass over the distinct names (keyword-gated detectors named by a field).
  let keys: string[] = [];
  let keyHits: number[] = [];
  if (keywordHit || rawHits === null) {
    scan.keyIds = new Int32Array(t.count);
    keys = distinctKeys(t, scan.keyIds);
    keyHits = keys.length > 0 ? set.match(keys.join('\n')) : [];
  }
  const keyHitSet = new Set(keyHits);
  if (rawHits === null) {
    for (const h of keyHits) if (!valueHits!.has(h)) hits.push(h);
  } else if (keywordHit) {
    // Which keyword detectors have a context word inside a value. A keyword entry the trusted pass over
    // the body hit and the field names did not can only have hit in a value: no second pass is needed
    // unless some hit entry is in the field names too (then one Set pass over the values with letters).
    const keywordHits = hits.filter((h) => entries[h]?.kind === 'keyword');
    if (keywordHits.some((h) => keyHitSet.has(h))) {
      const letters = scan.withLetters();
      // the words Set holds every keyword entry
      valueHits = new Set(letters.segs.length > 0 ? set.matchWords(letters.text) : []);
    } else {
      valueHits = new Set(keywordHits);
    }
  }
  if (scan.small) {
    // line-free patterns without a punctuation mark to look for (see smallFor)
    const lineFree = hits.filter((h) => {
      const e = entries[h];
      if (e?.kind === 'pattern') return compiled.detectors[e.detector]!.lineFree && markOf(compiled.detectors[e.detector]!.need) === null;
      return e?.kind === 'decoder' && e.lineFree && markOf(e.need) === null && depth < maxDecodeDepth;
    });
    if (lineFree.length >= 2) locate(scan, lineFree);
  }
  // Detectors with a shape of their own first; keyword-gated ones after, so that their candidates
  // inside a match that will be kept anyway are dropped before they are validated (see Covered).
  const runs: number[] = [0];
  for (const hit of hits) {
    const entry = entries[hit];
    // One pattern pass at a time is bounded (one native call over the values it can match): the clock is read between them.
    checkInspectionBudget();
    if (entry?.kind === 'pattern') scanPattern(scan, compiled.detectors[entry.detector]!);
    else if (entry?.kind === 'decoder' && depth < maxDecodeDepth) scanEncoded(scan, entry);
    else continue;
    if (scan.out.length > runs[runs.length - 1]!) runs.push(scan.out.length);
  }
  let covered: Covered | null = null;
  /** The matches so far in order, as Covered was built from them. */
  let ordered: Match[] | null = null;
  for (const hit of hits) {
    const entry = entries[hit];
    if (entry?.kind !== 'keyword') continue;
    checkInspectionBudget();
    covered ??= new Covered((ordered = merged(scan.out.slice(), runs, t.count)));
    scan.covered = covered;
    const d = compiled.detectors[entry.detector]!;
    const seen = new Set<number>();
    if (keyHitSet.has(hit)) scanKeywordInKeys(scan, d, keys, seen);
    if (valueHits?.has(hit)) scanKeywordInValues(scan, d, seen);
    if (scan.out.length > runs[runs.length - 1]!) runs.push(scan.out.length);
  }
  // When the keyword-gated detectors added nothing, the order is the one Covered was built from.
  return resolveOverlaps(ordered !== null && ordered.length === scan.out.length ? ordered : merged(scan.out, runs, t.count));
}

/**
 * The matches of detectors with a shape of their own, sorted. resolveOverlaps
 * never lets a keyword-gated match replace one of them, so a keyword-gated
 * candidate lying inside one that overlaps no other such match is dropped
 * there whatever it is: it is skipped here, before its validator runs (a
 * labelled phone number that the E.164 pattern already found, an SSN field's
 * value that stdnum would check for every national id with "ssn" among its
 * words).
 */
class Covered {
  readonly segment: Int32Array;
  readonly start: Int32Array;
  readonly end: Int32Array;
  readonly alone: Uint8Array;

  constructor(matches: Match[]) {
    const specific = matches.filter((m) => !m.detector.requiresContext);
    const n = specific.length;
    this.segment = new Int32Array(n);
    this.start = new Int32Array(n);
    this.end = new Int32Array(n);
    this.alone = new Uint8Array(n);
    let reach = -1;
    for (let i = 0; i < n; i++) {
      const m = specific[i]!;
      this.segment[i] = m.segment;
      this.start[i] = m.start;
      this.end[i] = m.end;
      if (i > 0 && specific[i - 1]!.segment !== m.segment) reach = -1;
      const next = specific[i + 1];
      this.alone[i] = m.start >= reach && !(next && next.segment === m.segment && next.start < m.end) ? 1 : 0;
      reach = Math.max(reach, m.end);
    }
  }

  /** True when [start, end) of the segment lies inside a match that overlaps no other. */
  has(segment: number, start: number, end: number): boolean {
    let lo = 0;
    let hi = this.segment.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.segment[mid]! < segment || (this.segment[mid] === segment && this.start[mid]! <= start)) {
        at = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return at >= 0 && this.segment[at] === segment && this.end[at]! >= end && this.alone[at] === 1;
  }
}

const noNeed: Requirement = { minLength: 0, digits: 0, upper: 0, lower: 0, punctuation: 0 };

/** A table with at most this many characters of values is small (see Scan.smallFor). */
const smallTable = 16 * 1024;

/**
 * The source of a pattern without its \b and \B assertions: it matches
 * wherever the pattern does (and more), and where it matches depends on the
 * matched characters only, so findAll recovers exact positions with indexOf.
 */
export function withoutWordAssertions(source: string): string {
  let out = '';
  for (const p of patternPieces(source)) if (!(p.escape && !p.inClass && (p.text === '\\b' || p.text === '\\B'))) out += p.text;
  return out;
}

/**
 * Small tables with two or more hit line-free patterns: one RE2 pass of their
 * alternation (without word assertions, so every line where one of them
 * matches has a match of it: matches never span a line feed) finds the lines
 * worth reading; each pattern then runs over those lines only.
 */
function locate(scan: Scan, hits: number[]): void {
  const compiled = scan.compiled;
  const key = hits.join(',');
  let re = compiled.locators.get(key);
  if (re === undefined) {
    const sources = hits.map((h) => {
      const e = compiled.setEntries[h]!;
      if (e.kind === 'decoder') return `(?:${withoutWordAssertions(e.regex.source)})`;
      const d = compiled.detectors[(e as { detector: number }).detector]!;
      return `(?${d.def.caseInsensitive ? 'i' : ''}:${withoutWordAssertions(d.shape.source)})`;
    });
    try {
      re = new RE2(sources.join('|'), 'g');
    } catch {
      re = null;
    }
    if (compiled.locators.size >= 256) compiled.locators.clear();
    compiled.locators.set(key, re);
  }
  if (re === null) return;
  const all = scan.joinedFor(noNeed);
  const spans = findAll(re, all.text, 0);
  const positions: number[] = [];
  for (let i = 0; i < spans.length; i += 2) positions.push(spans[i]!);
  scan.located = linesAt(all, positions);
}

/** Punctuation that a requirement may name, rarest in text first: the one looked for by smallFor. */
const markOrder = '@#$%&=?!*+^~|\\`<>[]{}()"\';_:/,-.';
const markBits = Array.from(markOrder, (c) => punctuationBit[c.charCodeAt(0)]!);

/** The rarest punctuation character every match of r contains, or null. */
function markOf(r: Requirement): string | null {
  if (r.punctuation === 0) return null;
  for (let i = 0; i < markBits.length; i++) if ((r.punctuation & markBits[i]!) !== 0) return markOrder[i]!;
  return null;
}

/** The lines of a join of all values that hold the given positions (ascending), joined. */
function linesAt(all: Joined, positions: number[]): Joined {
  const text = all.text;
  const segs: number[] = [];
  const from: number[] = [];
  const at: number[] = [];
  const parts: string[] = [];
  let o = 0;
  let v = 0;
  let lineEnd = -1;
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i]!;
    if (p <= lineEnd) continue; // in the line already taken
    const lineStart = text.lastIndexOf('\n', p - 1) + 1;
    lineEnd = text.indexOf('\n', p);
    if (lineEnd < 0) lineEnd = text.length;
    while (lineStart >= all.at[v + 1]!) v++;
    segs.push(all.segs[v]!);
    from.push(lineStart - all.at[v]!);
    at.push(o);
    parts.push(text.slice(lineStart, lineEnd));
    o += lineEnd - lineStart + 1;
  }
  at.push(o);
  return { text: parts.join('\n'), segs, at, from };
}

/** The field names, each once, in the order first met ("" left out); ids[i] is segment i's name in that list (-1 for ""). */
function distinctKeys(t: SegmentTable, ids: Int32Array): string[] {
  const index = new Map<string, number>();
  const keys: string[] = [];
  for (let i = 0; i < t.count; i++) {
    const key = t.key[i]!;
    let id = index.get(key);
    if (id === undefined) {
      id = key === '' ? -1 : keys.push(key) - 1;
      index.set(key, id);
    }
    ids[i] = id;
  }
  return keys;
}

/**
 * All matches of a global RE2 as [start, end) pairs. RE2 returns the matched
 * texts in one native call; their positions are recovered with indexOf,
 * checking the \b assertions a pattern starts or ends with (the only context
 * assertions our patterns use), because one exec() per match costs
 * microseconds of native-call overhead each.
 */
function findAll(re: RE2, text: string, base: number, texts?: string[]): number[] {
  if (text.length >= markedMinLength && markable(re) && text.indexOf(matchStart) < 0 && text.indexOf(matchEnd) < 0 && text.isWellFormed()) {
    return findMarked(re, text, base, texts);
  }
  const found = re.match(text) as unknown as string[] | null;
  if (!found) return [];
  const source = re.source;
  const leading = source.startsWith('\\b');
  const trailing = source.endsWith('\\b');
  const out: number[] = [];
  let cursor = 0;
  for (let i = 0; i < found.length; i++) {
    const m = found[i]!;
    if (m.length === 0) continue;
    let pos = text.indexOf(m, cursor);
    while (pos >= 0 && ((leading && !boundaryAt(text, pos)) || (trailing && !boundaryAt(text, pos + m.length)))) pos = text.indexOf(m, pos + 1);
    if (pos < 0) break;
    out.push(pos + base, pos + base + m.length);
    texts?.push(m);
    cursor = pos + m.length;
  }
  return out;
}

/** Characters that mark where each match starts and ends in findMarked's copy of the text. */
const matchStart = '\u0001';
const matchEnd = '\u0002';
/** Shorter texts take findAll's usual path (their few matches cost little either way). */
const markedMinLength = 4096;

const markableByRegex = new WeakMap<RE2, boolean>();

/**
 * True when findAll's positions (indexOf, with the \b checks at either end)
 * are always the ones RE2 matched at: the pattern has no other assertion
 * (\b \B ^ $ \A \z) and no alternative at its top level, and cannot match
 * an empty string. Then whether it matches some characters depends on them
 * and the \b at either end only, so no earlier occurrence of a match's text
 * passing those checks can be skipped by RE2's leftmost search, and
 * findMarked gives the same positions.
 */
function markable(re: RE2): boolean {
  let ok = markableByRegex.get(re);
  if (ok !== undefined) return ok;
  let source = re.source;
  // an escaped backslash and a "b" at the end would still get findAll's \b check
  ok = !source.endsWith('\\\\b');
  if (source.startsWith('\\b')) source = source.slice(2);
  if (source.endsWith('\\b')) source = source.slice(0, -2);
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length && ok; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (next === 'b' || next === 'B' || next === 'A' || next === 'z') ok = false;
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') {
      inClass = true;
      if (source[i + 1] === '^') i++;
      if (source[i + 1] === ']') i++;
    } else if (c === '^' || c === '$') {
      ok = false;
    } else if (c === '(') {
      depth++;
    } else if (c === ')') {
      depth--;
    } else if (c === '|' && depth === 0) {
      ok = false;
    }
  }
  if (ok) {
    try {
      ok = !new RE2(source, re.flags.replace('g', '')).test('');
    } catch {
      ok = false;
    }
  }
  markableByRegex.set(re, ok);
  return ok;
}

/**
 * findAll through one native replace that writes a mark before and after each
 * match: the matches' positions are read off the marks (the k-th match's
 * marks stand 2k characters later than its text), and the native call builds
 * one string instead of one per match. The text holds neither mark.
 */
function findMarked(re: RE2, text: string, base: number, texts?: string[]): number[] {
  const marked = re.replace(text, `${matchStart}$&${matchEnd}`);
  const out: number[] = [];
  let k = 0;
  for (let open = marked.indexOf(matchStart); open >= 0; open = marked.indexOf(matchStart, open + 1)) {
    const close = marked.indexOf(matchEnd, open + 1);
    const start = open - 2 * k;
    k++;
    if (close === open + 1) continue; // an empty match
    out.push(start + base, close - 1 - 2 * (k - 1) + base);
    texts?.push(marked.slice(open + 1, close));
    open = close;
  }
  return out;
}

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function boundaryAt(text: string, i: number): boolean {
  const before = i > 0 && isWordChar(text.charCodeAt(i - 1));
  const after = i < text.length && isWordChar(text.charCodeAt(i));
  return before !== after;
}

/**
 * A vendor token whose checksum fails (GitHub, npm) was not issued by the vendor, whose own secret
 * scanning relies on that checksum: it drops below the default bar (0.6; 0.92 becomes 0.47). A policy
 * with a lower minConfidence still sees it, as a mistyped or made-up token.
 */
const failedChecksumPenalty = 0.45;

function scanPattern(scan: Scan, d: CompiledDetector): void {
  const j = !d.lineFree ? scan.joinedFor(d.need) : scan.small ? scan.smallFor(d.need) : scan.linesFor(d.need);
  if (j.segs.length === 0) return;
  const found: string[] = [];
  const spans = findAll(d.shape, j.text, 0, found);
  const t = scan.t;
  const standalone = standaloneNumberGroups.has(d.def.group);
  const validate = d.def.validate;
  let v = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const at = spans[i]!;
    while (at >= j.at[v + 1]!) v++;
    const valueStart = j.at[v]!;
    const valueLength = j.at[v + 1]! - 1 - valueStart;
    if (spans[i + 1]! - valueStart > valueLength) continue; // runs across the separator: not inside one value
    // offsets in the segment's value (a part may be a line of it)
    const shift = j.from === null ? 0 : j.from[v]!;
    const start = at - valueStart + shift;
    let end = spans[i + 1]! - valueStart + shift;
    const seg = j.segs[v]!;
    if (standalone && gluedToToken(j.text, at, spans[i + 1]!, valueStart, valueStart + valueLength)) continue;
    let candidate: string;
    if (d.def.wholeBlock) {
      const value = valueOf(t, seg);
      end = blockEnd(value, end);
      candidate = value.slice(start, end);
    } else {
      candidate = found[i >> 1]!;
    }
    let confidence = d.def.confidence.base;
    if (validate && !validate(candidate)) {
      if (!d.def.validationBoostsOnly) continue;
      confidence -= failedChecksumPenalty;
    }
    confidence = adjustForContext(d, t, seg, start, confidence, false);
    if (confidence >= d.minConfidence) scan.out.push({ segment: seg, start, end, detector: d, confidence, encoding: null });
  }
}

/** PEM blocks: the secret runs to the END line (or the end of the value). */
function blockEnd(value: string, from: number): number {
  const endMarker = value.indexOf('-----END', from);
  if (endMarker < 0) return value.length;
  const close = value.indexOf('-----', endMarker + 8);
  return close < 0 ? value.length : close + 5;
}

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** True if "-" or "." joins the match to more letters or digits on either side (e.g. 1234-5678-...-a927). */
function gluedToToken(text: string, start: number, end: number, valueStart: number, valueEnd: number): boolean {
  if (start - 2 >= valueStart) {
    const c = text.charCodeAt(start - 1);
    if ((c === 45 || c === 46) && isAlnum(text.charCodeAt(start - 2))) return true;
  }
  if (end + 1 < valueEnd) {
    const c = text.charCodeAt(end);
    if ((c === 45 || c === 46) && isAlnum(text.charCodeAt(end + 1))) return true;
  }
  return false;
}

/**
 * Does the detector's context-word pattern match this field name? Cached per detector. For a
 * detector whose values are assigned to their name, the name must end with the word (assignment.ts).
 */
function keyMatches(d: CompiledDetector, key: string): boolean {
  let r = d.keyCache.get(key);
  if (r === undefined) {
    d.keyword!.lastIndex = 0;
    r = d.keyword!.test(key) && (!d.def.assignment || nameEndsWithWord(key.toLowerCase(), d.keywordsLower));
    d.keyword!.lastIndex = 0;
    if (d.keyCache.size >= cacheLimit) d.keyCache.clear();
    d.keyCache.set(key, r);
  }
  return r;
}

/** A context word names the field: the whole value (up to a limit) is the region. */
function scanKeywordInKeys(scan: Scan, d: CompiledDetector, keys: string[], seen: Set<number>): void {
  const named = new Uint8Array(keys.length);
  let any = false;
  for (let k = 0; k < keys.length; k++) {
    if (keyMatches(d, keys[k]!)) {
      named[k] = 1;
      any = true;
    }
  }
  if (!any) return;
  const t = scan.t;
  const ids = scan.keyIds!;
  const segs: number[] = [];
  const covered = scan.covered;
  for (let i = 0; i < t.count; i++) {
    const id = ids[i]!;
    if (id < 0 || named[id] === 0) continue;
    // A value that one kept match covers whole has no candidate that could survive: not scanned at all.
    if (covered?.has(i, 0, t.end[i]! - t.start[i]!)) continue;
    segs.push(i);
  }
  if (segs.length === 0) return;
  if (d.def.wholeValueWhenKeyMatches) {
    for (const seg of segs) {
      const value = valueOf(t, seg);
      const trimmed = value.trim();
      if (trimmed.length === 0 || trimmed.length > 512) continue;
      const start = value.indexOf(trimmed);
      if (scan.covered?.has(seg, start, start + trimmed.length)) continue;
      if (!d.def.validate || d.def.validate(trimmed)) pushContextMatch(scan, d, seg, start, start + trimmed.length, seen);
    }
    return;
  }
  const limit = keywordRegionLimit * 4;
  const f = isTrivial(d.need) ? null : scan.features();
  const batch: number[] = [];
  for (const seg of segs) {
    if (f && !mayMatch(f, seg, d.need)) continue;
    if (d.anchorFree && t.end[seg]! - t.start[seg]! <= limit) batch.push(seg);
    else regionCandidates(scan, d, seg, 0, Math.min(t.end[seg]! - t.start[seg]!, limit), true, seen);
  }
  if (batch.length === 0) return;
  // The named values are scanned together, in one native call.
  const j = join(t, batch);
  const spans = findAll(d.shape, j.text, 0);
  const crossed = new Set<number>();
  let v = 0;
  const found: number[][] = batch.map(() => []);
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i]!;
    const end = spans[i + 1]!;
    while (start >= j.at[v + 1]!) v++;
    if (end > j.at[v + 1]! - 1) {
      // crosses the separator: every value it touches is scanned on its own
      for (let w = v; w < batch.length && j.at[w]! < end; w++) crossed.add(w);
      continue;
    }
    found[v]!.push(start - j.at[v]!, end - j.at[v]!);
  }
  for (let w = 0; w < batch.length; w++) {
    const seg = batch[w]!;
    if (crossed.has(w)) {
      regionCandidates(scan, d, seg, 0, t.end[seg]! - t.start[seg]!, true, seen);
      continue;
    }
    const c = found[w]!;
    for (let i = 0; i < c.length; i += 2) acceptAndPush(scan, d, seg, c[i]!, c[i + 1]!, j.text.slice(j.at[w]! + c[i]!, j.at[w]! + c[i + 1]!), seen);
  }
}

/** Shape candidates of one region of a value (value offsets), checked and pushed. */
function regionCandidates(scan: Scan, d: CompiledDetector, seg: number, regionStart: number, regionEnd: number, inKey: boolean, seen: Set<number>): void {
  if (regionEnd <= regionStart) return;
  const t = scan.t;
  const s = t.texts[t.text[seg]!]!;
  const base = t.start[seg]!;
  const region = s.slice(base + regionStart, base + regionEnd);
  const candidates = findAll(d.shape, region, regionStart);
  for (let j = 0; j < candidates.length; j += 2) {
    const at = candidates[j]!;
    if (at >= regionEnd) break;
    if (!inKey && at - regionStart > d.contextWindow) break;
    const end = Math.min(candidates[j + 1]!, regionEnd);
    acceptAndPush(scan, d, seg, at, end, s.slice(base + at, base + end), seen);
  }
}

function acceptAndPush(scan: Scan, d: CompiledDetector, seg: number, start: number, end: number, text: string, seen: Set<number>): void {
  if (scan.covered?.has(seg, start, end)) return;
  const accepted = acceptCandidate(d, text);
  if (accepted) pushContextMatch(scan, d, seg, start + accepted.offset, start + accepted.offset + accepted.length, seen);
}

/** Context words inside values: the region after each one. */
function scanKeywordInValues(scan: Scan, d: CompiledDetector, seen: Set<number>): void {
  if (d.keywordSpan === null) return; // its only context words are field names
  const j = scan.withLetters();
  if (j.segs.length === 0) return;
  // Word spans that do not take the character after the word: two context words one separator apart
  // (a field "dea" next to a value "dea AC..."), both count.
  const spans = findAll(d.keywordSpan!, j.text, 0);
  let v = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const kwEnd = spans[i + 1]!;
    // the match may begin with the separator before the value; its last character is in the value
    while (kwEnd - 1 >= j.at[v + 1]!) v++;
    const valueStart = j.at[v]!;
    const valueLength = j.at[v + 1]! - 1 - valueStart;
    if (d.def.assignment) {
      const kwStart = Math.max(spans[i]!, valueStart) + (isAlnum(j.text.charCodeAt(Math.max(spans[i]!, valueStart))) ? 0 : 1);
      assignedCandidate(scan, d, j.segs[v]!, kwStart - valueStart, kwEnd - valueStart, seen);
      continue;
    }
    if (kwEnd < j.text.length && isAlnum(j.text.charCodeAt(kwEnd))) continue;
    const regionStart = Math.min(kwEnd - valueStart, valueLength);
    const regionEnd = Math.min(valueLength, regionStart + d.contextWindow + keywordRegionLimit);
    regionCandidates(scan, d, j.segs[v]!, regionStart, regionEnd, false, seen);
  }
}

/**
 * The value assigned to the name a context word ends (assignment.ts), for a detector whose values
 * follow their name as an assignment. Offsets are in the value.
 */
function assignedCandidate(scan: Scan, d: CompiledDetector, seg: number, nameStart: number, wordEnd: number, seen: Set<number>): void {
  const t = scan.t;
  // Offsets in the segment's text (shared by the document's values; nothing is copied per keyword).
  const text = t.texts[t.text[seg]!]!;
  const base = t.start[seg]!;
  const limit = t.end[seg]!;
  const assigned = assignedValueAt(text, base + nameStart, base + wordEnd, limit, d.keywordsLower, base);
  if (!assigned) return;
  let { start, end } = assigned;
  if (!assigned.quoted) {
    // the detector's value shape, from the value's first character
    const upTo = Math.min(limit, start + maxAssignedValueLength);
    const first = findAll(d.shape, text.slice(start, upTo), start);
    if (first.length === 0 || first[0] !== start) return;
    end = first[1]!;
    while (ampersandContinues(text, end, upTo)) end = unquotedValueEnd(text, end + 1, upTo);
  }
  const value = text.slice(start, end);
  if (isCodeReference(value)) return;
  if (assigned.link === 'weak' && !d.def.assignment!.weakLink(value)) return;
  if (d.def.validate && !d.def.validate(value)) return;
  if (scan.covered?.has(seg, start - base, end - base)) return;
  pushContextMatch(scan, d, seg, start - base, end - base, seen);
}

/** Tries the candidate, then its space-separated sub-runs (longest first), against the validator. */
function acceptCandidate(d: CompiledDetector, text: string): { offset: number; length: number } | null {
  if (!d.def.validate) return { offset: 0, length: text.length };
  if (d.def.validate(text)) return { offset: 0, length: text.length };
  if (!text.includes(' ')) return null;
  const words = text.split(' ');
  if (words.length > 8) return null;
  const offsets: number[] = [];
  let o = 0;
  for (const w of words) {
    offsets.push(o);
    o += w.length + 1;
  }
  for (let span = words.length - 1; span >= 1; span--) {
    for (let i = 0; i + span <= words.length; i++) {
      const piece = words.slice(i, i + span).join(' ');
      if (piece.length >= 4 && d.def.validate(piece)) return { offset: offsets[i]!, length: piece.length };
    }
  }
  return null;
}

function pushContextMatch(scan: Scan, d: CompiledDetector, seg: number, start: number, end: number, seen: Set<number>): void {
  const key = seg * 4294967296 + start;
  if (seen.has(key)) return;
  seen.add(key);
  const confidence = adjustForContext(d, scan.t, seg, start, d.def.confidence.base, true);
  if (confidence >= d.minConfidence) scan.out.push({ segment: seg, start, end, detector: d, confidence, encoding: null });
}

/** Bit 1: a context word is near; bit 2: a negative word is near. */
/**
 * Context words before a match: a keyword anywhere in the field name or the text before it (bit 1);
 * a negative word (bit 2) in the field name, or naming the match itself: right before it, with at
 * most a label and separators between ("order 4539...", "Invoice no.: 4539..."). A negative word
 * elsewhere in the text says nothing of this value: "order 100231 charged to 4539 1488 0343 6467",
 * or an order number on the line before, must not hide the card.
 */
function contextFlags(d: CompiledDetector, before: string, label: string | null = null): number {
  let flags = 0;
  for (const k of d.keywordsLower) {
    if (before.includes(k)) {
      flags |= 1;
      break;
    }
  }
  const negativeIn = label === null ? before : label;
  for (const k of d.negativesLower) {
    if (label === null ? negativeIn.includes(k) : negativeIn.endsWith(k)) {
      flags |= 2;
      break;
    }
  }
  return flags;
}

/** How far before a match a word naming it is looked for. */
const labelLookback = 32;
/** Words that label the number after them. */
const labelWords = new Set(['number', 'num', 'no', 'nr', 'id', 'ref', 'code']);

/**
 * The text right before a match with the separators (whitespace and : # = . - _ ( ) and label words
 * ("number", "no", standing alone) taken off its end, one at a time from the end: a word is the
 * whole run of word characters [A-Za-z0-9_] before the point, and only taken when what follows it
 * in the line is not a word character.
 */
export function labelBefore(window: string): string {
  const line = window.slice(Math.max(window.lastIndexOf('\n') + 1, window.length - labelLookback));
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (isLabelSeparator(c)) {
      end--;
      continue;
    }
    let start = end;
    while (start > 0 && isWordChar(line.charCodeAt(start - 1))) start--;
    if (start === end || (end < line.length && isWordChar(line.charCodeAt(end))) || !labelWords.has(line.slice(start, end))) break;
    end = start;
  }
  return line.slice(0, end);
}

function isLabelSeparator(c: number): boolean {
  return c === 58 || c === 35 || c === 61 || c === 46 || c === 45 || c === 95 || c === 40 || isWhitespace(c);
}

/** What \s matches in a JavaScript regular expression. */
function isWhitespace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

function adjustForContext(d: CompiledDetector, t: SegmentTable, seg: number, start: number, confidence: number, contextKnown: boolean): number {
  if (d.keywordsLower.length === 0 && d.negativesLower.length === 0) return round(confidence + (contextKnown ? d.def.confidence.contextBoost : 0));
  const key = t.key[seg]!;
  let flags: number;
  if (start === 0) {
    // Only the field name is before the match: the answer is the same for every value of that field.
    const cached = d.contextCache.get(key);
    if (cached === undefined) {
      flags = contextFlags(d, (key + ' ').toLowerCase());
      if (d.contextCache.size >= cacheLimit) d.contextCache.clear();
      d.contextCache.set(key, flags);
    } else {
      flags = cached;
    }
  } else {
    const base = t.start[seg]!;
    const s = t.texts[t.text[seg]!]!;
    const window = s.slice(base + Math.max(0, start - contextLookback), base + start).toLowerCase();
    const keyLower = key.toLowerCase();
    flags = contextFlags(d, `${keyLower} ${window}`, labelBefore(window));
    // The field name qualifies every value in it ("order_id": ...).
    if ((flags & 2) === 0 && d.negativesLower.some((k) => keyLower.includes(k))) flags |= 2;
  }
  let c = confidence;
  if (contextKnown || (flags & 1) !== 0) c += d.def.confidence.contextBoost;
  if ((flags & 2) !== 0) c -= d.def.confidence.negativePenalty;
  return round(c);
}

function round(c: number): number {
  return Math.min(0.99, Math.max(0, Math.round(c * 100) / 100));
}

function scanEncoded(scan: Scan, entry: Extract<SetEntry, { kind: 'decoder' }>): void {
  const j = !entry.lineFree ? scan.joinedFor(entry.need) : scan.small ? scan.smallFor(entry.need) : scan.linesFor(entry.need);
  if (j.segs.length === 0) return;
  const spans = findAll(entry.regex, j.text, 0);
  const t = scan.t;
  let v = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const at = spans[i]!;
    while (at >= j.at[v + 1]!) v++;
    const valueStart = j.at[v]!;
    if (spans[i + 1]! > j.at[v + 1]! - 1) continue;
    let from = at;
    let decoded: string | null = null;
    if (entry.decoder === 'base64') {
      // The run may begin with "/", "-" or "_" pieces (URL-safe base64 whose first characters hold one):
      // the whole run is tried first, then from the stretch the pattern found (after a path, a dashed name).
      const whole = base64RunStart(j.text, at, valueStart);
      if (whole < at) decoded = decodeBase64Run(j.text.slice(whole, spans[i + 1]!));
      if (decoded !== null) from = whole;
      else decoded = decodeBase64Run(j.text.slice(at, spans[i + 1]!));
    } else {
      decoded = decode(entry.decoder, j.text.slice(at, spans[i + 1]!));
    }
    if (decoded === null) continue;
    const raw = j.text.slice(from, spans[i + 1]!);
    const seg = j.segs[v]!;
    const inner = scanSegments(scan.compiled, [{ key: t.key[seg]!, value: decoded }], scan.depth + 1);
    if (inner.length === 0) continue;
    const start = from - valueStart + (j.from === null ? 0 : j.from[v]!);
    const best = inner.reduce((a, b) => (b.confidence > a.confidence ? b : a));
    scan.out.push({ segment: seg, start, end: start + raw.length, detector: best.detector, confidence: best.confidence, encoding: entry.decoder });
  }
}

/** Where the run of base64 characters (either alphabet) holding `at` begins, not before `limit`. */
function base64RunStart(text: string, at: number, limit: number): number {
  let i = at;
  while (i > limit) {
    const c = text.charCodeAt(i - 1);
    if (!(isAlnum(c) || c === 43 || c === 47 || c === 45 || c === 95)) break;
    i--;
  }
  return i;
}

/**
 * A base64 run's text, or null. Only runs with a capital and a small letter or a digit are
 * decoded (a word in capitals, a lowercase name or a number is no base64 of text), and only
 * lengths that are base64 (4n + 1 characters never is); one alphabet per run.
 */
function decodeBase64Run(raw: string): string | null {
  let upper = false;
  let lowerOrDigit = false;
  let standard = false;
  let urlSafe = false;
  let length = raw.length;
  while (length > 0 && raw.charCodeAt(length - 1) === 61) length--;
  for (let i = 0; i < length; i++) {
    const k = charKind[raw.charCodeAt(i)];
    if (k === 2) upper = true;
    else if (k === 1 || k === 3) lowerOrDigit = true;
    else {
      const c = raw.charCodeAt(i);
      if (c === 43 || c === 47) standard = true;
      else urlSafe = true;
    }
  }
  if (!upper || !lowerOrDigit || (standard && urlSafe) || length % 4 === 1) return null;
  return decode('base64', raw);
}

/** The text an encoded run stands for, or null when it decodes to too little or to bytes that are not mostly printable. */
export function decode(decoder: 'base64' | 'hex' | 'url', raw: string): string | null {
  let bytes: Buffer;
  if (decoder === 'hex') bytes = Buffer.from(raw, 'hex');
  else if (decoder === 'base64') bytes = Buffer.from(raw, 'base64');
  else {
    try {
      return decodeURIComponent(raw);
    } catch {
      return null;
    }
  }
  if (bytes.length < 8) return null;
  const text = bytes.toString('utf8');
  let printable = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 32 && c < 127) || c === 10 || c === 13 || c === 9 || (c > 160 && c !== 0xfffd)) printable++;
  }
  return printable / text.length >= 0.9 ? text : null;
}

function before(a: Match, b: Match): boolean {
  return a.segment < b.segment || (a.segment === b.segment && (a.start < b.start || (a.start === b.start && a.end > b.end)));
}

/**
 * The matches in (segment, start, longest first) order. Each detector adds a
 * run that is mostly in order already: runs are sorted if needed, then merged.
 */
function merged(matches: Match[], runs: number[], segments: number): Match[] {
  if (matches.length < 2) return matches;
  if (matches.length * 8 >= segments) return bySegment(matches, segments);
  const lists: Match[][] = [];
  for (let r = 0; r + 1 < runs.length; r++) {
    const list = matches.slice(runs[r], runs[r + 1]);
    for (let i = 1; i < list.length; i++) {
      if (before(list[i]!, list[i - 1]!)) {
        list.sort((a, b) => a.segment - b.segment || a.start - b.start || b.end - a.end);
        break;
      }
    }
    lists.push(list);
  }
  // pairwise merges, earlier runs on the left, so ties keep the order a stable sort would
  let level = lists;
  while (level.length > 1) {
    const next: Match[][] = [];
    for (let l = 0; l < level.length; l += 2) next.push(l + 1 < level.length ? mergeTwo(level[l]!, level[l + 1]!) : level[l]!);
    level = next;
  }
  return level[0]!;
}

/**
 * The same order as merged() (which is a stable sort of the runs one after
 * the other) for many matches: a stable counting sort by segment, then a
 * stable sort of each segment's matches that are not in order already.
 */
function bySegment(matches: Match[], segments: number): Match[] {
  const next = new Int32Array(segments + 1);
  for (let i = 0; i < matches.length; i++) next[matches[i]!.segment + 1]!++;
  for (let s = 0; s < segments; s++) next[s + 1]! += next[s]!;
  const out: Match[] = new Array(matches.length);
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    out[next[m.segment]!++] = m;
  }
  // after the loop next[s] is where segment s ends
  let from = 0;
  while (from < out.length) {
    const seg = out[from]!.segment;
    const to = next[seg]!;
    for (let i = from + 1; i < to; i++) {
      if (before(out[i]!, out[i - 1]!)) {
        const sorted = out.slice(from, to).sort((a, b) => a.start - b.start || b.end - a.end);
        for (let k = 0; k < sorted.length; k++) out[from + k] = sorted[k]!;
        break;
      }
    }
    from = to;
  }
  return out;
}

function mergeTwo(a: Match[], b: Match[]): Match[] {
  const out: Match[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = before(b[j]!, a[i]!) ? b[j++]! : a[i++]!;
  while (i < a.length) out[o++] = a[i++]!;
  while (j < b.length) out[o++] = b[j++]!;
  return out;
}

/** Keeps the strongest match where matches overlap in the same segment (matches in merged() order). */
function resolveOverlaps(matches: Match[]): Match[] {
  if (matches.length < 2) return matches;
  const kept: Match[] = [];
  for (const m of matches) {
    const last = kept[kept.length - 1];
    if (last && last.segment === m.segment && m.start < last.end) {
      // A detector with a shape of its own (a vendor token, a card) names the data better than a
      // keyword-gated catch-all over the same text, whatever the catch-all's context boost.
      const specific = Number(!m.detector.requiresContext) - Number(!last.detector.requiresContext);
      const better = specific > 0 || (specific === 0 && (m.confidence > last.confidence || (m.confidence === last.confidence && m.end - m.start > last.end - last.start)));
      if (better) kept[kept.length - 1] = m;
      continue;
    }
    kept.push(m);
  }
  return kept;
}
