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
import { isAscii, isUtf8 } from 'node:buffer';
import type { DataFinding } from '../decision/decision.ts';
import type { DataProtectionAction } from '../../config/data-protection-schema.ts';
import { resolveAction, type CompiledDataProtection, type CompiledDataProtectionOk, type CompiledDetector } from './compile.ts';
import { scanTable, valueOf, withReading, type Match, type SegmentTable } from './scan.ts';
import { decodeSingleByte, encodeSingleByte, isBinaryBytes } from './charset.ts';
import { withInspectionBudget } from './budget.ts';
import { decodeJsonEscapes, jsonEscaped, jsonEscapeReading } from './json-escapes.ts';
import { canonicalForm, canonicalShape, fingerprintOfCanonical, isUnicodeLetterOrDigit, keyPrefix, type CanonicalShape } from './fingerprint.ts';

export interface InspectContext {
  direction: 'request' | 'response';
  upstream: string;
  tool?: string;
  /**
   * The JSON-RPC ids of the client's requests. In an answer, a response message (an object with a
   * result or an error and no method, alone or in a batch) whose top-level id is one of them carries
   * the client's own correlation value back: that id is not inspected, so the client can still match
   * the answer. Any other id, and any other member named id, is.
   */
  clientIds?: readonly (string | number)[];
}

/** A keyed hash of one sensitive value, for data-flow tracking (fingerprint.ts). Never the value. */
export interface ValueFingerprint {
  hash: string;
  dataClass: string;
  detector: string;
  group: string;
  /** How a request can be searched for the value without its detector; absent for short or uniform values. */
  shape?: CanonicalShape;
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

/** What a block applied to: a part of what the agent sends, or of the answer it was to receive. */
export type BlockedPart = 'tool arguments' | 'request body' | 'request header' | 'query' | 'path' | 'message' | 'tool result' | 'answer' | 'answer header' | 'stream';

/** Each part as a message names it, and whether the agent sent it (it can remove the value and retry) or was to receive it (it was withheld). */
const blockedParts: Record<BlockedPart, { subject: string; sent: boolean }> = {
  'tool arguments': { subject: 'the tool arguments hold', sent: true },
  'request body': { subject: 'the request body holds', sent: true },
  'request header': { subject: 'a request header holds', sent: true },
  query: { subject: 'the query string holds', sent: true },
  path: { subject: 'the request path holds', sent: true },
  message: { subject: 'the JSON-RPC message holds', sent: true },
  'tool result': { subject: 'the tool result holds', sent: false },
  answer: { subject: 'the answer holds', sent: false },
  'answer header': { subject: "a header of the upstream's answer holds", sent: false },
  stream: { subject: 'the streamed answer holds', sent: false },
};

/** The message of a block: what it applied to, the group and the detector (never the value), and what the agent can do. */
export function blockedMessage(blocked: BlockedBy, part: BlockedPart): string {
  const { subject, sent } = blockedParts[part];
  const found = `${subject} ${blocked.group} data (${blocked.detector})`;
  if (sent) return `${found} that this Persona may not send; remove it and retry`;
  return `${found} that this Persona may not receive; ${part === 'stream' ? 'the rest of the stream was withheld' : 'it was withheld'}`;
}

type PathPart = string | number;

interface PathNode {
  parent: PathNode | null;
  part: PathPart | null;
  /** JSON nested in a string at this node. */
  embedded?: boolean;
  /** This node's path without the leading "$", computed once (many findings share a parent). */
  text?: string;
  /** The same with the "$". */
  full?: string;
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

/**
 * The fewest printable bytes in a row that a binary body's reading keeps (inspectBinary). In random
 * bytes (compressed data) runs of 8 are rare (0.24% of the bytes of 4 MiB are in one), and what is
 * detected is longer (a key, an address, a card with its spaces, `ssn: ` and its number). 4 MiB of
 * random bytes: 14-16 s read whole, 6-8 s with runs of 4, 2.9-3.6 s with 6, 1.6 s with 8.
 */
const binaryStringBytes = 8;

/**
 * The fewest spaces a binary body's reading keeps between two of its strings (inspectBinary), raised to
 * the Sets' overlap: more than a Set entry's widest witness (797 bytes with the built-in catalogue,
 * pattern-span.ts), the context looked back at (64) and a keyword's region (320), so strings further
 * apart relate as before.
 */
const binaryGapBytes = 1024;

/** A string with this many escaped quotes is long escaped JSON: its end is guessed (see readDocument). */
const longEscapedString = 256;

/** Inspects a parsed JSON value; the result's value is a new value when anything changed (the input is never modified). */
export function inspectJson<T>(compiled: CompiledDataProtection, value: T, context: InspectContext): InspectResult<T> {
  return withInspectionBudget(() => inspectJsonNow(compiled, value, context));
}

function inspectJsonNow<T>(compiled: CompiledDataProtection, value: T, context: InspectContext): InspectResult<T> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(value);
  const kept = context.clientIds?.length ? withoutClientIds(value, context.clientIds) : null;
  if (kept) {
    const r = inspectJson(compiled, kept.value as T, { ...context, clientIds: [] });
    return r.changed ? { ...r, value: kept.restore(r.value) as T } : { ...r, value };
  }
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return emptyResult(value);
  // The Set reads bytes: a string would be converted (and copied into a new native buffer) on every call.
  const bytes = Buffer.from(text);
  const r = (mayHoldFile(bytes) ? withFilesSetAside(compiled, text, context, (rest) => inspectSerialized(compiled, rest, Buffer.from(rest), context)) : null) ?? inspectSerialized(compiled, text, bytes, context);
  return { ...r, value: r.changed ? (JSON.parse(r.value) as T) : value };
}

/** A value serialized as JSON (`text`, and its UTF-8 `bytes`), inspected; the result's value is the text, edited. */
function inspectSerialized(compiled: CompiledDataProtectionOk, text: string, bytes: Buffer, context: InspectContext): InspectResult<string> {
  const pass = setPass(compiled, bytes, bytes.length === text.length ? () => text : () => bytes.toString('latin1'), true);
  if (pass === clean) return emptyResult(text);
  return (inspectJsonText(compiled, text, context, pass, null) as InspectResult<string> | null) ?? emptyResult(text);
}

/** For non-JSON bodies: scans and rewrites the whole text as one segment. */
export function inspectText(compiled: CompiledDataProtection, text: string, context: InspectContext): InspectResult<string> {
  return withInspectionBudget(() => inspectTextNow(compiled, text, context));
}

function inspectTextNow(compiled: CompiledDataProtection, text: string, context: InspectContext): InspectResult<string> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(text);
  return textResult(compiled, text, context, null) as InspectResult<string>;
}

/** The text as one segment; with `bytes` (the text's bytes, one per character), a changed value is written as bytes. */
function textResult(compiled: CompiledDataProtectionOk, text: string, context: InspectContext, bytes: Buffer | null): InspectResult<string | Buffer> {
  const doc = textDocument(text);
  const matches = matchesOfText(compiled, text, doc);
  if (matches.length === 0) return emptyResult(text);
  return applyMatches(compiled, context, matches, doc, text, 'body', bytes);
}

function textDocument(text: string): Document {
  const doc = newDocument();
  doc.texts.push(text);
  doc.origins.push({ host: -1, hostStart: 0, hostEnd: text.length });
  addSegment(doc, 0, 0, text.length, '', Mode.text, null, null);
  return doc;
}

/**
 * Where the engine finds values in a text, sorted and without overlaps: a stream reads them to
 * choose where to cut (see stream.ts) and hands them back to inspectTextRange.
 */
