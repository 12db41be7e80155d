// The spans of a request that could spell a value its session remembers, found
// without the detectors. A detector wants context and confidence (a card word
// nearby, separators where they belong); whoever moves a value on purpose
// leaves them out: the SSN without dashes, the card with underscores, the email
// as `jane.doe at example.org`, the key in lower case, the card in base64.
// Remembered values are fingerprinted in canonical form (fingerprint.ts), so
// any span whose letters and digits, in lower case, are those of a remembered
// value is that value.
//
// A span starts and ends where a run of letters or of digits starts and ends
// (so 6467 in 94539 1488 0343 6467 is never the end of a card that starts in the
// middle of 94539), and may cross gaps of up to three other characters and the
// words "at" and "dot" standing alone. Only spans of the lengths and kinds (all
// digits, or with letters) of the values the destination may not receive are
// tried, each by its probe first, and by its fingerprint only when the probe is
// one the session holds. Base64 and hex runs are decoded and searched too; URL
// escapes of ASCII are read by the ASCII reading (look-alikes.ts).
//
// Bounded per request (spans probed, fingerprints computed, runs decoded);
// past a bound the rest of the request is left to the detectors. Linear in the
// request's size times the number of distinct remembered lengths.
import { fingerprintOfCanonical, keyPrefix, lowerUnit, maxCanonicalLength, probeKey, probeOf, valueCharacterKind } from './fingerprint.ts';
import type { RestrictedValues } from './flow.ts';
import { readAsAscii } from './look-alikes.ts';
import { decode } from './scan.ts';

/** Spans probed per request (~50-150 ns each): a worst-case request costs tens of milliseconds, not more. */
export const maxSpansPerRequest = 200_000;
/** Fingerprints computed per request (each a native SHA3 call, ~3 µs): a probe matches by chance about once in 2^32 / (values remembered). */
export const maxFingerprintsPerRequest = 256;
/** Base64 and hex runs decoded per request. */
export const maxDecodedRunsPerRequest = 256;

/** Characters between two runs that a span may cross (`4539 - 1488`, `jane.doe`, `123 45 6788`). */
const maxGap = 3;
/** Encoded inside encoded is followed this deep. */
const maxDecodeDepth = 2;
/** Twelve base64 characters are nine bytes: the shortest remembered value (minCanonicalLength) with room for one separator. */
const minEncodedRun = 12;
const connectorWords = new Set(['at', 'dot']);

interface Search {
  prefix: string;
  probeKey: Int32Array;
  /** The lengths to try, shortest first, and the kinds of each (as in RestrictedValues). */
  spanLengths: Int32Array;
  spanKinds: Int32Array;
  probes: ReadonlyMap<number, number>;
  spans: number;
  fingerprints: number;
  decoded: number;
  found: Set<string>;
}

/** Fingerprints of the spans of `texts` that spell one of the session's remembered values (by probe), for FlowTracker.checkRequest. */
export function spannedFingerprints(key: Buffer, texts: Iterable<string>, restricted: RestrictedValues): string[] {
  const lengths = [...restricted.lengths].filter(([length]) => length <= maxCanonicalLength).sort((a, b) => a[0] - b[0]);
  if (lengths.length === 0) return [];
  const search: Search = { prefix: keyPrefix(key), probeKey: probeKey(key), spanLengths: Int32Array.from(lengths, ([length]) => length), spanKinds: Int32Array.from(lengths, ([, kinds]) => kinds), probes: restricted.probes, spans: 0, fingerprints: 0, decoded: 0, found: new Set() };
  for (const text of texts) if (!searchText(search, text, 0)) break;
  return [...search.found];
}

/**
 * Searches one text; false once a bound is reached. One pass finds the runs of letters and of digits
 * (and the base64 runs to decode); a second lowers each run into the canonical text and tries the
 * spans that end with it.
 */
