// What happens to one body: read its text (JSON string values, JSON nested in
// strings) as spans of the body, scan once, decide an action per finding,
// apply masks and redactions to the text, and report findings without the
// values.
//
// A JSON body is never parsed into objects and serialised back: one tokenizer
// pass over the text records where each string value is, a finding's JSON path
// is built only when there is a finding, and an edit replaces the value's
// characters in the text (a replacement needing no JSON escape keeps the JSON
// valid; one that needs escapes, or a value that had escapes, is written as a
// whole new JSON string). JSON nested in a string is read from the decoded
// string and, when edited, written back as one JSON string.
import { hash } from 'node:crypto';
import type { DataFinding } from '../decision/decision.ts';
import type { DataProtectionAction } from '../../config/data-protection-schema.ts';
import { resolveAction, type CompiledDataProtection, type CompiledDataProtectionOk, type CompiledDetector } from './compile.ts';
import { scanTable, valueOf, type Match, type SegmentTable } from './scan.ts';

export interface InspectContext {
  direction: 'request' | 'response';
  upstream: string;
  tool?: string;
}

/** A keyed hash of one sensitive value, for data-flow tracking. Never the value. */
export interface ValueFingerprint {
  hash: string;
  dataClass: string;
  detector: string;
  group: string;
}

export interface BlockedBy {
  group: string;
  detector: string;
}

export interface InspectResult<T> {
  value: T;
  changed: boolean;
  findings: DataFinding[];
  /** Set when a block action applies and the Persona enforces. */
  blocked: BlockedBy | null;
  /** In monitor mode: what would have been blocked. */
  wouldBlock: BlockedBy | null;
  fingerprints: ValueFingerprint[];
}

/** Stable error for a blocked body; names the group and detector, never the data. */
export const dataBlockedCode = 'sensitive_data_blocked';
export function blockedMessage(blocked: BlockedBy, direction: 'request' | 'response'): string {
  const where = direction === 'request' ? 'the tool arguments' : 'the tool result';
  return `${where} contain ${blocked.group} data (${blocked.detector}) that this Persona may not send; remove it and retry`;
}

type PathPart = string | number;

interface PathNode {
  parent: PathNode | null;
  part: PathPart | null;
  /** JSON nested in a string at this node. */
  embedded?: boolean;
  /** This node's path without the leading "$", computed once (many findings share a parent). */
  text?: string;
}

/** How a segment's value sits in its text, which decides how an edit is written. */
const Mode = { text: 0, string: 1, decoded: 2, number: 3 } as const;

/**
 * Where each text of the table came from: the body (host -1), a JSON document
 * nested in a string of its host, or a string value with escapes, decoded.
 * hostStart/hostEnd are the JSON string token (quotes included) in the host.
 */
interface TextOrigin {
  host: number;
  hostStart: number;
  hostEnd: number;
}

/** The table plus what inspect needs to name and edit each segment. */
interface Document extends SegmentTable {
  origins: TextOrigin[];
  /** Mode value per segment, plus isKey for a property name. */
  mode: Uint8Array;
  parent: (PathNode | null)[];
  part: (PathPart | null)[];
}

const isKey = 4;

const emptyResult = <T>(value: T): InspectResult<T> => ({ value, changed: false, findings: [], blocked: null, wouldBlock: null, fingerprints: [] });

const maxEmbeddedDepth = 3;

/** Inspects a parsed JSON value; the result's value is a new value when anything changed (the input is never modified). */
export function inspectJson<T>(compiled: CompiledDataProtection, value: T, context: InspectContext): InspectResult<T> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(value);
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return emptyResult(value);
  const hits = compiled.set.match(text);
  if (hits.length === 0) return emptyResult(value);
  const r = inspectJsonText(compiled, text, context, trustedHits(compiled, hits));
  if (r === null) return emptyResult(value);
  return { ...r, value: r.changed ? (JSON.parse(r.value) as T) : value };
}

/** For non-JSON bodies: scans and rewrites the whole text as one segment. */
export function inspectText(compiled: CompiledDataProtection, text: string, context: InspectContext): InspectResult<string> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(text);
  const doc = newDocument();
  doc.texts.push(text);
  doc.origins.push({ host: -1, hostStart: 0, hostEnd: text.length });
  addSegment(doc, 0, 0, text.length, '', Mode.text, null, null);
  return inspectDocument(compiled, doc, context, null, text, 'body');
}