export function textMatches(compiled: CompiledDataProtectionOk, text: string): Match[] {
  return withInspectionBudget(() => textMatchesNow(compiled, text));
}

function textMatchesNow(compiled: CompiledDataProtectionOk, text: string): Match[] {
  return matchesOfText(compiled, text, textDocument(text));
}

/**
 * A text with every value the detectors find in it masked as the data path masks it, whatever their
 * action: for words that are only shown, never forwarded (an external DLP service's block reason).
 * A value spelled with JSON escapes is masked as it reads, so the escapes do not survive as text.
 */
export function maskFoundText(compiled: CompiledDataProtectionOk, text: string): string {
  let out = '';
  let at = 0;
  for (const match of textMatches(compiled, text)) {
    if (match.start < at) continue;
    const value = decodeJsonEscapes(text.slice(match.start, match.end));
    out += text.slice(at, match.start) + mask(value, match.detector.maskKeep, compiled.policy.maskCharacter, masksWhole(match.detector));
    at = match.end;
  }
  return out + text.slice(at);
}

/** Credentials are masked whole: no last characters kept, and not even their length. */
function masksWhole(detector: CompiledDetector): boolean {
  return detector.def.dataClass === 'credential';
}

/** The matches of a text document (see textMatches). */
function matchesOfText(compiled: CompiledDataProtectionOk, text: string, doc: Document): Match[] {
  const plain = scanTable(compiled, doc, null, 0);
  // What a lenient JSON parser would decode (json-escapes.ts): its matches cover whole escapes in the text.
  const reading = jsonEscapeReading(text);
  if (reading === null) return plain;
  const read = scanTable(compiled, textDocument(reading.text), null, 0);
  for (const m of read) {
    m.start = reading.origin[m.start]!;
    m.end = reading.origin[m.end]!;
  }
  return withReading(plain, read);
}

/**
 * Inspects text.slice(from, to) with the matches of the whole text (from textMatches): what lies
 * before `from` was only context (a stream released it already), what lies after `to` is not yet
 * released. A match reaching over either end is applied to its part inside.
 */
export function inspectTextRange(compiled: CompiledDataProtection, text: string, matches: readonly Match[], from: number, to: number, context: InspectContext): InspectResult<string> {
  const piece = text.slice(from, to);
  if (!compiled.ok || !compiled.active) return emptyResult(piece);
  const inside: Match[] = [];
  for (const m of matches) {
    if (m.end <= from || m.start >= to) continue;
    inside.push({ ...m, segment: 0, start: Math.max(m.start, from) - from, end: Math.min(m.end, to) - from });
  }
  if (inside.length === 0) return emptyResult(piece);
  return applyMatches(compiled, context, inside, textDocument(piece), piece, 'body', null) as InspectResult<string>;
}

/**
 * The data path's entry point for a raw body: the Set passes over the bytes as
 * received decide whether anything can match. Only then is the text read.
 */
export function inspectBody(compiled: CompiledDataProtection, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  return withInspectionBudget(() => inspectBodyNow(compiled, body, context));
}

function inspectBodyNow(compiled: CompiledDataProtection, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(body);
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
    // A UTF-8 byte order mark: what follows is read (JSON as JSON), the mark stays. Only one: a
    // second mark is text, read as such (no recursion a body of marks could exhaust).
    const r = inspectUnmarked(compiled, body.subarray(3), context);
    return { ...r, value: r.changed ? Buffer.concat([body.subarray(0, 3), r.value]) : body };
  }
  return inspectUnmarked(compiled, body, context);
}

function inspectUnmarked(compiled: CompiledDataProtectionOk, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  const asciiBytes = isAscii(body);
  if (!asciiBytes && !isUtf8(body)) return isBinaryBytes(body) ? inspectBinary(compiled, body, context) : inspectNotUtf8(compiled, body, context);
  if (mayHoldFile(body)) {
    const encoding = readsByteForByte(compiled, asciiBytes) ? 'latin1' : 'utf8';
    const r = withFilesSetAside(compiled, body.toString(encoding), context, (rest) => {
      const inspected = inspectUtf8(compiled, Buffer.from(rest, encoding), context, asciiBytes);
      return { ...inspected, value: inspected.changed ? inspected.value.toString(encoding) : rest };
    });
    if (r !== null) return { ...r, value: r.changed ? Buffer.from(r.value, encoding) : body };
  }
  return inspectUtf8(compiled, body, context, asciiBytes);
}

/**
 * Files inside JSON. MCP carries images and audio as base64 in the `data` of a content item whose
 * `type` is `image` or `audio`, and files in the `blob` of a resource's contents. Such a value is
 * random base64 to the Sets, the costliest text they meet (a 250 KiB screenshot: 60-200 ms of the
 * Sets and the patterns they then run), and spells nothing: what a reader could find in a file are
 * its strings, as in a binary body (inspectBinary). A value so declared that decodes (as canonical
 * base64) to bytes a binary body would be made of is set aside: the rest of the document is
 * inspected without it, the file's bytes as a binary body, and a masked file is encoded again in
 * its place (same length: a binary body is masked byte for byte). Anything else in such a field
 * (text, an escaped or non-canonical value) is read as before. Only in answers: what an agent sends
 * is read whole, base64 included, since a value written into the base64 text itself (between a "+"
 * and a "/") would otherwise pass unread. Null when the text holds no such file.
 */
function withFilesSetAside(
  compiled: CompiledDataProtectionOk,
  text: string,
  context: InspectContext,
  inspectRest: (rest: string) => InspectResult<string>,
): InspectResult<string> | null {
  if (context.direction !== 'response') return null;
  const fields = fileFieldsOf(text, true);
  if (fields === null || !fields.some((f) => f.file !== null)) return null;
  let rest = '';
  let at = 0;
  for (const f of fields) {
    if (f.file === null) continue;
    rest += text.slice(at, f.start);
    at = f.end;
  }
  rest += text.slice(at);
  const outer = inspectRest(rest);
  const findings = [...outer.findings];
  const fingerprints = [...outer.fingerprints];
  let blocked = outer.blocked;
  let wouldBlock = outer.wouldBlock;
  const encoded: (string | null)[] = fields.map((f) => {
    if (f.file === null) return null;
    const r = inspectBinary(compiled, f.file, context);
    for (const finding of r.findings) findings.push({ ...finding, location: f.location });
    fingerprints.push(...r.fingerprints);
    blocked ??= r.blocked;
    wouldBlock ??= r.wouldBlock;
    return r.changed ? r.value.toString('base64') : null;
  });
  if (blocked !== null) return { value: text, changed: false, findings, blocked, wouldBlock: null, fingerprints };
  if (!outer.changed && encoded.every((e) => e === null)) return { value: text, changed: false, findings, blocked: null, wouldBlock, fingerprints };
  // The files go back where they were taken out: found again in the inspected rest by the same
  // reading (edits change string values, never the structure), each now an empty string.
  const places = outer.changed ? fileFieldsOf(outer.value, false) : null;
  if (outer.changed && (places === null || places.length !== fields.length)) return null;
  if (places !== null && fields.some((f, k) => f.file !== null && places[k]!.start !== places[k]!.end)) return null;
  let value = '';
  at = 0;
  let removed = 0;
  fields.forEach((f, k) => {
    if (f.file === null) return;
    const place = places?.[k]!.start ?? f.start - removed;
    removed += f.end - f.start;
    value += outer.value.slice(at, place) + (encoded[k] ?? text.slice(f.start, f.end));
    at = place;
  });
  value += outer.value.slice(at);
  return { value, changed: true, findings, blocked: null, wouldBlock, fingerprints };
}