function searchText(search: Search, original: string, depth: number): boolean {
  const text = readAsAscii(original);
  const n = text.length;
  const runStart = new Int32Array(n);
  const runEnd = new Int32Array(n);
  const encoded: number[] = [];
  let runs = 0;
  let runFrom = 0;
  let kind = 0;
  let encodedFrom = -1;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0;
    const k = i < n ? valueCharacterKind(c) : 0;
    // Runs of the base64 alphabet (URL-safe too) long enough to decode to a value.
    if (c < 128 && (k !== 0 || c === 43 || c === 47 || c === 95 || c === 45)) {
      if (encodedFrom < 0) encodedFrom = i;
    } else if (encodedFrom >= 0) {
      if (i - encodedFrom >= minEncodedRun) encoded.push(encodedFrom, i);
      encodedFrom = -1;
    }
    if (k === kind) continue;
    if (kind !== 0) {
      runStart[runs] = runFrom;
      runEnd[runs++] = i;
    }
    runFrom = i;
    kind = k;
  }
  if (runs > 0 && !searchRuns(search, text, runStart, runEnd, runs)) return false;
  if (depth >= maxDecodeDepth) return true;
  for (let e = 0; e < encoded.length; e += 2) {
    if (search.decoded >= maxDecodedRunsPerRequest) return false;
    let end = encoded[e + 1]!;
    const raw = text.slice(encoded[e]!, end);
    const hex = isHexRun(raw);
    if (!hex && raw.length % 4 === 1) continue;
    while (end < n && text.charCodeAt(end) === 61 && end - encoded[e + 1]! < 2) end++;
    search.decoded++;
    const decoded = decode(hex ? 'hex' : 'base64', hex ? raw : text.slice(encoded[e]!, end));
    if (decoded !== null && !searchText(search, decoded, depth + 1)) return false;
  }
  return true;
}

/** Pairs of hex digits, at least 8. */
function isHexRun(raw: string): boolean {
  if (raw.length < 16 || raw.length % 2 !== 0) return false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i) | 0x20;
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function searchRuns(search: Search, text: string, runStart: Int32Array, runEnd: Int32Array, runs: number): boolean {
  const canonical = new Uint16Array(text.length);
  // Where a span may start in the canonical text: the letters before that place, plus one (0: no run starts there).
  const startMark = new Int32Array(text.length + 1);
  const { spanLengths, spanKinds, probes, probeKey: key } = search;
  let length = 0;
  let letters = 0;
  let chainStart = 0;
  for (let r = 0; r < runs; r++) {
    const start = runStart[r]!;
    const end = runEnd[r]!;
    const gap = r === 0 ? maxGap + 1 : start - runEnd[r - 1]!;
    const isLetters = valueCharacterKind(text.charCodeAt(start)) === 2;
    // "at" or "dot" standing alone between two runs (`jane.doe at example dot org`, `jane [at] example.org`) joins them.
    if (isLetters && end - start <= 3 && gap > 0 && gap <= maxGap && r + 1 < runs) {
      const after = runStart[r + 1]! - end;
      if (after > 0 && after <= maxGap && connectorWords.has(text.slice(start, end).toLowerCase())) continue;
    }
    // A gap wider than maxGap ends the chain of runs a span may cross.
    if (gap > maxGap) chainStart = length;
    startMark[length] = letters + 1;
    for (let i = start; i < end; i++) canonical[length++] = lowerUnit(text.charCodeAt(i));
    if (isLetters) letters += end - start;
    // The spans ending here, of each length a barred value has, starting where a run of this chain starts.
    const longest = length - chainStart;
    for (let l = 0; l < spanLengths.length; l++) {
      const spanLength = spanLengths[l]!;
      if (spanLength > longest) break;
      const from = length - spanLength;
      const mark = startMark[from]!;
      if (mark === 0 || (spanKinds[l]! & (letters === mark - 1 ? 1 : 2)) === 0) continue;
      if (++search.spans > maxSpansPerRequest) return false;
      if (!probes.has(probeOf(key, canonical, from, length))) continue;
      if (++search.fingerprints > maxFingerprintsPerRequest) return false;
      search.found.add(fingerprintOfCanonical(search.prefix, String.fromCharCode(...canonical.subarray(from, length))));
    }
  }
  return true;
}

/**
 * The texts of a JSON value: each property name on its own, and its strings and numbers in document
 * order, joined by a space into one text. A value split over neighbouring fields
 * (`{"a": "4539 1488", "b": "0343 6467"}`) is then spelled again, across a gap of one character;
 * a span inside one value is a span of the joined text as before.
 */
export function textsOfJson(value: unknown): string[] {
  const names: string[] = [];
  const values: string[] = [];
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') values.push(v);
    else if (typeof v === 'number' || typeof v === 'bigint') values.push(String(v));
    else if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        names.push(entries[i]![0]);
        stack.push(entries[i]![1]);
      }
    }
  }
  if (values.length > 0) names.push(values.join(' '));
  return names;
}

/** The texts of a raw body: those of its JSON value when it is JSON (escapes read), else the body as one text. */
export function textsOfBody(body: Buffer): string[] {
  const text = body.toString('utf8');
  const first = text.trimStart().charCodeAt(0);
  if (first === 0x7b || first === 0x5b) {
    try {
      return textsOfJson(JSON.parse(text));
    } catch {
      // not JSON after all: searched as text
    }
  }
  return [text];
}
