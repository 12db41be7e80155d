// Streaming responses: SSE events are inspected one whole event at a time
// (their data: lines carry JSON-RPC messages). A text stream is released piece
// by piece, each piece cut where no value the engine could find runs across the
// cut (see releasePoint), and inspected with the text around it as context.
// Memory is bounded: an event by maxEventBytes, held text by the policy's
// maxStreamHoldBytes; past either, the held text is dropped (fail closed).
import { isUtf8 } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import type { DataFinding } from '../decision/decision.ts';
import { createSseSplitter, withData, type SseEvent, type SseSplitter } from '../mcp/sse.ts';
import type { CompiledDataProtection } from './compile.ts';
import { inspectJson, inspectText, inspectTextRange, textMatches, type BlockedBy, type InspectContext, type InspectResult, type ValueFingerprint } from './inspect.ts';
import { contextReachOf } from './scan.ts';
import { isBinaryBytes } from './charset.ts';

export interface StreamInspector {
  /** Returns the bytes that may be sent now (possibly empty while an event is incomplete). */
  push(chunk: Buffer): Buffer;
  /** Flushes what is held back at the end of the stream. */
  end(): Buffer;
  findings(): DataFinding[];
  /** Keyed hashes of the values found so far, for data-flow tracking (empty without a fingerprint key). */
  fingerprints(): ValueFingerprint[];
  /**
   * First block decision; the data path ends the stream with an error event when set. Output
   * returned with it never holds the blocked value: for an event stream, nothing of the blocking
   * event; for a JSON-lines stream, the whole lines before the blocking one.
   */
  blocked(): BlockedBy | null;
  /**
   * Set when held text outgrew its limit and was dropped rather than passed on unread: an event of
   * an event stream (the stream goes on with the next event), or text with no safe cut within
   * maxStreamHoldBytes (nothing more of the stream is released; the data path ends it).
   */
  exceeded(): StreamLimitExceeded | null;
}

export interface StreamLimitExceeded {
  kind: 'event' | 'text';
  limitBytes: number;
}

/**
 * Characters of a text stream held back after a cut, so a value still arriving is seen whole:
 * longer than any value a detector reports with a space or line break inside, except the ones
 * the engine already sees reaching the end of the held text (a PEM block, a bearer token), which
 * releasePoint holds back whole.
 */
export const rawStreamTail = 256;

/** Streams of one JSON value per line (JSON Lines, NDJSON, JSON text sequences). */
const jsonLinesSubtypes = ['x-ndjson', 'ndjson', 'jsonl', 'x-jsonlines', 'jsonlines', 'json-seq'];

/** application/x-ndjson, jsonl, json-seq...: the media type starts the Content-Type, in any case, and ends there or before a non-word character. */
export function isJsonLinesType(contentType: string): boolean {
  if (!startsWithIgnoringCase(contentType, 'application/', 0)) return false;
  return jsonLinesSubtypes.some((subtype) => startsWithIgnoringCase(contentType, subtype, 12) && !isWordCode(contentType.charCodeAt(12 + subtype.length)));
}

/** `text` has `lower` (lower-case ASCII) at `at`, ASCII letters in either case. */
function startsWithIgnoringCase(text: string, lower: string, at: number): boolean {
  if (text.length < at + lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const p = lower.charCodeAt(i);
    const c = text.charCodeAt(at + i);
    if (c !== p && !(p >= 97 && p <= 122 && c === p - 32)) return false;
  }
  return true;
}

function isWordCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/**
 * Types whose bytes are binary by definition and hold no text a raw read could find: images (not
 * image/svg+xml, which is XML), audio, video, fonts, PDF (its text sits in compressed streams, and its
 * first KiB is binary on purpose), archives and compressed files, wasm, protobuf and gRPC. An answer so
 * labelled is not asked for, so its bytes never cross ext_proc: the body mode is chosen at the headers
 * and cannot be dropped once a streamed body has begun. Any other type that is not read as JSON or
 * text is sniffed (looksBinary): octet-stream, unknown types, and office types, under which text
 * exports travel (a CSV labelled application/vnd.ms-excel).
 */