/** A value in a field that holds a file (fileFieldsOf): where it stands in the text, and its bytes when it is one. */
interface FileField {
  start: number;
  end: number;
  location: string;
  /** The decoded bytes, when the value is canonical base64 of bytes a binary body would be made of. */
  file: Buffer | null;
}

/** The string values of the text (not of JSON nested in it) in fields that hold a file, in document order; null when the text is not JSON. */
function fileFieldsOf(text: string, decode: boolean): FileField[] | null {
  const doc = readJson(text, false);
  if (doc === null) return null;
  const typeOf = new Map<PathNode, string>();
  for (let seg = 0; seg < doc.count; seg++) {
    const parent = doc.parent[seg];
    if (parent && doc.part[seg] === 'type' && (doc.mode[seg]! & 3) !== Mode.number) typeOf.set(parent, doc.texts[doc.text[seg]!]!.slice(doc.start[seg], doc.end[seg]));
  }
  const fields: FileField[] = [];
  for (let seg = 0; seg < doc.count; seg++) {
    if (doc.text[seg] !== 0 || (doc.mode[seg]! & 3) !== Mode.string) continue;
    const part = doc.part[seg];
    const parent = doc.parent[seg];
    if (part !== 'blob' && !(part === 'data' && parent && (typeOf.get(parent) === 'image' || typeOf.get(parent) === 'audio'))) continue;
    const start = doc.start[seg]!;
    const end = doc.end[seg]!;
    fields.push({ start, end, location: decode ? locationOf(doc, { segment: seg, encoding: 'base64' } as Match) : '', file: decode ? fileBytes(text.slice(start, end)) : null });
  }
  return fields;
}

/** The bytes of a canonical base64 value when a body of them would be read as binary (inspectUnmarked), else null. */
function fileBytes(base64: string): Buffer | null {
  if (base64.length % 4 !== 0) return null;
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.toString('base64') !== base64) return null;
  return !isUtf8(bytes) && isBinaryBytes(bytes) ? bytes : null;
}

/** Where a body is probed for a run of base64 (mayHoldFile): every this many bytes. */
const fileProbeStride = 8192;
/** How many base64 characters in a row at a probe make a body worth reading for files. */
const fileProbeBytes = 64;

/**
 * Whether a JSON body may hold a file worth setting aside (withFilesSetAside): one of at least
 * `fileProbeStride + fileProbeBytes` characters has `fileProbeBytes` base64 characters in a row at one
 * of the probes, every `fileProbeStride` bytes. A few bytes read per probe in ordinary JSON (its
 * quotes, spaces and punctuation end a probe at once), where one search for a field name in the
 * whole body would cost a tenth of its Set passes. Smaller files are read as text, as before.
 */
function mayHoldFile(body: Uint8Array): boolean {
  if (body.length < fileProbeStride + fileProbeBytes || !looksLikeJson(body)) return false;
  for (let probe = fileProbeStride; probe + fileProbeBytes <= body.length; probe += fileProbeStride) {
    let i = probe;
    while (i < probe + fileProbeBytes && base64Byte[body[i]!] === 1) i++;
    if (i === probe + fileProbeBytes) return true;
  }
  return false;
}

/** The characters of standard base64, padding included, by byte. */
const base64Byte = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') base64Byte[c.charCodeAt(0)] = 1;

/**
 * A body that is neither UTF-8 nor text in a single-byte charset (see isBinaryBytes): a file, or bytes
 * sent to cost the most. Read as windows-1252 it would be a text of random characters, the worst case
 * of the Sets (docs/benchmarks.md: 256 KiB of random bytes, 1.7 s). What a person or a program reads
 * out of such bytes is their strings: runs of at least `binaryStringBytes` printable ASCII bytes, as
 * `strings(1)` lists them. Every other byte stands as a space, the text so made is inspected, and what
 * it masks is masked in the body byte for byte. (Compressed data, most of a file, is random bytes: a
 * third of them printable, scattered in short runs that spell nothing, which made 4 MiB of it cost
 * 14-16 s.) The spaces between two strings are at most `binaryGapBytes`, more than anything the
 * engine relates across (a pattern's widest witness, the context it looks back at, a keyword's
 * region): two strings further apart are read as they were, at a fraction of the length (random
 * bytes hold a string every few KiB). A value to be replaced by a placeholder (redact), or masked
 * into another length (a mask character outside ASCII, a credential masked whole), cannot be without
 * breaking the file: such a body is blocked.
 */
function inspectBinary(compiled: CompiledDataProtectionOk, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  const text = Buffer.allocUnsafe(body.length);
  // Wider than the compiled Sets' overlap, which bounds every entry's witness (Infinity: not bounded).
  const gapBytes = Math.max(binaryGapBytes, compiled.set!.overlapBytes);
  /** Each string kept: where it starts in the body, where in the text, and its length. */
  const strings: number[] = [];
  let length = 0;
  let gap = 0;
  /** The bytes since the last string, as spaces: at most gapBytes of them. */
  const writeGap = () => {
    const spaces = Math.min(gap, gapBytes);
    text.fill(0x20, length, length + spaces);
    length += spaces;
    gap = 0;
  };
  for (let i = 0; i < body.length; ) {
    let end = i;
    while (end < body.length && isStringByte(body[end]!)) end++;
    if (end - i >= binaryStringBytes) {
      writeGap();
      body.copy(text, length, i, end);
      strings.push(i, length, end - i);
      length += end - i;
    } else {
      gap += end - i;
    }
    i = end;
    while (i < body.length && !isStringByte(body[i]!)) {
      gap++;
      i++;
    }
  }
  writeGap();
  const read = text.subarray(0, length);
  const r = inspectUtf8(compiled, read, context, true);
  if (!r.changed) return { ...r, value: body };
  if (!maskedInPlace(r.value, read, compiled.policy.maskCharacter.charCodeAt(0)) || r.findings.some((x) => x.action === 'redact')) {
    const f = r.findings.find((x) => x.action === 'redact') ?? r.findings[0]!;
    return { ...r, value: body, changed: false, blocked: { group: f.group, detector: f.detector } };
  }
  // Masks change the characters of values, which stand only in strings.
  const value = Buffer.from(body);
  for (let k = 0; k < strings.length; k += 3) {
    const [at, from, n] = [strings[k]!, strings[k + 1]!, strings[k + 2]!];
    for (let j = 0; j < n; j++) if (r.value[from + j] !== read[from + j]) value[at + j] = r.value[from + j]!;
  }
  return { ...r, value };
}

/**
 * The edited text is the text with characters turned into the mask character, each where it was: the
 * same length, and no other byte changed. (Edits of different lengths could add up to the same
 * length: a credential masked whole to 32 characters, a placeholder. Those would shift the file.)
 */