/**
 * The data path's entry point for a raw body: one Set pass over the bytes as
 * received decides whether anything can match. Only then is the text read.
 */
export function inspectBody(compiled: CompiledDataProtection, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(body);
  const hits = compiled.set.match(body);
  if (hits.length === 0) return emptyResult(body);
  const text = body.toString('utf8');
  const r = inspectJsonText(compiled, text, context, trustedHits(compiled, hits)) ?? inspectText(compiled, text, context);
  return { ...r, value: r.changed ? Buffer.from(r.value, 'utf8') : body };
}

/**
 * Set hits of the raw text stand for the values only when no JSON escape
 * changes them: \u0034 or \/ could hide a value, and in "\n4111..." the
 * escape's letter hides the number's word boundary. Then the Set runs again
 * over the decoded values (null here).
 */
function trustedHits(compiled: CompiledDataProtectionOk, hits: number[]): number[] | null {
  for (const h of hits) {
    const kind = compiled.setEntries[h]?.kind;
    if (kind === 'escape' || kind === 'control-escape') return null;
  }
  return hits;
}

/** null when the text is not JSON. */
function inspectJsonText(compiled: CompiledDataProtectionOk, text: string, context: InspectContext, hits: number[] | null): InspectResult<string> | null {
  const doc = readJson(text, compiled.policy.scanKeys);
  if (doc === null) return null;
  return inspectDocument(compiled, doc, context, hits, text, null);
}

function inspectDocument(compiled: CompiledDataProtectionOk, doc: Document, context: InspectContext, hits: number[] | null, original: string, location: string | null): InspectResult<string> {
  const matches = scanTable(compiled, doc, hits, 0);
  if (matches.length === 0) return emptyResult(original);
  return applyMatches(compiled, context, matches, doc, original, location);
}

function newDocument(capacity = 64): Document {
  return {
    texts: [], text: new Int32Array(capacity), start: new Int32Array(capacity), end: new Int32Array(capacity), key: [], count: 0,
    origins: [], mode: new Uint8Array(capacity), parent: [], part: [],
  };
}

function grow<A extends Int32Array | Uint8Array>(a: A): A {
  const b = new (a.constructor as new (n: number) => A)(a.length * 2);
  b.set(a);
  return b;
}

function addSegment(doc: Document, text: number, start: number, end: number, key: string, mode: number, parent: PathNode | null, part: PathPart | null): void {
  const n = doc.count;
  if (n === doc.text.length) {
    doc.text = grow(doc.text);
    doc.start = grow(doc.start);
    doc.end = grow(doc.end);
    doc.mode = grow(doc.mode);
  }
  doc.text[n] = text;
  doc.start[n] = start;
  doc.end[n] = end;
  doc.mode[n] = mode;
  doc.key.push(key);
  doc.parent.push(parent);
  doc.part.push(part);
  doc.count = n + 1;
}

function truncate(doc: Document, segments: number, texts: number): void {
  doc.key.length = segments;
  doc.parent.length = segments;
  doc.part.length = segments;
  doc.count = segments;
  doc.texts.length = texts;
  doc.origins.length = texts;
}

class NotJson extends Error {}
const notJson = new NotJson();

/**
 * One pass over a JSON text: every string value (and number, and key when
 * scanKeys) becomes a segment. Returns null when the text is not JSON.
 */
export function readJson(text: string, scanKeys: boolean): Document | null {
  const doc = newDocument(1024);
  doc.texts.push(text);
  doc.origins.push({ host: -1, hostStart: 0, hostEnd: text.length });
  const reader = new Reader(doc, scanKeys);
  return reader.document(0, { parent: null, part: null }, '', 0) ? doc : null;
}

class Reader {
  readonly doc: Document;
  readonly scanKeys: boolean;
  s = '';
  i = 0;
  textIndex = 0;
  /** Position of the next backslash at or after some earlier point (s.length when none). */
  backslash = -1;
  /** Set by stringEnd: the string just read had an escape. */
  escaped = false;

  constructor(doc: Document, scanKeys: boolean) {
    this.doc = doc;
    this.scanKeys = scanKeys;
  }

