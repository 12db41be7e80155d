// Streaming responses: SSE events are inspected one whole event at a time
// (their data: lines carry JSON-RPC messages); raw text streams keep a short
// tail back so a value split across chunks is still seen whole. Memory is
// bounded by the policy's maxStreamHoldBytes.
import { isUtf8 } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import type { DataFinding } from '../decision/decision.ts';
import type { CompiledDataProtection } from './compile.ts';
import { inspectJson, inspectText, type BlockedBy, type InspectContext, type ValueFingerprint } from './inspect.ts';

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
}

/** Characters held back from a raw text stream so a split value is seen whole; longer than any detector match we mask. */
export const rawStreamTail = 256;

/** Streams of one JSON value per line (JSON Lines, NDJSON, JSON text sequences). */
export const jsonLinesTypes = /^application\/(x-ndjson|ndjson|jsonl|x-jsonlines|jsonlines|json-seq)\b/i;

/**
 * Content types that are binary by definition (media, fonts, archives, office documents, protobuf):
 * their bytes pass uninspected. An answer with no content type, application/octet-stream or another
 * type is read as text unless its first bytes look binary (see looksBinary).
 */
export const binaryTypes =
  /^(image|audio|video|font)\/|^application\/(pdf|zip|gzip|x-gzip|x-tar|x-7z-compressed|x-rar-compressed|x-bzip2|x-xz|zstd|wasm|protobuf|x-protobuf|grpc|vnd\.ms-|vnd\.openxmlformats|vnd\.oasis\.opendocument|msword)/i;

/**
 * Whether the first bytes of an answer are binary rather than text: a NUL byte, bytes that are not
 * UTF-8 (a sequence cut at the end of the sample is allowed), or more than one in ten control bytes
 * other than tab, line feed, carriage return and form feed, in the first KiB.
 */
export function looksBinary(bytes: Uint8Array): boolean {
  const sample = bytes.subarray(0, 1024);
  let control = 0;
  for (const b of sample) {
    if (b === 0) return true;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) control++;
  }
  if (control * 10 > sample.length) return true;
  for (let cut = 0; cut <= 3 && cut < sample.length; cut++) if (isUtf8(sample.subarray(0, sample.length - cut))) return false;
  return sample.length > 0;
}

export function createStreamInspector(
  compiled: CompiledDataProtection,
  context: InspectContext & { contentType: string },
): StreamInspector {
  const isSse = /^text\/event-stream/i.test(context.contentType);
  const lineOriented = jsonLinesTypes.test(context.contentType);
  const maxHold = compiled.ok ? compiled.policy.maxStreamHoldBytes : 65_536;
  const decoder = new StringDecoder('utf8');
  const found: DataFinding[] = [];
  const prints: ValueFingerprint[] = [];
  let blocked: BlockedBy | null = null;
  let pending = '';

  const note = (r: { findings: DataFinding[]; blocked: BlockedBy | null; fingerprints: ValueFingerprint[] }) => {
    found.push(...r.findings);
    prints.push(...r.fingerprints);
    blocked ??= r.blocked;
  };

  const inspectEvent = (event: string): string => {
    const lines = event.split(/\r?\n/);
    const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
    if (data.length === 0) return event;
    const payload = data.join('\n');
    let parsed: unknown;
    let json = true;
    try {
      parsed = JSON.parse(payload);
    } catch {
      json = false;
    }
    if (json) {
      const r = inspectJson(compiled, parsed, context);
      note(r);
      if (!r.changed) return event;
      const others = lines.filter((l) => !l.startsWith('data:'));
      return [...others, `data: ${JSON.stringify(r.value)}`].join('\n');
    }
    const r = inspectText(compiled, payload, context);
    note(r);
    if (!r.changed) return event;
    const others = lines.filter((l) => !l.startsWith('data:'));
    return [...others, ...r.value.split('\n').map((l) => `data: ${l}`)].join('\n');
  };

  const sseFlush = (final: boolean): string => {
    let out = '';
    for (;;) {
      const m = /\r?\n\r?\n/.exec(pending);
      if (!m) break;
      const event = pending.slice(0, m.index);
      out += inspectEvent(event) + m[0];
      pending = pending.slice(m.index + m[0].length);
    }
    if (final || Buffer.byteLength(pending) > maxHold) {
      // An oversized or unterminated event is inspected as text, so nothing passes unscanned.
      const r = inspectText(compiled, pending, context);
      note(r);
      out += r.value;
      pending = '';
    }
    return out;
  };

  const rawFlush = (final: boolean): string => {
    if (!final && pending.length <= rawStreamTail && Buffer.byteLength(pending) <= maxHold) return '';
    // Emit everything except the tail; findings inside the tail are seen again with the next chunk.
    let cut = final ? pending.length : Math.max(0, pending.length - rawStreamTail);
    if (!final) {
      // Never cut inside a run without whitespace (a token may continue): back up to the last whitespace.
      // With none in reach, hold everything until the hold limit forces a cut.
      const boundary = Math.max(pending.lastIndexOf(' ', cut - 1), pending.lastIndexOf('\n', cut - 1));
      if (boundary >= 0) cut = boundary + 1;
      else if (Buffer.byteLength(pending) <= maxHold) return '';
    }
    const head = pending.slice(0, cut);
    pending = pending.slice(cut);
    const rh = inspectText(compiled, head, context);
    if (rh.blocked && lineOriented) return linesBeforeBlock(head);
    note(rh);
    return rh.value;
  };

  // A line-oriented stream that reaches a blocked value keeps the whole lines before it: each line is
  // inspected on its own, and output stops before the first line that blocks (that line and the rest
  // are dropped; the data path ends the stream there).
  const linesBeforeBlock = (head: string): string => {
    let out = '';
    for (const line of head.split(/(?<=\n)/)) {
      const r = inspectText(compiled, line, context);
      note(r);
      if (r.blocked) break;
      out += r.value;
    }
    return out;
  };

  return {
    push(chunk) {
      pending += decoder.write(chunk);
      const out = isSse ? sseFlush(false) : rawFlush(false);
      return Buffer.from(out, 'utf8');
    },
    end() {
      pending += decoder.end();
      const out = isSse ? sseFlush(true) : rawFlush(true);
      return Buffer.from(out, 'utf8');
    },
    findings: () => [...found],
    fingerprints: () => [...prints],
    blocked: () => blocked,
  };
}