const binaryTypes =
  /^(?:image\/(?!svg\+xml(?![\w.-]))|audio\/|video\/|font\/|application\/(?:pdf|zip|gzip|x-gzip|x-tar|x-7z-compressed|x-rar-compressed|vnd\.rar|x-bzip2|x-xz|zstd|wasm|protobuf|x-protobuf|grpc)(?![\w.-]))/i;

/** Whether an answer of this content type passes without its body being asked for (see binaryTypes). */
export function isBinaryType(contentType: string): boolean {
  return binaryTypes.test(contentType);
}

/** How much of a sniffed answer decides whether it is text: the start of its first chunk, at most this many bytes. */
export const sniffedBytes = 1024;

/**
 * Whether the first bytes of an answer are binary rather than text (an answer of no, an unknown or an
 * office content type is read as text unless they are: an application/vnd.ms-excel may well be a CSV
 * export): a NUL byte, bytes that are not UTF-8 (a sequence cut at the end of the sample is allowed),
 * or more than one in ten control bytes other than tab, line feed, carriage return and form feed, in
 * the first `sniffedBytes`.
 */
export function looksBinary(bytes: Uint8Array): boolean {
  const sample = bytes.subarray(0, sniffedBytes);
  if (isBinaryBytes(sample)) return true;
  for (let cut = 0; cut <= 3 && cut < sample.length; cut++) if (isUtf8(sample.subarray(0, sample.length - cut))) return false;
  return sample.length > 0;
}

export function createStreamInspector(
  compiled: CompiledDataProtection,
  context: InspectContext & {
    contentType: string;
    /** Largest event of an event stream held until complete (the data path: the Persona's maxBodyBytes); default maxStreamHoldBytes. */
    maxEventBytes?: number;
  },
): StreamInspector {
  const isSse = startsWithIgnoringCase(context.contentType, 'text/event-stream', 0);
  const lineOriented = isJsonLinesType(context.contentType);
  const scanning = compiled.ok && compiled.active;
  const monitor = compiled.ok && compiled.monitor;
  const maxHold = compiled.ok ? compiled.policy.maxStreamHoldBytes : 65_536;
  const maxEvent = context.maxEventBytes ?? maxHold;
  const reach = compiled.ok ? contextReachOf(compiled) : 0;
  const decoder = new StringDecoder('utf8');
  const found: DataFinding[] = [];
  const prints: ValueFingerprint[] = [];
  let blocked: BlockedBy | null = null;
  let exceeded: StreamLimitExceeded | null = null;
  let pending = '';
  /** The end of the released text, as received: context for what follows. */
  let released = '';
  const events = isSse ? createSseSplitter() : null;

  const note = (r: { findings: DataFinding[]; blocked: BlockedBy | null; fingerprints: ValueFingerprint[] }) => {
    found.push(...r.findings);
    prints.push(...r.fingerprints);
    blocked ??= r.blocked;
  };

  const inspectEvent = (event: SseEvent): string => {
    if (event.data === null) return event.raw;
    let parsed: unknown;
    let json = true;
    try {
      parsed = JSON.parse(event.data);
    } catch {
      json = false;
    }
    // The data as a client reads it: its data: lines joined with "\n".
    const r: InspectResult<unknown> = json ? inspectJson(compiled, parsed, context) : inspectText(compiled, event.data, context);
    note(r);
    if (!r.changed) return event.raw;
    return withData(event, json ? JSON.stringify(r.value) : (r.value as string));
  };

  // Events go out whole, each inspected; a final one left without its blank line is read as complete.
  const sseFlush = (splitter: SseSplitter, chunk: Buffer | null): string => {
    let out = '';
    for (const event of chunk ? splitter.push(chunk) : splitter.end()) out += `${inspectEvent(event)}\n\n`;
    if (chunk && splitter.heldBytes() > maxEvent) {
      // An event over the limit is dropped whole, as the data path does (event_too_large).
      exceeded ??= { kind: 'event', limitBytes: maxEvent };
      splitter.drop();
    }
    return out;
  };

  const textFlush = (final: boolean): string => {
    if (!scanning) {
      const out = pending;
      pending = '';
      return out;
    }
    if (exceeded) {
      pending = '';
      return '';
    }
    if (!final && (lineOriented ? pending.indexOf('\n') < 0 : pending.length <= rawStreamTail) && Buffer.byteLength(pending) <= maxHold) return '';
    const text = released + pending;
    const from = released.length;
    const matches = textMatches(compiled, text);
    let cut = final ? text.length : releasePoint(text, from, matches, lineOriented);
    if (cut === from && !final && Buffer.byteLength(pending) > maxHold) {
      if (!monitor) {
        // No safe cut within the limit: dropped rather than cut through a value (fail closed).
        exceeded = { kind: 'text', limitBytes: maxHold };
        pending = '';
        return '';
      }
      // Monitor mode changes nothing: the held text goes on as it is, its findings recorded.
      cut = text.length;
    }
    if (cut === from) return '';
    const out = releaseRange(text, matches, from, cut);
    released = text.slice(Math.max(0, cut - reach), cut);
    pending = text.slice(cut);
    return out;
  };

  // A piece holding a blocked value keeps the whole lines before it: each line is inspected on its
  // own, and output stops before the first line that blocks (that line and the rest are dropped;
  // the data path ends the stream there).
  const releaseRange = (text: string, matches: ReturnType<typeof textMatches>, from: number, to: number): string => {
    const whole = inspectTextRange(compiled, text, matches, from, to, context);
    if (!whole.blocked) {
      note(whole);
      return whole.value;
    }
    let out = '';
    for (let start = from; start < to; ) {
      const lineEnd = text.indexOf('\n', start);
      const end = lineEnd < 0 || lineEnd >= to ? to : lineEnd + 1;
      const line = inspectTextRange(compiled, text, matches, start, end, context);
      note(line);
      if (line.blocked) break;
      out += line.value;
      start = end;
    }
    return out;
  };

  return {
    push(chunk) {
      if (events) return Buffer.from(sseFlush(events, chunk), 'utf8');
      pending += decoder.write(chunk);
      return Buffer.from(textFlush(false), 'utf8');
    },
    end() {
      if (events) return Buffer.from(sseFlush(events, null), 'utf8');
      pending += decoder.end();
      return Buffer.from(textFlush(true), 'utf8');
    },
    findings: () => [...found],
    fingerprints: () => [...prints],
    blocked: () => blocked,
    exceeded: () => exceeded,
  };
}

