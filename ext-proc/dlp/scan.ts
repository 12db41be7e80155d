// The scanning core: one RE2.Set pass over all text of a body (as one UTF-8
// Buffer), then only the detectors whose pattern or keywords hit are re-run for
// positions. Pure: text in, candidate matches out. Never returns matched text.
import type RE2 from 're2';
import { standaloneNumberGroups, type CompiledDataProtectionOk, type CompiledDetector } from './compile.ts';

/** One piece of text to scan: a JSON string value with the name of its field (the context). */
export interface TextSegment {
  key: string;
  value: string;
}

export interface Match {
  segment: number;
  /** UTF-16 offsets inside the segment value. */
  start: number;
  end: number;
  detector: CompiledDetector;
  confidence: number;
  /** Set when the value was found inside a base64, hex or URL-encoded run; start/end cover that run. */
  encoding: 'base64' | 'hex' | 'url' | null;
}

/** How deep encoded-inside-encoded segments are followed. */
const maxDecodeDepth = 2;
/** Characters before a match searched for context and negative words. */
const contextLookback = 64;
/** Longest keyword-gated region scanned after a keyword. */
const keywordRegionLimit = 320;

interface Layout {
  /** All segments joined as "key\tvalue\n..."; offsets below are UTF-16 offsets into it. */
  text: string;
  buffer: Buffer;
  keyStart: Int32Array;
  valueStart: Int32Array;
  valueEnd: Int32Array;
}

function layout(segments: TextSegment[]): Layout {
  const n = segments.length;
  const keyStart = new Int32Array(n);
  const valueStart = new Int32Array(n);
  const valueEnd = new Int32Array(n);
  const parts: string[] = new Array(n);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    keyStart[i] = offset;
    valueStart[i] = offset + s.key.length + 1;
    valueEnd[i] = valueStart[i]! + s.value.length;
    offset = valueEnd[i]! + 1;
    parts[i] = `${s.key}\t${s.value}`;
  }
  const text = parts.join('\n');
  return { text, buffer: Buffer.from(text, 'utf8'), keyStart, valueStart, valueEnd };
}