  /** Reads texts[textIndex] as one JSON document. False (and nothing added) when it is not JSON. */
  document(textIndex: number, root: PathNode, fieldName: string, depth: number): boolean {
    const saved = { s: this.s, i: this.i, textIndex: this.textIndex, backslash: this.backslash };
    const segments = this.doc.count;
    const texts = this.doc.texts.length;
    this.s = this.doc.texts[textIndex]!;
    this.i = 0;
    this.textIndex = textIndex;
    this.backslash = -1;
    let ok = true;
    try {
      this.value(fieldName, root, null, root, depth);
      this.ws();
      if (this.i !== this.s.length) throw notJson;
    } catch (e) {
      if (e !== notJson && !(e instanceof SyntaxError)) throw e;
      truncate(this.doc, segments, texts);
      ok = false;
    }
    this.s = saved.s;
    this.i = saved.i;
    this.textIndex = saved.textIndex;
    this.backslash = saved.backslash;
    return ok;
  }

  ws(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
    this.i = i;
  }

  /** The index of the closing quote of the string opening at i. */
  stringEnd(i: number): number {
    const s = this.s;
    let j = i + 1;
    for (;;) {
      const q = s.indexOf('"', j);
      if (q < 0) throw notJson;
      let k = q - 1;
      while (k > i && s.charCodeAt(k) === 92) k--;
      if ((q - 1 - k) % 2 === 0) {
        if (this.backslash < i + 1) {
          const b = s.indexOf('\\', i + 1);
          this.backslash = b < 0 ? s.length : b;
        }
        this.escaped = this.backslash < q;
        return q;
      }
      j = q + 1;
    }
  }

  /** Reads one value at this.i. node: the value's own path node when the caller has one (roots). */
  value(fieldName: string, parent: PathNode | null, part: PathPart | null, node: PathNode | null, depth: number): void {
    this.ws();
    const s = this.s;
    const c = s.charCodeAt(this.i);
    if (c === 34) return this.string(fieldName, parent, part, depth);
    if (c === 123) return this.object(fieldName, node ?? { parent, part }, depth);
    if (c === 91) return this.array(fieldName, node ?? { parent, part }, depth);
    if (c === 45 || (c >= 48 && c <= 57)) {
      const start = this.i;
      this.number();
      addSegment(this.doc, this.textIndex, start, this.i, fieldName, Mode.number, parent, part);
      return;
    }
    if (s.startsWith('true', this.i)) this.i += 4;
    else if (s.startsWith('false', this.i)) this.i += 5;
    else if (s.startsWith('null', this.i)) this.i += 4;
    else throw notJson;
  }

  number(): void {
    const s = this.s;
    let i = this.i;
    if (s.charCodeAt(i) === 45) i++;
    const first = s.charCodeAt(i);
    if (first === 48) i++;
    else if (first >= 49 && first <= 57) while (isDigit(s.charCodeAt(i))) i++;
    else throw notJson;
    if (s.charCodeAt(i) === 46) {
      i++;
      if (!isDigit(s.charCodeAt(i))) throw notJson;
      while (isDigit(s.charCodeAt(i))) i++;
    }
    const e = s.charCodeAt(i);
    if (e === 101 || e === 69) {
      i++;
      const sign = s.charCodeAt(i);
      if (sign === 43 || sign === 45) i++;
      if (!isDigit(s.charCodeAt(i))) throw notJson;
      while (isDigit(s.charCodeAt(i))) i++;
    }
    this.i = i;
  }

  string(fieldName: string, parent: PathNode | null, part: PathPart | null, depth: number): void {
    const s = this.s;
    const open = this.i;
    const close = this.stringEnd(open);
    const escaped = this.escaped;
    this.i = close + 1;
    const decoded = escaped ? (JSON.parse(s.slice(open, close + 1)) as string) : null;
    const lead = decoded !== null ? decoded.charCodeAt(0) : s.charCodeAt(open + 1);
    const length = decoded !== null ? decoded.length : close - open - 1;
    if ((lead === 123 || lead === 91) && length > 1 && depth < maxEmbeddedDepth) {
      // JSON nested in a string (MCP text content): read the decoded string as a document of its own.
      const inner = decoded ?? s.slice(open + 1, close);
      const index = this.doc.texts.length;
      this.doc.texts.push(inner);
      this.doc.origins.push({ host: this.textIndex, hostStart: open, hostEnd: close + 1 });
      if (this.document(index, { parent: { parent, part }, part: null, embedded: true }, fieldName, depth + 1)) return;
    }
    if (decoded === null) {
      addSegment(this.doc, this.textIndex, open + 1, close, fieldName, Mode.string, parent, part);
    } else {
      const index = this.doc.texts.length;
      this.doc.texts.push(decoded);
      this.doc.origins.push({ host: this.textIndex, hostStart: open, hostEnd: close + 1 });
      addSegment(this.doc, index, 0, decoded.length, fieldName, Mode.decoded, parent, part);
    }
  }