function maskedInPlace(edited: Buffer, text: Buffer, maskByte: number): boolean {
  if (edited.length !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (edited[i] !== text[i] && edited[i] !== maskByte) return false;
  return true;
}

/** A byte of a binary body's strings: printable ASCII, tab, line feed, carriage return. */
function isStringByte(b: number): boolean {
  return (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * A body that is not UTF-8 was written in some other charset, most likely a single-byte one that
 * nobody declared (a text body with no charset): read as UTF-8, its 0xA0 between the groups of a card
 * would be U+FFFD, while its reader sees no-break spaces. It is read as windows-1252 (what browsers
 * read an undeclared single-byte body as; every byte is one character, so it is written back byte for
 * byte), then what that left is read as UTF-8 (a UTF-8 value among stray bytes): fail closed.
 */
function inspectNotUtf8(compiled: CompiledDataProtectionOk, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  const single = inspectUtf8(compiled, Buffer.from(decodeSingleByte(body, 'windows-1252'), 'utf8'), context, false);
  if (single.blocked) return { ...single, value: body };
  const bytes = single.changed ? encodeSingleByte(single.value.toString('utf8'), 'windows-1252', looksLikeJson(body)) : body;
  const utf8 = inspectUtf8(compiled, bytes, context, false);
  // A value both readings found (anything in ASCII, when nothing was masked: monitor mode) counts once.
  const seen = new Map<string, number>();
  for (const f of single.findings) seen.set(`${f.detector}\u0000${f.location}`, (seen.get(`${f.detector}\u0000${f.location}`) ?? 0) + 1);
  const more = utf8.findings.filter((f) => {
    const key = `${f.detector}\u0000${f.location}`;
    const n = seen.get(key) ?? 0;
    if (n > 0) seen.set(key, n - 1);
    return n === 0;
  });
  const hashes = new Set(single.fingerprints.map((p) => p.hash));
  return {
    value: utf8.changed ? utf8.value : bytes,
    changed: single.changed || utf8.changed,
    findings: [...single.findings, ...more],
    blocked: utf8.blocked,
    wouldBlock: single.wouldBlock ?? utf8.wouldBlock,
    fingerprints: [...single.fingerprints, ...utf8.fingerprints.filter((p) => !hashes.has(p.hash))],
  };
}

/**
 * An ASCII body (the usual JSON) is read and written as one character per byte, which is cheaper than
 * UTF-8 both ways, unless a mask character outside ASCII would be written into it.
 */
function readsByteForByte(compiled: CompiledDataProtectionOk, asciiBytes: boolean): boolean {
  return asciiBytes && compiled.policy.maskCharacter.charCodeAt(0) < 128;
}

/** A UTF-8 body (`asciiBytes`: all of it ASCII). */
function inspectUtf8(compiled: CompiledDataProtectionOk, body: Buffer, context: InspectContext, asciiBytes: boolean): InspectResult<Buffer> {
  const ascii = readsByteForByte(compiled, asciiBytes);
  // The text is made only when the Set pass needs its latin1 reading (see setPass) or something may match.
  let text: string | null = null;
  const pass = setPass(compiled, body, ascii ? () => (text ??= body.toString('latin1')) : () => body.toString('latin1'), looksLikeJson(body));
  if (pass === clean) return emptyResult(body);
  text ??= body.toString(ascii ? 'latin1' : 'utf8');
  // An ASCII body's edits are written straight into a copy of its bytes.
  const bytes = ascii ? body : null;
  const r = inspectJsonText(compiled, text, context, pass, bytes) ?? textResult(compiled, text, context, bytes);
  if (context.clientIds?.length && r.findings.some((f) => isTopLevelId(f.location))) {
    const again = inspectParsedBody(compiled, body, text, context);
    if (again) return again;
  }
  if (!r.changed) return { ...r, value: body };
  return { ...r, value: typeof r.value === 'string' ? (ascii ? Buffer.from(asciiJson(r.value), 'latin1') : Buffer.from(r.value, 'utf8')) : r.value };
}

/** The location of a top-level id: of the message ($.id), or of a message in a batch ($[3].id). */
export function isTopLevelId(location: string): boolean {
  if (location === '$.id') return true;
  if (!location.startsWith('$[') || !location.endsWith('].id') || location.length < 7) return false;
  for (let i = 2; i < location.length - 4; i++) {
    const c = location.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * A body where a value was found in a top-level id, which may be the client's (see clientIds): read
 * again parsed, with the client's ids set aside. Null when it is not JSON after all.
 */
function inspectParsedBody(compiled: CompiledDataProtectionOk, body: Buffer, text: string, context: InspectContext): InspectResult<Buffer> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const r = inspectJson(compiled, value, context);
  return { ...r, value: r.changed ? Buffer.from(JSON.stringify(r.value), 'utf8') : body };
}

/**
 * The value with the client's ids of its response messages set to null, and how to put them back into
 * an inspected copy; null when no message carries one.
 */
function withoutClientIds(value: unknown, clientIds: readonly (string | number)[]): { value: unknown; restore: (inspected: unknown) => unknown } | null {
  const messages = Array.isArray(value) ? value : [value];
  const kept = new Map<number, string | number>();
  messages.forEach((message, index) => {
    if (message === null || typeof message !== 'object' || Array.isArray(message) || 'method' in message || !('result' in message || 'error' in message)) return;
    const id = (message as { id?: unknown }).id;
    if ((typeof id === 'string' || typeof id === 'number') && clientIds.includes(id)) kept.set(index, id);
  });
  if (kept.size === 0) return null;
  const aside = messages.map((message, index) => (kept.has(index) ? { ...(message as object), id: null } : message));
  return {
    value: Array.isArray(value) ? aside : aside[0],
    restore: (inspected) => {
      const copies = Array.isArray(inspected) ? inspected : [inspected];
      for (const [index, id] of kept) (copies[index] as { id: unknown }).id = id;
      return inspected;
    },
  };
}

/**
 * An ASCII body stays ASCII: a value rewritten as a whole new JSON string (JSON.stringify, after a
 * mask character that needs escaping or a control character in the span) may hold characters its
 * \u escapes stood for; they are escaped again (\u00e9), which is the same JSON value. Written as
 * latin1 they would be wrong bytes.
 */
function asciiJson(s: string): string {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) < 128) i++;
  if (i === s.length) return s;
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c < 128 ? s[i] : `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** setPass found nothing that can match. */
const clean: number[] = [];

/** Bodies up to this size are tested for a glued control escape before the Set pass (see setPass). */
const preCheckLimit = 64 * 1024;

/**
 * The Set passes over a JSON text's bytes (the entries' two Sets, one pass each). Returns `clean` when nothing can
 * match, the hits when they stand for the values, null when only the decoded
 * values can tell (the Set then runs again over them, see scanTable).
 *
 * In raw JSON the letter of an escape such as \n is a word character: in
 * "\n4111..." the number does not start at a word boundary and a \b-anchored
 * pattern would not hit. The letters of these escapes are replaced by the
 * control characters they stand for, in a copy of the bytes of the same
 * length, and the Set runs over the copy: it then sees the boundaries the
 * decoded values have. Small bodies are tested for such an escape first (one
 * cheap native test), so a multi-line text costs one Set pass; larger ones
 * only when the Set hits its control-escape entry (such a letter glued to a
 * letter or digit). `json` says the text looks like JSON: otherwise a
 * backslash and a letter are what they are and the raw hits count. `latin1`
 * gives the bytes as one character each, made only when a copy is needed.
 */
function setPass(compiled: CompiledDataProtectionOk, bytes: Buffer, latin1: () => string, json: boolean): number[] | null {
  const set = compiled.set!;
  if (json && bytes.length <= preCheckLimit && compiled.controlEscape.test(bytes)) {
    const copy = withControlCharacters(bytes, latin1());
    if (copy !== null) {
      // The copy's "\<LF>" came from a "\n" escape: a line continuation only if the body itself has one.
      const hits = hasLineContinuation(bytes) ? set.match(copy) : set.match(copy).filter((h) => compiled.setEntries[h]?.kind !== 'line-continuation');
      return hits.length === 0 ? clean : trustedHits(compiled, hits);
    }
    const hits = set.match(bytes);
    return hits.length === 0 ? clean : null;
  }
  const hits = set.match(bytes);
  if (hits.length === 0) return clean;
  const trusted = trustedHits(compiled, hits);
  if (trusted !== null || !json || hits.some((h) => compiled.setEntries[h]?.kind === 'escape' || compiled.setEntries[h]?.kind === 'line-continuation')) return trusted;
  const copy = withControlCharacters(bytes, latin1());
  if (copy === null) return null;
  const again = set.match(copy);
  return again.length === 0 ? clean : trustedHits(compiled, again);
}

/** A backslash right before a line break. */
function hasLineContinuation(bytes: Buffer): boolean {
  return bytes.indexOf('\\\n') >= 0 || bytes.indexOf('\\\r') >= 0;
}

/** First and last non-blank bytes are {} or []. */
function looksLikeJson(bytes: Uint8Array): boolean {
  let i = 0;
  let j = bytes.length - 1;
  while (i < j && isBlank(bytes[i]!)) i++;
  while (j > i && isBlank(bytes[j]!)) j--;
  const a = bytes[i];
  const b = bytes[j];
  return (a === 123 && b === 125) || (a === 91 && b === 93);
}

function isBlank(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

/** The control character each escape letter stands for (b f n r t), by letter code. */
const controlOf = new Int32Array(128);
controlOf[98] = 8;
controlOf[102] = 12;
controlOf[110] = 10;
controlOf[114] = 13;
controlOf[116] = 9;

function isWordCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/**
 * A copy of the bytes where the letter of each escape \b \f \n \r \t is the
 * control character it stands for (`latin1` is the bytes as one character
 * each, for finding them). The bytes themselves when there is none; null when
 * one of those letters glued to a letter or digit follows an even run of
 * backslashes (an escaped backslash and a letter, or an escape of JSON nested
 * in a string): only the decoded values can tell what that stands for.
 */
function withControlCharacters(bytes: Buffer, latin1: string): Buffer | null {
  let copy: Buffer | null = null;
  for (let i = latin1.indexOf('\\'); i >= 0; ) {
    let j = i + 1;
    while (latin1.charCodeAt(j) === 92) j++;
    const c = latin1.charCodeAt(j);
    if (c < 128 && controlOf[c] !== 0) {
      if (((j - i) & 1) === 1) (copy ??= Buffer.from(bytes))[j] = controlOf[c]!;
      else if (isWordCode(latin1.charCodeAt(j + 1))) return null;
    }
    i = latin1.indexOf('\\', j + 1);
  }
  return copy ?? bytes;
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
    if (kind === 'escape' || kind === 'line-continuation' || kind === 'control-escape') return null;
  }
  return hits;
}

/** null when the text is not JSON. */
function inspectJsonText(compiled: CompiledDataProtectionOk, text: string, context: InspectContext, hits: number[] | null, bytes: Buffer | null): InspectResult<string | Buffer> | null {
  const scanKeys = compiled.policy.scanKeys === true || (compiled.policy.scanKeys === 'request' && context.direction === 'request');
  const doc = readJson(text, scanKeys);
  if (doc === null) return null;
  return inspectDocument(compiled, doc, context, hits, text, null, bytes);
}

function inspectDocument(
  compiled: CompiledDataProtectionOk, doc: Document, context: InspectContext, hits: number[] | null, original: string, location: string | null, bytes: Buffer | null,
): InspectResult<string | Buffer> {
  const matches = scanTable(compiled, doc, hits, 0);
  if (matches.length === 0) return emptyResult(original);
  return applyMatches(compiled, context, matches, doc, original, location, bytes);
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

/**
 * One pass over a JSON text: every string value (and number, and key when
 * scanKeys) becomes a segment. Returns null when the text is not JSON.
 */
function readJson(text: string, scanKeys: boolean): Document | null {
  const doc = newDocument(Math.min(1024, 16 + (text.length >> 5)));
  doc.texts.push(text);
  doc.origins.push({ host: -1, hostStart: 0, hostEnd: text.length });
  return readDocument(doc, 0, { parent: null, part: null }, '', 0, scanKeys) ? doc : null;
}

/** An open object or array while reading. */
interface Frame {
  node: PathNode;
  isArray: boolean;
  /** The field name values inside take as context: the key just read, or the array's own field name. */
  fieldName: string;
  index: number;
}

/**
 * Reads texts[textIndex] as one JSON document (iteratively, with its own
 * stack). False, with nothing added to the document, when it is not JSON.
 */
function readDocument(doc: Document, textIndex: number, root: PathNode, rootFieldName: string, depth: number, scanKeys: boolean): boolean {
  const segments = doc.count;
  const texts = doc.texts.length;
  const s = doc.texts[textIndex]!;
  const n = s.length;
  const stack: Frame[] = [];
  const keyCache: (string | undefined)[] = new Array(256);
  let i = 0;
  /** Position of the next backslash at or after the last string start looked at (n when none). */
  let backslash = -1;
  // the value about to be read: its field name and path
  let fieldName = rootFieldName;
  let parent: PathNode | null = root.parent;
  let part: PathPart | null = root.part;
  let node: PathNode | null = root;
  /** Set when a property name comes next (at i, its opening quote): the object it belongs to. */
  let keyOf: Frame | null = null;
  /** The text's last quote has not been tried as the end of a long escaped string (see below). */
  let mayGuessClose = true;
  /** Values read after the first one (see below). */
  let records = 0;
  fail: for (;;) {
    let c: number;
    if (keyOf !== null) {
      // `"key" :` into the frame and the next value's path
      const at = i;
      let close = s.indexOf('"', at + 1);
      for (;;) {
        if (close < 0) break fail;
        let k = close - 1;
        while (s.charCodeAt(k) === 92) k--;
        if ((close - 1 - k) % 2 === 0) break;
        close = s.indexOf('"', close + 1);
      }
      if (backslash < at) {
        backslash = s.indexOf('\\', at);
        if (backslash < 0) backslash = n;
      }
      const escaped = backslash < close;
      let key: string;
      if (escaped) {
        try {
          key = JSON.parse(s.slice(at, close + 1)) as string;
        } catch {
          break fail;
        }
      } else {
        // Field names repeat (one per record): the same string is reused instead of a new slice each time.
        const length = close - at - 1;
        const slot = (length * 31 + s.charCodeAt(at + 1) * 7 + s.charCodeAt(close - 1)) & 255;
        const known = keyCache[slot];
        if (known !== undefined && known.length === length && s.startsWith(known, at + 1)) {
          key = known;
        } else {
          key = s.slice(at + 1, close);
          keyCache[slot] = key;
        }
      }
      if (scanKeys) {
        if (escaped) {
          const index = doc.texts.length;
          doc.texts.push(key);
          doc.origins.push({ host: textIndex, hostStart: at, hostEnd: close + 1 });
          addSegment(doc, index, 0, key.length, keyOf.fieldName, Mode.decoded | isKey, keyOf.node, key);
        } else {
          addSegment(doc, textIndex, at + 1, close, keyOf.fieldName, Mode.string | isKey, keyOf.node, key);
        }
      }
      i = close + 1;
      c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (c !== 58) break fail;
      fieldName = key;
      parent = keyOf.node;
      part = key;
      node = null;
      keyOf = null;
      i++;
    }
    // a value
    c = s.charCodeAt(i);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
    if (c === 34) {
      const open = i;
      let decoded: string | null = null;
      // the closing quote: the first one not escaped by an odd run of backslashes
      let close = s.indexOf('"', open + 1);
      let escapedQuotes = 0;
      for (;;) {
        if (close < 0) break fail;
        let k = close - 1;
        while (s.charCodeAt(k) === 92) k--;
        if ((close - 1 - k) % 2 === 0) break;
        if (++escapedQuotes === longEscapedString && mayGuessClose) {
          // A long string of escaped JSON (MCP text content) is usually the text's last string: its
          // last quote is tried, once per text. JSON.parse succeeds on the slice only when that quote
          // is the closing one (a later one leaves characters after the string, an earlier one an
          // unterminated string), and the string is parsed below anyway.
          mayGuessClose = false;
          const last = s.lastIndexOf('"');
          if (last > close) {
            try {
              decoded = JSON.parse(s.slice(open, last + 1)) as string;
              close = last;
              break;
            } catch {
              // not the closing quote: on with the escaped quotes
            }
          }
        }
        close = s.indexOf('"', close + 1);
      }
      if (backslash < open) {
        backslash = s.indexOf('\\', open);
        if (backslash < 0) backslash = n;
      }
      i = close + 1;
      if (decoded === null && backslash < close) {
        try {
          decoded = JSON.parse(s.slice(open, close + 1)) as string;
        } catch {
          break fail;
        }
      }
      const lead = decoded !== null ? decoded.charCodeAt(0) : s.charCodeAt(open + 1);
      const length = decoded !== null ? decoded.length : close - open - 1;
      let nested = false;
      if ((lead === 123 || lead === 91) && length > 1 && depth < maxEmbeddedDepth) {
        // JSON nested in a string (MCP text content): the decoded string is read as a document of its own.
        const index = doc.texts.length;
        doc.texts.push(decoded ?? s.slice(open + 1, close));
        doc.origins.push({ host: textIndex, hostStart: open, hostEnd: close + 1 });
        nested = readDocument(doc, index, { parent: { parent, part }, part: null, embedded: true }, fieldName, depth + 1, scanKeys);
        if (!nested) {
          doc.texts.length = index;
          doc.origins.length = index;
        }
      }
      if (!nested) {
        if (decoded === null) {
          addSegment(doc, textIndex, open + 1, close, fieldName, Mode.string, parent, part);
        } else {
          const index = doc.texts.length;
          doc.texts.push(decoded);
          doc.origins.push({ host: textIndex, hostStart: open, hostEnd: close + 1 });
          addSegment(doc, index, 0, decoded.length, fieldName, Mode.decoded, parent, part);
        }
      }
    } else if (c === 123 || c === 91) {
      const frame: Frame = { node: node ?? { parent, part }, isArray: c === 91, fieldName, index: 0 };
      i++;
      c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (c === (frame.isArray ? 93 : 125)) {
        i++;
      } else {
        stack.push(frame);
        if (frame.isArray) {
          parent = frame.node;
          part = 0;
          node = null;
          continue;
        }
        // an object: its first key
        if (c !== 34) break;
        keyOf = frame;
        continue;
      }
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      if (c === 45) c = s.charCodeAt(++i);
      if (c === 48) c = s.charCodeAt(++i);
      else if (c >= 49 && c <= 57) while (c >= 48 && c <= 57) c = s.charCodeAt(++i);
      else break;
      if (c === 46) {
        c = s.charCodeAt(++i);
        if (!(c >= 48 && c <= 57)) break;
        while (c >= 48 && c <= 57) c = s.charCodeAt(++i);
      }
      if (c === 101 || c === 69) {
        c = s.charCodeAt(++i);
        if (c === 43 || c === 45) c = s.charCodeAt(++i);
        if (!(c >= 48 && c <= 57)) break;
        while (c >= 48 && c <= 57) c = s.charCodeAt(++i);
      }
      addSegment(doc, textIndex, start, i, fieldName, Mode.number, parent, part);
    } else if (c === 116 && s.startsWith('true', i)) {
      i += 4;
    } else if (c === 102 && s.startsWith('false', i)) {
      i += 5;
    } else if (c === 110 && s.startsWith('null', i)) {
      i += 4;
    } else {
      break;
    }
    // after a value: a separator, the end of containers, or the end of the text
    for (;;) {
      c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (i === n) return true;
        if (depth > 0) break fail;
        // Another value after the first: JSON Lines, concatenated JSON (what a decoder reading values
        // in a loop takes). Each is a record, located by its index: $[0], $[1]...
        if (records === 0) root.part = 0;
        parent = null;
        part = ++records;
        node = null;
        fieldName = rootFieldName;
        continue fail;
      }
      i++;
      if (c === 44) {
        if (top.isArray) {
          parent = top.node;
          part = ++top.index;
          fieldName = top.fieldName;
          node = null;
          continue fail;
        }
        c = s.charCodeAt(i);
        while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
        if (c !== 34) break fail;
        keyOf = top;
        continue fail;
      }
      if (c !== (top.isArray ? 93 : 125)) break fail;
      stack.pop();
    }
  }
  truncate(doc, segments, texts);
  return false;
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

const fieldParts = new Map<string, string>();

function partText(part: PathPart | null): string {
  if (part === null) return '';
  if (typeof part === 'number') return `[${part}]`;
  let text = fieldParts.get(part);
  if (text === undefined) {
    text = isIdentifier(part) ? `.${part}` : `[${JSON.stringify(part)}]`;
    if (fieldParts.size >= 4096) fieldParts.clear();
    fieldParts.set(part, text);
  }
  return text;
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
  bytes: Buffer | null,
): InspectResult<string | Buffer> {
  const findings: DataFinding[] = new Array(matches.length);
  const fingerprints: ValueFingerprint[] = [];
  let blocked: BlockedBy | null = null;
  const actions = new Map<CompiledDetector, DataProtectionAction>();
  const key = compiled.fingerprintKey;
  const prefix = key ? keyPrefix(key) : null;
  const printed = new Map<string, { hash: string; shape: CanonicalShape | null; detectors: CompiledDetector[] | null }>();
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
    if (prefix !== null) {
      const canonical = canonicalForm(matchedText(doc, m));
      // A value repeated in a body (a customer's address on every order) is hashed and remembered once per detector.
      let print = printed.get(canonical);
      if (print === undefined) {
        const shape = context.direction === 'response' ? canonicalShape(key!, canonical) : null;
        printed.set(canonical, (print = { hash: fingerprintOfCanonical(prefix, canonical), shape, detectors: null }));
      }
      if (print.detectors === null || !print.detectors.includes(d)) {
        (print.detectors ??= []).push(d);
        const f: ValueFingerprint = { hash: print.hash, dataClass: d.def.dataClass, detector: d.def.id, group: d.def.group };
        if (print.shape !== null) f.shape = print.shape;
        fingerprints.push(f);
      }
    }
    if (action === 'block') blocked ??= { group: d.def.group, detector: d.def.id };
  }
  if (compiled.monitor) return { value: original, changed: false, findings, blocked: null, wouldBlock: blocked, fingerprints };
  if (blocked) return { value: original, changed: false, findings, blocked, wouldBlock: null, fingerprints };
  const edits = editsOf(compiled, doc, matches, actions, bytes);
  if (edits === null) return { value: original, changed: false, findings, blocked: null, wouldBlock: null, fingerprints };
  const maskCharacter = compiled.policy.maskCharacter;
  const value = bytes !== null ? writeTextEdits(bytes, edits, maskCharacter.charCodeAt(0)) : applyTextEdits(doc.texts[0]!, edits, maskCharacter);
  return { value, changed: true, findings, blocked: null, wouldBlock: null, fingerprints };
}

/** The characters of a match as a reader gets them: in text, with its JSON escapes decoded (see matchesOfText). */
function matchedText(doc: Document, m: Match): string {
  const base = doc.start[m.segment]!;
  const value = doc.texts[doc.text[m.segment]!]!.slice(base + m.start, base + m.end);
  return (doc.mode[m.segment]! & 3) === Mode.text && value.includes('\\') ? decodeJsonEscapes(value) : value;
}

function locationOf(doc: Document, m: Match): string {
  const seg = m.segment;
  const parent = doc.parent[seg]!;
  let path = (parent === null ? '$' : (parent.full ??= '$' + pathText(parent))) + partText(doc.part[seg]!);
  if ((doc.mode[seg]! & isKey) !== 0) path += ' (key)';
  if (m.encoding) path += ` (${m.encoding})`;
  return path;
}

/**
 * Edits of one text, in parallel lists. A mask of a value in ASCII is kept as
 * a count rather than a new string: replacement null means the first
 * masked[k] letters and digits of [start, end) become the mask character,
 * the other characters staying as they are (what mask() returns for it). The
 * span's characters are then the value's own (see editsOf), so the mask can be
 * written straight into the output.
 */
interface TextEdits {
  start: number[];
  end: number[];
  replacement: (string | null)[];
  masked: number[];
  /** Every replacement can stand inside a JSON string as it is. */
  plain: boolean;
}

/** Letters and digits of ASCII, by code (what mask() replaces). */
const asciiAlnum = new Uint8Array(128);
for (let c = 0; c < 128; c++) asciiAlnum[c] = isAsciiAlnum(c) ? 1 : 0;

/** The final edits of the whole text (texts[0]) with every mask and redaction applied, or null when nothing is to change. */
function editsOf(compiled: CompiledDataProtectionOk, doc: Document, matches: Match[], actions: Map<CompiledDetector, DataProtectionAction>, bytes: Buffer | null): TextEdits | null {
  const maskCharacter = compiled.policy.maskCharacter;
  const maskIsPlain = jsonPlain(maskCharacter);
  const perText = new Map<number, TextEdits>();
  let lastText = -1;
  let last: TextEdits | null = null;
  const add = (text: number, start: number, end: number, replacement: string | null, masked: number, plain: boolean) => {
    if (text !== lastText) {
      lastText = text;
      last = perText.get(text) ?? null;
      if (last === null) perText.set(text, (last = { start: [], end: [], replacement: [], masked: [], plain: true }));
    }
    last!.start.push(start);
    last!.end.push(end);
    last!.replacement.push(replacement);
    last!.masked.push(masked);
    if (!plain) last!.plain = false;
  };
  // The first backslash at or after a place, per text: matches come in order, so one search serves
  // every match up to the backslash it found (an indexOf from each match to the end of a text without
  // one would make a text with many matches quadratic).
  const backslashCursor = new Map<number, { from: number; at: number }>();
  const backslashFrom = (text: number, from: number): number => {
    const cursor = backslashCursor.get(text);
    if (cursor !== undefined && from >= cursor.from && (cursor.at < 0 || cursor.at >= from)) return cursor.at;
    const at = doc.texts[text]!.indexOf('\\', from);
    backslashCursor.set(text, { from, at });
    return at;
  };
  // Matches come sorted by segment and start, without overlaps.
  let whole: { seg: number; edits: Edit[] } | null = null;
  const flushWhole = () => {
    if (!whole) return;
    // The value is written as a whole new JSON string in the text holding its token.
    const { seg, edits } = whole;
    whole = null;
    const value = applyEdits(valueOf(doc, seg), edits, 0);
    const mode = doc.mode[seg]! & 3;
    const text = doc.text[seg]!;
    if (mode === Mode.decoded) {
      const o = doc.origins[text]!;
      add(o.host, o.hostStart, o.hostEnd, JSON.stringify(value), 0, false);
    } else if (mode === Mode.string) {
      add(text, doc.start[seg]! - 1, doc.end[seg]! + 1, JSON.stringify(value), 0, false);
    } else {
      add(text, doc.start[seg]!, doc.end[seg]!, JSON.stringify(value), 0, false);
    }
  };
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    const d = m.detector;
    const action = actions.get(d)!;
    if (action !== 'mask' && action !== 'redact') continue;
    const seg = m.segment;
    const base = doc.start[seg]!;
    const text = doc.text[seg]!;
    const redact = action === 'redact' || m.encoding !== null;
    if (whole && whole.seg !== seg) flushWhole();
    const mode = doc.mode[seg]! & 3;
    if (mode === Mode.text) {
      // A value spelled with JSON escapes in text (JSON no strict parser takes): masked as a lenient
      // parser reads it, and written back escaped, so the text parses as it did.
      const from = base + m.start;
      const to = base + m.end;
      const backslash = backslashFrom(text, from);
      if (backslash >= 0 && backslash < to) {
        const spelled = doc.texts[text]!.slice(from, to);
        const value = decodeJsonEscapes(spelled);
        if (value !== spelled) {
          add(text, from, to, redact ? `[REDACTED:${d.def.dataClass}]` : jsonEscaped(mask(value, d.maskKeep, maskCharacter, masksWhole(d))), 0, false);
          continue;
        }
      }
    }
    const inPlace = mode === Mode.text || ((mode === Mode.string || mode === Mode.decoded) && maskIsPlain);
    if (inPlace && !redact && !masksWhole(d)) {
      // mask()'s counting pass, without building the string when the value is ASCII
      const s = doc.texts[text]!;
      const from = base + m.start;
      const to = base + m.end;
      let total = 0;
      let control = false;
      let j = from;
      for (; j < to; j++) {
        const c = s.charCodeAt(j);
        if (c >= 128) break;
        if (asciiAlnum[c] === 1) total++;
        else if (c < 32) control = true;
      }
      if (j === to) {
        const keep = d.maskKeep;
        add(text, from, to, null, total - (total > keep * 2 ? keep : 0), maskIsPlain && !control);
        continue;
      }
    }
    maskKeptControl = false;
    const replacement = redact ? `[REDACTED:${d.def.dataClass}]` : mask(doc.texts[text]!.slice(base + m.start, base + m.end), d.maskKeep, maskCharacter, masksWhole(d));
    if (inPlace) {
      // Replaced in place: the text around the value stays as it was. A value that had escapes is its
      // own decoded text; its edits are mapped onto its JSON string below, as a nested document's are.
      add(text, base + m.start, base + m.end, replacement, 0, maskIsPlain && !maskKeptControl);
    } else {
      whole ??= { seg, edits: [] };
      whole.edits.push({ start: m.start, end: m.end, replacement });
    }
  }
  flushWhole();
  if (perText.size === 0) return null;
  // A nested document (or a decoded value) is read after the text holding it, so it has a higher index: innermost first.
  for (let index = doc.texts.length - 1; index > 0; index--) {
    const list = perText.get(index);
    if (!list) continue;
    const o = doc.origins[index]!;
    const decoded = doc.texts[index]!;
    if (!list.plain || !sortedEdits(list)) {
      add(o.host, o.hostStart, o.hostEnd, JSON.stringify(applyTextEdits(decoded, list, maskCharacter)), 0, false);
      continue;
    }
    // Replacements that need no escape go straight into the host's JSON string: decoded offsets are
    // mapped to the host's characters, where each escape (\" \\ \n \u0041...) stands for one character.
    // One pass from escape to escape serves all the (sorted) edits. The body's bytes, when given, are
    // its characters: reading them is cheaper than charCodeAt.
    const host: Uint8Array | string = o.host === 0 && bytes !== null ? bytes : doc.texts[o.host]!;
    let raw = o.hostStart + 1;
    let decodedAt = 0;
    let escape = nextBackslash(host, raw);
    /** Moves the cursor to decoded offset `to` (never backwards) and returns the host offset there. */
    const seek = (to: number): number => {
      while (escape >= 0 && escape < o.hostEnd && decodedAt + (escape - raw) < to) {
        decodedAt += escape - raw + 1;
        raw = escape + ((typeof host === 'string' ? host.charCodeAt(escape + 1) : host[escape + 1]) === 117 ? 6 : 2);
        escape = nextBackslash(host, raw);
      }
      raw += to - decodedAt;
      decodedAt = to;
      return raw;
    };
    for (let k = 0; k < list.start.length; k++) {
      const start = list.start[k]!;
      const end = list.end[k]!;
      const rawStart = seek(start);
      seek(end);
      let replacement = list.replacement[k]!;
      // A mask kept as a count needs the span to be the value's characters: with an escape inside, it is written out.
      if (replacement === null && raw - rawStart !== end - start) replacement = maskedSpan(decoded, start, end, list.masked[k]!, maskCharacter);
      add(o.host, rawStart, raw, replacement, list.masked[k]!, true);
    }
  }
  return perText.get(0)!;
}

/**
 * The first backslash at or after `from` (-1 when none): the next few characters are read first,
 * which is cheaper than indexOf where escapes are dense (JSON nested in a string).
 */
function nextBackslash(host: Uint8Array | string, from: number): number {
  if (typeof host === 'string') {
    const stop = Math.min(from + 16, host.length);
    for (let i = from; i < stop; i++) if (host.charCodeAt(i) === 92) return i;
    return stop < host.length ? host.indexOf('\\', stop) : -1;
  }
  const stop = Math.min(from + 16, host.length);
  for (let i = from; i < stop; i++) if (host[i] === 92) return i;
  return stop < host.length ? host.indexOf(92, stop) : -1;
}

function sortedEdits(e: TextEdits): boolean {
  for (let i = 1; i < e.start.length; i++) if (e.start[i]! < e.start[i - 1]!) return false;
  return true;
}

/** The order to apply a text's edits in: null when they are sorted already (a nested document's edit may come after the others). */
function editOrder(e: TextEdits): number[] | null {
  const n = e.start.length;
  for (let i = 1; i < n; i++) {
    if (e.start[i]! < e.start[i - 1]!) return Array.from({ length: n }, (_, k) => k).sort((a, b) => e.start[a]! - e.start[b]!);
  }
  return null;
}

/** The text of [start, end) with its first `masked` letters and digits (ASCII) replaced by the mask character. */
function maskedSpan(text: string, start: number, end: number, masked: number, maskCharacter: string): string {
  const value = text.slice(start, end);
  if (masked === 0) return value;
  let seen = 0;
  let out = '';
  let from = 0;
  let i = 0;
  for (; i < value.length && seen < masked; i++) {
    if (asciiAlnum[value.charCodeAt(i)] === 1) {
      seen++;
      continue;
    }
    // a run of letters and digits ends: masked whole
    if (i > from) out += repeated(maskCharacter, i - from);
    out += value[i];
    from = i + 1;
  }
  if (i > from) out += repeated(maskCharacter, i - from);
  return out + value.slice(i);
}

/** Applies a text's edits. */
function applyTextEdits(text: string, e: TextEdits, maskCharacter: string): string {
  const n = e.start.length;
  const order = editOrder(e);
  const parts: string[] = new Array(n * 2 + 1);
  let cursor = 0;
  let p = 0;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k]! : k;
    const start = e.start[i]!;
    parts[p++] = text.slice(cursor, start);
    parts[p++] = e.replacement[i] ?? maskedSpan(text, start, e.end[i]!, e.masked[i]!, maskCharacter);
    cursor = e.end[i]!;
  }
  parts[p] = text.slice(cursor);
  return parts.join('');
}

/**
 * Applies the edits of the whole text to its bytes, one byte per character
 * (an ASCII body read as latin1): the same bytes Buffer.from(applyTextEdits(...), 'latin1')
 * gives, without building the string. Masks kept as counts are written over
 * the copied bytes of their span.
 */
function writeTextEdits(bytes: Buffer, e: TextEdits, maskByte: number): Buffer {
  const n = e.start.length;
  const order = editOrder(e);
  let size = bytes.length;
  let sameLength = true;
  for (let i = 0; i < n; i++) {
    const r = e.replacement[i] === null ? null : (e.replacement[i] = asciiJson(e.replacement[i]!));
    if (r === null) continue;
    const change = r.length - (e.end[i]! - e.start[i]!);
    if (change !== 0) {
      size += change;
      sameLength = false;
    }
  }
  const out = Buffer.allocUnsafe(size);
  if (sameLength) {
    // every edit keeps its span's length: one copy, then each span is overwritten in place
    bytes.copy(out, 0);
    for (let i = 0; i < n; i++) {
      const r = e.replacement[i]!;
      if (r === null) maskBytes(out, e.start[i]!, e.end[i]!, e.masked[i]!, maskByte);
      else out.write(r, e.start[i]!, 'latin1');
    }
    return out;
  }
  let cursor = 0;
  let o = 0;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k]! : k;
    const start = e.start[i]!;
    const end = e.end[i]!;
    o += bytes.copy(out, o, cursor, start);
    const r = e.replacement[i]!;
    if (r === null) {
      bytes.copy(out, o, start, end);
      maskBytes(out, o, o + end - start, e.masked[i]!, maskByte);
      o += end - start;
    } else {
      o += out.write(r, o, 'latin1');
    }
    cursor = end;
  }
  bytes.copy(out, o, cursor);
  return out;
}

/** Replaces the first `masked` ASCII letters and digits of out[start, end) with the mask byte. */
function maskBytes(out: Buffer, start: number, end: number, masked: number, maskByte: number): void {
  let seen = 0;
  for (let j = start; j < end && seen < masked; j++) {
    if (asciiAlnum[out[j]!] === 1) {
      out[j] = maskByte;
      seen++;
    }
  }
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
  // one pass: letters and digits counted, anything outside ASCII sends the text to the general path
  let total = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128) return maskUnicode(text, keep, maskCharacter);
    if (isAsciiAlnum(c)) total++;
    else if (c < 32) maskKeptControl = true;
  }
  const visible = total > keep * 2 ? keep : 0;
  const masked = total - visible;
  if (total === text.length) return repeated(maskCharacter, masked) + text.slice(masked);
  let seen = 0;
  let out = '';
  let run = 0;
  let i = 0;
  for (; i < text.length && seen < masked; i++) {
    if (isAsciiAlnum(text.charCodeAt(i))) {
      seen++;
      run++;
    } else {
      if (run > 0) out += repeated(maskCharacter, run);
      run = 0;
      out += text[i];
    }
  }
  if (run > 0) out += repeated(maskCharacter, run);
  return out + text.slice(i);
}

function maskUnicode(text: string, keep: number, maskCharacter: string): string {
  const chars = [...text];
  let total = 0;
  const alnum = chars.map((ch) => {
    const a = isLetterOrDigit(ch);
    if (a) total++;
    else if (ch.charCodeAt(0) < 32) maskKeptControl = true;
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

/** Set by mask() when the text had a control character (kept as a separator, it would need a JSON escape). */
let maskKeptControl = false;

let repeatedOf = '*';
const repeatedCache: string[] = [];

/** maskCharacter.repeat(n), kept for the usual lengths. */
function repeated(maskCharacter: string, n: number): string {
  if (maskCharacter !== repeatedOf) {
    repeatedOf = maskCharacter;
    repeatedCache.length = 0;
  }
  if (n >= 64) return maskCharacter.repeat(n);
  return (repeatedCache[n] ??= maskCharacter.repeat(n));
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function isLetterOrDigit(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return isUnicodeLetterOrDigit(c);
}