function segmentAt(l: Layout, offset: number): number {
  let lo = 0;
  let hi = l.keyStart.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (l.keyStart[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
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
 * All matches of a global RE2 as UTF-16 [start, end) pairs. RE2 returns the
 * matched texts in one native call; their positions are recovered with
 * indexOf, checking the \b assertions a pattern starts or ends with (the only
 * context assertions our patterns use), because one exec() per match costs
 * microseconds of native-call overhead each.
 */
function findAll(re: RE2, input: string, text: string, base: number, from: number): number[] {
  const found = re.match(input) as unknown as string[] | null;
  if (!found) return [];
  const source = re.source;
  const leading = source.startsWith('\\b');
  const trailing = source.endsWith('\\b');
  const out: number[] = [];
  let cursor = from;
  for (const f of found) {
    const m = f;
    if (m.length === 0) continue;
    let pos = text.indexOf(m, cursor);
    while (pos >= 0 && ((leading && !boundaryAt(text, pos)) || (trailing && !boundaryAt(text, pos + m.length)))) pos = text.indexOf(m, pos + 1);
    if (pos < 0) break;
    out.push(pos - base, pos - base + m.length);
    cursor = pos + m.length;
  }
  return out;
}

export function scanSegments(compiled: CompiledDataProtectionOk, segments: TextSegment[], depth = 0): Match[] {
  if (!compiled.set || segments.length === 0) return [];
  const l = layout(segments);
  const hits = compiled.set.match(l.buffer);
  if (hits.length === 0) return [];
  return scanHits(compiled, l, segments, hits, depth);
}

/**
 * Cheap rejection for a raw body whose Set hits are only look-alikes (a UUID
 * group of 12 digits, a hash): re-runs the hit patterns over the raw bytes and
 * says whether any candidate survives validation. Keyword and escape hits are
 * not judged here (context may sit in a field name far away): they return true.
 */
export function rawBodyMayMatch(compiled: CompiledDataProtectionOk, body: Buffer, hits: number[]): boolean {
  if (hits.some((h) => compiled.setEntries[h]?.kind === 'keyword' || compiled.setEntries[h]?.kind === 'escape')) return true;
  const text = body.toString('utf8');
  const l: Layout = {
    text,
    buffer: body,
    keyStart: Int32Array.of(0),
    valueStart: Int32Array.of(0),
    valueEnd: Int32Array.of(text.length),
  };
  return scanHits(compiled, l, [{ key: '', value: text }], hits, 0).length > 0;
}

function scanHits(compiled: CompiledDataProtectionOk, l: Layout, segments: TextSegment[], hits: number[], depth: number): Match[] {
  const out: Match[] = [];
  for (const hit of hits) {
    const entry = compiled.setEntries[hit];
    if (!entry) continue;
    if (entry.kind === 'pattern') scanPattern(compiled.detectors[entry.detector]!, l, segments, out);
    else if (entry.kind === 'keyword') scanKeyword(compiled.detectors[entry.detector]!, l, segments, out);
    else if (entry.kind === 'decoder' && depth < maxDecodeDepth) scanEncoded(compiled, entry.decoder, entry.regex, l, segments, out, depth);
  }
  return resolveOverlaps(out);
}

function scanPattern(d: CompiledDetector, l: Layout, segments: TextSegment[], out: Match[]): void {
  const spans = findAll(d.shape, l.text, l.text, 0, 0);
  for (let i = 0; i < spans.length; i += 2) {
    const at = spans[i]!;
    const seg = segmentAt(l, at);
    if (at < l.valueStart[seg]! || spans[i + 1]! > l.valueEnd[seg]!) continue;
    const value = segments[seg]!.value;
    const start = at - l.valueStart[seg]!;
    let end = spans[i + 1]! - l.valueStart[seg]!;
    if (standaloneNumberGroups.has(d.def.group) && gluedToToken(value, start, end)) continue;
    if (d.def.wholeBlock) end = blockEnd(value, end);
    const candidate = value.slice(start, end);
    let confidence = d.def.confidence.base;
    if (d.def.validate && !d.def.validate(candidate)) {
      if (!d.def.validationBoostsOnly) continue;
      confidence -= 0.25;
    }
    confidence = adjustForContext(d, segments[seg]!, start, confidence, false);
    if (confidence >= d.minConfidence) out.push({ segment: seg, start, end, detector: d, confidence, encoding: null });
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
function gluedToToken(value: string, start: number, end: number): boolean {
  const before = value.charCodeAt(start - 1);
  const after = value.charCodeAt(end);
  const joiner = (c: number) => c === 45 || c === 46;
  return (joiner(before) && isAlnum(value.charCodeAt(start - 2))) || (joiner(after) && isAlnum(value.charCodeAt(end + 1)));
}

/**
 * Shape candidates for many whole values at once: the values are joined with
 * "\n" (a non-word character, as around each value in the layout) and scanned
 * in one native call instead of one per value. Returns per value its
 * candidates as layout offsets, or null for a value a candidate crosses out of
 * (that value is then scanned on its own).
 */
function shapeCandidatesOfValues(d: CompiledDetector, l: Layout, segs: number[]): (number[] | null)[] {
  const parts: string[] = new Array(segs.length);
  const joinedStart = new Int32Array(segs.length + 1);
  let o = 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    parts[i] = l.text.slice(l.valueStart[seg]!, l.valueEnd[seg]!);
    joinedStart[i] = o;
    o += parts[i]!.length + 1;
  }
  joinedStart[segs.length] = o;
  const joined = parts.join('\n');
  const spans = findAll(d.shape, joined, joined, 0, 0);
  const result: (number[] | null)[] = segs.map(() => []);
  let v = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i]!;
    const end = spans[i + 1]!;
    while (start >= joinedStart[v + 1]!) v++;
    if (end > joinedStart[v + 1]! - 1) {
      // crosses the separator: every value it touches is scanned on its own
      for (let w = v; w < segs.length && joinedStart[w]! < end; w++) result[w] = null;
      continue;
    }
    result[v]?.push(start - joinedStart[v]! + l.valueStart[segs[v]!]!, end - joinedStart[v]! + l.valueStart[segs[v]!]!);
  }
  return result;
}

function scanKeyword(d: CompiledDetector, l: Layout, segments: TextSegment[], out: Match[]): void {
  const seen = new Set<string>();
  const spans = findAll(d.keyword!, l.text, l.text, 0, 0);
  // Field-name hits scan the whole value (up to a limit): those values are scanned together, once.
  const wholeValues: number[] = [];
  const wholeIndex = new Map<number, number>();
  if (!d.def.wholeValueWhenKeyMatches && d.anchorFree) {
    for (let i = 0; i < spans.length; i += 2) {
      const seg = segmentAt(l, spans[i + 1]! - 1);
      if (spans[i + 1]! - 1 < l.valueStart[seg]! && l.valueEnd[seg]! - l.valueStart[seg]! <= keywordRegionLimit * 4 && !wholeIndex.has(seg)) {
        wholeIndex.set(seg, wholeValues.length);
        wholeValues.push(seg);
      }
    }
  }
  const wholeCandidates = wholeValues.length > 0 ? shapeCandidatesOfValues(d, l, wholeValues) : [];
  for (let i = 0; i < spans.length; i += 2) {
    const kwEnd = spans[i + 1]!;
    // the match may begin with the boundary character that ends the previous segment
    const seg = segmentAt(l, kwEnd - 1);
    const segment = segments[seg]!;
    const inKey = kwEnd - 1 < l.valueStart[seg]!;
    if (inKey && d.def.wholeValueWhenKeyMatches) {
      const trimmed = segment.value.trim();
      if (trimmed.length > 0 && trimmed.length <= 512 && (!d.def.validate || d.def.validate(trimmed))) {
        const start = segment.value.indexOf(trimmed);
        pushContextMatch(d, segments, seg, start, start + trimmed.length, out, seen);
      }
      continue;
    }
    // the trailing boundary character may be the first character of the value
    const regionStart = inKey ? l.valueStart[seg]! : Math.min(kwEnd - 1, l.valueEnd[seg]!);
    const regionEnd = Math.min(l.valueEnd[seg]!, regionStart + (inKey ? keywordRegionLimit * 4 : d.contextWindow + keywordRegionLimit));
    if (regionEnd <= regionStart) continue;
    const whole = inKey ? wholeIndex.get(seg) : undefined;
    const candidates = (whole !== undefined ? wholeCandidates[whole] : null) ?? findAll(d.shape, l.text.slice(regionStart, regionEnd), l.text, 0, regionStart);
    for (let j = 0; j < candidates.length; j += 2) {
      const at = candidates[j]!;
      if (at >= regionEnd) break;
      if (!inKey && at - regionStart > d.contextWindow) break;
      const end = Math.min(candidates[j + 1]!, regionEnd);
      const start = at - l.valueStart[seg]!;
      const text = l.text.slice(at, end);
      const accepted = acceptCandidate(d, text);
      if (accepted) pushContextMatch(d, segments, seg, start + accepted.offset, start + accepted.offset + accepted.length, out, seen);
    }
  }
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

function pushContextMatch(d: CompiledDetector, segments: TextSegment[], seg: number, start: number, end: number, out: Match[], seen: Set<string>): void {
  const key = `${seg}:${start}`;
  if (seen.has(key)) return;
  seen.add(key);
  const confidence = adjustForContext(d, segments[seg]!, start, d.def.confidence.base, true);
  if (confidence >= d.minConfidence) out.push({ segment: seg, start, end, detector: d, confidence, encoding: null });
}

function adjustForContext(d: CompiledDetector, segment: TextSegment, start: number, confidence: number, contextKnown: boolean): number {
  const before = (segment.key + ' ' + segment.value.slice(Math.max(0, start - contextLookback), start)).toLowerCase();
  let c = confidence;
  if (contextKnown || d.keywordsLower.some((k) => before.includes(k))) c += d.def.confidence.contextBoost;
  if (d.negativesLower.length > 0 && d.negativesLower.some((k) => before.includes(k))) c -= d.def.confidence.negativePenalty;
  return Math.min(0.99, Math.max(0, Math.round(c * 100) / 100));
}

function scanEncoded(
  compiled: CompiledDataProtectionOk,
  decoder: 'base64' | 'hex' | 'url',
  regex: RE2,
  l: Layout,
  segments: TextSegment[],
  out: Match[],
  depth: number,
): void {
  const spans = findAll(regex, l.text, l.text, 0, 0);
  for (let i = 0; i < spans.length; i += 2) {
    const at = spans[i]!;
    const seg = segmentAt(l, at);
    if (at < l.valueStart[seg]! || spans[i + 1]! > l.valueEnd[seg]!) continue;
    const raw = l.text.slice(at, spans[i + 1]!);
    if (decoder === 'base64' && !(/[A-Z]/.test(raw) && /[a-z]/.test(raw) && raw.length % 4 !== 1)) continue;
    const decoded = decode(decoder, raw);
    if (decoded === null) continue;
    const inner = scanSegments(compiled, [{ key: segments[seg]!.key, value: decoded }], depth + 1);
    if (inner.length === 0) continue;
    const start = at - l.valueStart[seg]!;
    const best = inner.reduce((a, b) => (b.confidence > a.confidence ? b : a));
    out.push({ segment: seg, start, end: start + raw.length, detector: best.detector, confidence: best.confidence, encoding: decoder });
  }
}

function decode(decoder: 'base64' | 'hex' | 'url', raw: string): string | null {
  let bytes: Buffer;
  if (decoder === 'hex') bytes = Buffer.from(raw, 'hex');
  else if (decoder === 'base64') bytes = Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
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

/** Keeps the strongest match where matches overlap in the same segment. */
function resolveOverlaps(matches: Match[]): Match[] {
  if (matches.length < 2) return matches;
  matches.sort((a, b) => a.segment - b.segment || a.start - b.start || b.end - a.end);
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