  object(fieldName: string, node: PathNode, depth: number): void {
    const s = this.s;
    this.i++;
    this.ws();
    if (s.charCodeAt(this.i) === 125) {
      this.i++;
      return;
    }
    for (;;) {
      if (s.charCodeAt(this.i) !== 34) throw notJson;
      const open = this.i;
      const close = this.stringEnd(open);
      const escaped = this.escaped;
      const key = escaped ? (JSON.parse(s.slice(open, close + 1)) as string) : s.slice(open + 1, close);
      this.i = close + 1;
      if (this.scanKeys) {
        if (escaped) {
          const index = this.doc.texts.length;
          this.doc.texts.push(key);
          this.doc.origins.push({ host: this.textIndex, hostStart: open, hostEnd: close + 1 });
          addSegment(this.doc, index, 0, key.length, fieldName, Mode.decoded | isKey, node, key);
        } else {
          addSegment(this.doc, this.textIndex, open + 1, close, fieldName, Mode.string | isKey, node, key);
        }
      }
      this.ws();
      if (s.charCodeAt(this.i) !== 58) throw notJson;
      this.i++;
      this.value(key, node, key, null, depth);
      this.ws();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 44) {
        this.ws();
        continue;
      }
      if (c === 125) return;
      throw notJson;
    }
  }

  array(fieldName: string, node: PathNode, depth: number): void {
    const s = this.s;
    this.i++;
    this.ws();
    if (s.charCodeAt(this.i) === 93) {
      this.i++;
      return;
    }
    for (let index = 0; ; index++) {
      this.value(fieldName, node, index, null, depth);
      this.ws();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 44) continue;
      if (c === 93) return;
      throw notJson;
    }
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function jsonPath(node: PathNode): string {
  return '$' + pathText(node);
}

function pathText(n: PathNode | null): string {
  if (n === null) return '';
  if (n.text !== undefined) return n.text;
  n.text = pathText(n.parent) + partText(n.part) + (n.embedded ? '<json>' : '');
  return n.text;
}

function partText(part: PathPart | null): string {
  if (part === null) return '';
  if (typeof part === 'number') return `[${part}]`;
  return isIdentifier(part) ? `.${part}` : `[${JSON.stringify(part)}]`;
}

function isIdentifier(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36;
    if (!letter && !(i > 0 && c >= 48 && c <= 57)) return false;
  }
  return true;
}

/** A replacement of [start, end) of one text. */
interface Edit {
  start: number;
  end: number;
  replacement: string;
}

function applyMatches(
  compiled: CompiledDataProtectionOk,
  context: InspectContext,
  matches: Match[],
  doc: Document,
  original: string,
  location: string | null,
): InspectResult<string> {
  const findings: DataFinding[] = new Array(matches.length);
  const fingerprints: ValueFingerprint[] = [];
  let blocked: BlockedBy | null = null;
  const actions = new Map<CompiledDetector, DataProtectionAction>();
  const key = compiled.fingerprintKey;
  const pads = key ? hmacPads(key) : null;
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    const d = m.detector;
    let action = actions.get(d);
    if (action === undefined) actions.set(d, (action = resolveAction(compiled, d, context.direction, context.upstream, context.tool)));
    findings[i] = {
      detector: d.def.id,
      group: d.def.group,
      location: location ?? locationOf(doc, m),
      confidence: m.confidence,
      action,
      direction: context.direction,
    };
    if (pads) {
      const s = doc.texts[doc.text[m.segment]!]!;
      const base = doc.start[m.segment]!;
      fingerprints.push({ hash: fingerprintWith(pads, d.def.dataClass, s.slice(base + m.start, base + m.end)), dataClass: d.def.dataClass, detector: d.def.id, group: d.def.group });
    }
    if (action === 'block') blocked ??= { group: d.def.group, detector: d.def.id };
  }
  if (compiled.monitor) return { value: original, changed: false, findings, blocked: null, wouldBlock: blocked, fingerprints };
  if (blocked) return { value: original, changed: false, findings, blocked, wouldBlock: null, fingerprints };
  const edits = editsOf(compiled, doc, matches, actions);
  if (edits === null) return { value: original, changed: false, findings, blocked: null, wouldBlock: null, fingerprints };
  return { value: edits, changed: true, findings, blocked: null, wouldBlock: null, fingerprints };
}

