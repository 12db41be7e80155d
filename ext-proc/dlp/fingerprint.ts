// Fingerprints of sensitive values, for data-flow control. A value is hashed in
// its canonical form: its ASCII reading (look-alikes.ts), letters and digits
// only, lower case. So `4539 1488 0343 6467`, `4539_1488_0343_6467` and
// `4539148803436467` are one value, as are `jane.doe@example.org` and
// `JANE.DOE at example.org`, and an access key in either case. The form forgets
// what never tells two values of one kind apart (separators, case); it keeps
// what does (every letter and digit, in order).
//
// A value long and varied enough (canonicalShape) also gets a probe: a keyed
// 32-bit hash of the same form, cheap enough to compute for every span of a
// request that could spell a remembered value (flow-candidates.ts). A probe
// only narrows the search; the fingerprint decides.
import { hash } from 'node:crypto';
import { readAsAscii } from './look-alikes.ts';

/** Shorter canonical forms are matched only when a detector finds them: too many spans of prose or ids would spell them by chance. */
export const minCanonicalLength = 8;
/** Longer ones too: a span of a request is not followed further than this. */
export const maxCanonicalLength = 128;
/** Fewer distinct characters (`11111111`) is not a value worth matching outside its detector. */
const minDistinctCharacters = 3;

/** How a value can be looked for in a request without its detector. */
export interface CanonicalShape {
  /** Characters of the canonical form. */
  length: number;
  digitsOnly: boolean;
  /** Keyed 32-bit hash of the canonical form (probeOf). */
  probe: number;
}

const letterOrDigit = /[\p{L}\p{N}]/u;
/** Whether each code point is a letter or digit, by block of 256 code points (null: not yet met). */
const letterOrDigitBlocks: (Uint8Array | null)[] = new Array(0x1100).fill(null);

/**
 * A letter or digit of any script (\p{L} or \p{N}). A block's answers are worked out the first time
 * one of its code points is met, from the code points themselves: the regular expression never reads
 * the text.
 */
export function isUnicodeLetterOrDigit(codePoint: number): boolean {
  const b = codePoint >> 8;
  let block = letterOrDigitBlocks[b];
  if (!block) {
    block = new Uint8Array(256);
    for (let i = 0; i < 256; i++) block[i] = letterOrDigit.test(String.fromCodePoint((b << 8) | i)) ? 1 : 0;
    letterOrDigitBlocks[b] = block;
  }
  return block[codePoint & 255] === 1;
}

/**
 * What a UTF-16 unit of an ASCII reading is in a canonical form: 0 a separator,
 * 1 a digit, 2 a letter. Letters and digits of other scripts count as letters
 * (their digits were read as ASCII ones already); surrogates separate.
 */
export function valueCharacterKind(c: number): number {
  let kind = kindOfUnit[c]!;
  if (kind === 0) kindOfUnit[c] = kind = c < 128 ? (c >= 48 && c <= 57 ? 2 : (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ? 3 : 1) : c >= 0xd800 && c <= 0xdfff ? 1 : isUnicodeLetterOrDigit(c) ? 3 : 1;
  return kind - 1;
}

/** valueCharacterKind + 1 by unit, filled as units are met (0: not yet). */
const kindOfUnit = new Uint8Array(0x10000);

const lowerOfUnit = new Map<number, number>();

/** A unit of a letter or digit in lower case, unit by unit (a letter whose lower case is longer stays as it is), so a span lowers the same alone or in its text. */
export function lowerUnit(c: number): number {
  if (c < 128) return c >= 65 && c <= 90 ? c + 32 : c;
  let lower = lowerOfUnit.get(c);
  if (lower === undefined) {
    const s = String.fromCharCode(c).toLowerCase();
    lower = s.length === 1 ? s.charCodeAt(0) : c;
    if (lowerOfUnit.size < 4096) lowerOfUnit.set(c, lower);
  }
  return lower;
}

/** The canonical form of a value: its ASCII reading, letters and digits only, in lower case. */
export function canonicalForm(value: string): string {
  const text = readAsAscii(value);
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (valueCharacterKind(c) !== 0) out += String.fromCharCode(lowerUnit(c));
  }
  return out;
}

const prefixByKey = new WeakMap<Buffer, string>();

/** The key as the hash input's prefix (hex, then NUL), per key. */
export function keyPrefix(key: Buffer): string {
  let p = prefixByKey.get(key);
  if (p === undefined) prefixByKey.set(key, (p = key.toString('hex') + '\0'));
  return p;
}