/**
 * Where a held text may be cut: text.slice(from, cut) is released now, text.slice(0, from) went out
 * before and is only context. `matches` are the engine's findings in the whole text (sorted, no
 * overlaps). The cut never falls inside one that starts in the held part, so a value is always
 * inspected whole:
 * - a line-oriented stream (JSON Lines) is cut only after a line end: whole records go out;
 * - other text is cut after a whitespace character or a double quote (no run a decoder or a token
 *   pattern reads spans those), at least rawStreamTail characters before the end of the held text,
 *   so a value still arriving (a spaced card, an IBAN, a phone number) is in the held part whole.
 *   A value the engine finds reaching the end of the held text (a PEM block before its END line, a
 *   long token) keeps everything from its start held.
 * Returns `from` when nothing may go out yet.
 */
export function releasePoint(text: string, from: number, matches: readonly { start: number; end: number }[], lineOriented: boolean): number {
  const cutBefore = lineOriented ? lineStartAtOrBefore : breakAtOrBefore;
  let cut = lineOriented ? lineStartAtOrBefore(text, text.length) : breakAtOrBefore(text, text.length - rawStreamTail);
  for (let i = matches.length - 1; i >= 0 && cut > from; i--) {
    const m = matches[i]!;
    if (m.end <= cut || m.start < from) break;
    if (m.start < cut) cut = cutBefore(text, m.start);
  }
  return Math.max(cut, from);
}

/** The last position at or before `at` that starts a line (0 when none). */
function lineStartAtOrBefore(text: string, at: number): number {
  return at <= 0 ? 0 : text.lastIndexOf('\n', at - 1) + 1;
}

/** The last position at or before `at` right after a whitespace character or a double quote (0 when none). */
function breakAtOrBefore(text: string, at: number): number {
  for (let i = Math.min(at, text.length); i > 0; i--) {
    const c = text.charCodeAt(i - 1);
    if (c === 32 || c === 10 || c === 13 || c === 9 || c === 12 || c === 34) return i;
  }
  return 0;
}