function locationOf(doc: Document, m: Match): string {
  const seg = m.segment;
  let path = '$' + pathText(doc.parent[seg]!) + partText(doc.part[seg]!);
  if ((doc.mode[seg]! & isKey) !== 0) path += ' (key)';
  if (m.encoding) path += ` (${m.encoding})`;
  return path;
}

/** The new text with every mask and redaction applied, or null when nothing is to change. */
function editsOf(compiled: CompiledDataProtectionOk, doc: Document, matches: Match[], actions: Map<CompiledDetector, DataProtectionAction>): string | null {
  const maskCharacter = compiled.policy.maskCharacter;
  const maskIsPlain = jsonPlain(maskCharacter);
  const perText = new Map<number, Edit[]>();
  const add = (text: number, e: Edit) => {
    const list = perText.get(text);
    if (list) list.push(e);
    else perText.set(text, [e]);
  };
  // Matches come sorted by segment and start, without overlaps.
  for (let i = 0; i < matches.length; ) {
    const seg = matches[i]!.segment;
    let j = i;
    const segEdits: Edit[] = [];
    for (; j < matches.length && matches[j]!.segment === seg; j++) {
      const m = matches[j]!;
      const d = m.detector;
      const action = actions.get(d)!;
      if (action !== 'mask' && action !== 'redact') continue;
      const base = doc.start[seg]!;
      const replacement = action === 'redact' || m.encoding
        ? `[REDACTED:${d.def.dataClass}]`
        : mask(doc.texts[doc.text[seg]!]!.slice(base + m.start, base + m.end), d.maskKeep, maskCharacter, d.def.dataClass === 'credential');
      segEdits.push({ start: m.start, end: m.end, replacement });
    }
    i = j;
    if (segEdits.length === 0) continue;
    const mode = doc.mode[seg]! & 3;
    const text = doc.text[seg]!;
    const base = doc.start[seg]!;
    const plain = mode === Mode.text || (mode === Mode.string && (maskIsPlain || segEdits.every((e) => jsonPlain(e.replacement))));
    if (plain) {
      // Replaced in place: the text around the value stays as it was.
      for (const e of segEdits) add(text, { start: base + e.start, end: base + e.end, replacement: e.replacement });
      continue;
    }
    // The value is written as a whole new JSON string in the text holding its token.
    const value = applyEdits(valueOf(doc, seg), segEdits, 0);
    if (mode === Mode.decoded) {
      const o = doc.origins[text]!;
      add(o.host, { start: o.hostStart, end: o.hostEnd, replacement: JSON.stringify(value) });
    } else {
      const from = mode === Mode.string ? base - 1 : base;
      const to = mode === Mode.string ? doc.end[seg]! + 1 : doc.end[seg]!;
      add(text, { start: from, end: to, replacement: JSON.stringify(value) });
    }
  }
  if (perText.size === 0) return null;
  // A nested document is read after the text holding it, so it has a higher index: innermost first.
  for (let index = doc.texts.length - 1; index > 0; index--) {
    const list = perText.get(index);
    if (!list) continue;
    const o = doc.origins[index]!;
    add(o.host, { start: o.hostStart, end: o.hostEnd, replacement: JSON.stringify(applyEdits(doc.texts[index]!, sorted(list), 0)) });
  }
  return applyEdits(doc.texts[0]!, sorted(perText.get(0)!), 0);
}

function sorted(edits: Edit[]): Edit[] {
  for (let i = 1; i < edits.length; i++) if (edits[i]!.start < edits[i - 1]!.start) return edits.sort((a, b) => a.start - b.start);
  return edits;
}