/**
 * A keyed hash of a canonical form: SHA3-256 over the secret key and the form,
 * first 128 bits in hex. The key is a prefix, which is sound for SHA-3 (no length
 * extension; KMAC builds on the same property) and costs one short native hash,
 * a fraction of an HMAC object's setup. Fingerprints only ever meet fingerprints
 * of the same key (one per process, or one shared by the replicas).
 */
export function fingerprintOfCanonical(prefix: string, canonical: string): string {
  return (hash('sha3-256', prefix + canonical, 'hex') as string).slice(0, 32);
}

/** The fingerprint of a value as it was written. */
export function fingerprint(key: Buffer, value: string): string {
  return fingerprintOfCanonical(keyPrefix(key), canonicalForm(value));
}

const probeKeyByKey = new WeakMap<Buffer, Int32Array>();

/** The probe's 64-bit key, derived from the fingerprint key (never the key itself). */
export function probeKey(key: Buffer): Int32Array {
  let k = probeKeyByKey.get(key);
  if (k === undefined) {
    const derived = hash('sha3-256', keyPrefix(key) + 'probe', 'buffer') as Buffer;
    probeKeyByKey.set(key, (k = new Int32Array([derived.readInt32LE(0), derived.readInt32LE(4)])));
  }
  return k;
}

/** Scratch for a canonical form's units while its probe is computed (canonical forms are at most maxCanonicalLength). */
const shapeUnits = new Uint16Array(maxCanonicalLength);

/** The shape of a canonical form, or null when it is too short or too uniform to look for without its detector. */
export function canonicalShape(key: Buffer, canonical: string): CanonicalShape | null {
  const length = canonical.length;
  if (length < minCanonicalLength || length > maxCanonicalLength) return null;
  let digitsOnly = true;
  // minDistinctCharacters is 3: the first character, and the first two that differ from those before them.
  const first = canonical.charCodeAt(0);
  let second = -1;
  let distinct = 1;
  for (let i = 0; i < length; i++) {
    const c = canonical.charCodeAt(i);
    shapeUnits[i] = c;
    if (c < 48 || c > 57) digitsOnly = false;
    if (distinct < minDistinctCharacters && c !== first && c !== second) {
      if (second < 0) second = c;
      distinct++;
    }
  }
  if (distinct < minDistinctCharacters) return null;
  return { length, digitsOnly, probe: probeOf(probeKey(key), shapeUnits, 0, length) };
}

/**
 * The probe of units[start, end): a keyed 32-bit hash of the UTF-16 units, two
 * to a word, mixed by the add-rotate-xor rounds of HalfSipHash (2 per word, 4 to
 * finish). It runs in JavaScript on 32-bit integers: for a span of twenty
 * characters it costs a few percent of one native SHA3 call, which is what lets
 * a request be searched for every remembered value. It is keyed, so without the
 * key a probe does not tell which value it came from; it is 32 bits, so it may
 * collide, and a probe that matches is only ever a reason to compute the
 * fingerprint.
 */
export function probeOf(key: Int32Array, units: Uint16Array, start: number, end: number): number {
  let v0 = key[0]!;
  let v1 = key[1]!;
  let v2 = 0x6c796765 ^ v0;
  let v3 = 0x74656462 ^ v1;
  const words = (end - start) >>> 1;
  // Each word, then the last (the odd unit and the length), then the finish: one copy of the round.
  for (let w = 0; w <= words + 1; w++) {
    let m = 0;
    let rounds = 2;
    if (w < words) m = units[start + 2 * w]! | (units[start + 2 * w + 1]! << 16);
    else if (w === words) m = ((end - start) << 24) | ((end - start) % 2 === 1 ? units[end - 1]! : 0);
    else {
      v2 ^= 0xff;
      rounds = 4;
    }
    v3 ^= m;
    for (let r = 0; r < rounds; r++) {
      v0 = (v0 + v1) | 0;
      v1 = (v1 << 5) | (v1 >>> 27);
      v1 ^= v0;
      v0 = (v0 << 16) | (v0 >>> 16);
      v2 = (v2 + v3) | 0;
      v3 = (v3 << 8) | (v3 >>> 24);
      v3 ^= v2;
      v0 = (v0 + v3) | 0;
      v3 = (v3 << 7) | (v3 >>> 25);
      v3 ^= v0;
      v2 = (v2 + v1) | 0;
      v1 = (v1 << 13) | (v1 >>> 19);
      v1 ^= v2;
      v2 = (v2 << 16) | (v2 >>> 16);
    }
    v0 ^= m;
  }
  return (v1 ^ v3) >>> 0;
}
