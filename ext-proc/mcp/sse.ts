// Incremental server-sent-events framing. Chunk boundaries from Envoy do not
// follow event boundaries, so complete events are released and a partial one is
// held back, up to a bound. Framing is plain string scanning: no regular
// expression runs over streamed data.

export interface SseEvent {
  /** The raw event text, without the trailing blank line. */
  raw: string;
  /** The joined data: lines, or null if the event has none. */
  data: string | null;
}

export interface SseSplitter {
  /** Adds a chunk; returns the events it completed. */
  push(chunk: Buffer): SseEvent[];
  /** The held-back bytes at end of stream (an unterminated final event). */
  rest(): string;
  heldBytes(): number;
}

/** Where the first event of `text` ends: `at` is where its blank line starts, `next` where the next event starts. */
export interface EventEnd {
  at: number;
  next: number;
}

/** The first blank line in `text` (two line ends, each "\n" or "\r\n"), or null when no event is complete. */
export function firstEventEnd(text: string): EventEnd | null {
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) {
    const at = i > 0 && text.charCodeAt(i - 1) === 13 ? i - 1 : i;
    if (text.charCodeAt(i + 1) === 10) return { at, next: i + 2 };
    if (text.charCodeAt(i + 1) === 13 && text.charCodeAt(i + 2) === 10) return { at, next: i + 3 };
  }
  return null;
}

/** The lines of an event, split at "\n" or "\r\n". */
export function eventLines(raw: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = raw.indexOf('\n'); i >= 0; i = raw.indexOf('\n', start)) {
    lines.push(raw.slice(start, i > start && raw.charCodeAt(i - 1) === 13 ? i - 1 : i));
    start = i + 1;
  }
  lines.push(raw.slice(start));
  return lines;
}

export function sseEventOf(raw: string): SseEvent {
  return { raw, data: dataOf(raw) };
}

export function createSseSplitter(): SseSplitter {
  let pending = '';
  const decoder = new TextDecoder('utf-8');
  return {
    push(chunk) {
      pending += decoder.decode(chunk, { stream: true });
      const events: SseEvent[] = [];
      for (let end = firstEventEnd(pending); end; end = firstEventEnd(pending)) {
        events.push(sseEventOf(pending.slice(0, end.at)));
        pending = pending.slice(end.next);
      }
      return events;
    },
    rest() {
      const text = pending + decoder.decode();
      pending = '';
      return text;
    },
    heldBytes() {
      return Buffer.byteLength(pending);
    },
  };
}

function dataOf(raw: string): string | null {
  const lines = eventLines(raw).filter((l) => l.startsWith('data:'));
  if (lines.length === 0) return null;
  return lines.map((l) => (l.startsWith('data: ') ? l.slice(6) : l.slice(5))).join('\n');
}

/** Rebuilds an event whose data changed, keeping its other fields (event:, id:, retry:). */
export function withData(event: SseEvent, data: string): string {
  const others = eventLines(event.raw).filter((l) => !l.startsWith('data:'));
  return [...others, ...data.split('\n').map((l) => `data: ${l}`)].join('\n');
}