/** Applies sorted, non-overlapping edits. */
function applyEdits(text: string, edits: Edit[], offset: number): string {
  if (edits.length === 1) {
    const e = edits[0]!;
    return text.slice(0, e.start - offset) + e.replacement + text.slice(e.end - offset);
  }
  const parts: string[] = new Array(edits.length * 2 + 1);
  let cursor = 0;
  let p = 0;
  for (const e of edits) {
    parts[p++] = text.slice(cursor, e.start - offset);
    parts[p++] = e.replacement;
    cursor = e.end - offset;
  }
  parts[p] = text.slice(cursor);
  return parts.join('');
}

/** True when the text can stand inside a JSON string as it is (no quote, backslash or control character). */
function jsonPlain(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 32 || c === 34 || c === 92) return false;
  }
  return true;
}

/**
 * Replaces letters and digits with the mask character, leaving separators and
 * the last `keep` of them (never more than half). Credentials are masked whole.
 */
export function mask(text: string, keep: number, maskCharacter: string, whole = false): string {
  if (whole) return maskCharacter.repeat(Math.max(8, Math.min(text.length, 32)));
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return maskAscii(text, keep, maskCharacter);
  const chars = [...text];
  let total = 0;
  const alnum = chars.map((ch) => {
    const a = isLetterOrDigit(ch);
    if (a) total++;
    return a;
  });
  const visible = total > keep * 2 ? keep : 0;
  let seen = 0;
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    if (!alnum[i]) out += chars[i];
    else out += ++seen > total - visible ? chars[i] : maskCharacter;
  }
  return out;
}

/** mask() for ASCII text: runs of masked characters are appended at once. */
function maskAscii(text: string, keep: number, maskCharacter: string): string {
  let total = 0;
  for (let i = 0; i < text.length; i++) if (isAsciiAlnum(text.charCodeAt(i))) total++;
  const visible = total > keep * 2 ? keep : 0;
  const masked = total - visible;
  let seen = 0;
  let out = '';
  let run = 0;
  let i = 0;
  for (; i < text.length && seen < masked; i++) {
    if (isAsciiAlnum(text.charCodeAt(i))) {
      seen++;
      run++;
    } else {
      if (run > 0) out += maskCharacter.repeat(run);
      run = 0;
      out += text[i];
    }
  }
  if (run > 0) out += maskCharacter.repeat(run);
  return out + text.slice(i);
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

const letterOrDigit = /[\p{L}\p{N}]/u;

function isLetterOrDigit(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return letterOrDigit.test(ch);
}

/** HMAC-SHA256 inner and outer key blocks (RFC 2104), per key. */
interface HmacPads {
  inner: Buffer;
  outer: Buffer;
}

const padsByKey = new WeakMap<Buffer, HmacPads>();

function hmacPads(key: Buffer): HmacPads {
  let p = padsByKey.get(key);
  if (p) return p;
  const block = Buffer.alloc(64);
  (key.length > 64 ? Buffer.from(hash('sha256', key, 'buffer')) : key).copy(block);
  const inner = Buffer.alloc(64);
  const outer = Buffer.alloc(64);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i]! ^ 0x36;
    outer[i] = block[i]! ^ 0x5c;
  }
  p = { inner, outer };
  padsByKey.set(key, p);
  return p;
}

/** Separators that do not change a value's identity (spaces, dots, dashes, slashes, brackets). */
function normalise(value: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 46 || c === 45 || c === 47 || c === 40 || c === 41 || isSpace(c)) {
      out += value.slice(from, i);
      from = i + 1;
    }
  }
  return (from === 0 ? value : out + value.slice(from)).toLowerCase();
}

/** What \s matches in a JS RegExp. */
function isSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 160 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * HMAC-SHA256(key, dataClass NUL value-without-separators), first 128 bits in
 * hex. Computed as RFC 2104 spells it with two one-shot hashes, which costs a
 * fraction of createHmac's per-call setup.
 */
function fingerprintWith(pads: HmacPads, dataClass: string, value: string): string {
  const message = Buffer.from(`${dataClass}\0${normalise(value)}`, 'utf8');
  const inner = hash('sha256', Buffer.concat([pads.inner, message], 64 + message.length), 'buffer') as unknown as Buffer;
  return (hash('sha256', Buffer.concat([pads.outer, inner], 96), 'hex') as string).slice(0, 32);
}

export function fingerprint(key: Buffer, dataClass: string, value: string): string {
  return fingerprintWith(hmacPads(key), dataClass, value);
}
