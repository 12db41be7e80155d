// Incremental server-sent-events framing. Chunk boundaries from Envoy do not
// follow event boundaries, so complete events are released and a partial one is
// held back, up to a bound.

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

export function createSseSplitter(): SseSplitter {
  let pending = '';
  const decoder = new TextDecoder('utf-8');
  return {
    push(chunk) {
      pending += decoder.decode(chunk, { stream: true });
      const events: SseEvent[] = [];
      for (;;) {
        const boundary = /\r?\n\r?\n/.exec(pending);
        if (!boundary) break;
        const raw = pending.slice(0, boundary.index);
        pending = pending.slice(boundary.index + boundary[0].length);
        events.push({ raw, data: dataOf(raw) });
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
  const lines = raw.split(/\r?\n/).filter((l) => l.startsWith('data:'));
  if (lines.length === 0) return null;
  return lines.map((l) => (l.startsWith('data: ') ? l.slice(6) : l.slice(5))).join('\n');
}

/** Rebuilds an event whose data changed, keeping its other fields (event:, id:, retry:). */
export function withData(event: SseEvent, data: string): string {
  const others = event.raw.split(/\r?\n/).filter((l) => !l.startsWith('data:'));
  return [...others, ...data.split('\n').map((l) => `data: ${l}`)].join('\n');
}
