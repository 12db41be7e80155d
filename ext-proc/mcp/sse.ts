// Incremental server-sent-events framing, as the WHATWG event-stream format
// defines it: a line ends with CRLF, LF or CR, and a blank line ends an event.
// Chunk boundaries from Envoy do not follow event boundaries (a CR may end one
// chunk and its LF start the next), so complete events are released and a
// partial one is held back, up to a bound the caller checks. Framing is plain
// string scanning: no regular expression runs over streamed data.

export interface SseEvent {
  /**
   * The event's lines joined with "\n", whatever line ends the upstream used, without the blank line
   * that ended it: written out as it is, the agent reads the event Mandate read.
   */
  raw: string;
  /** The values of its data fields joined with "\n" (as a client joins them), or null if it has none. */
  data: string | null;
}

export interface SseSplitter {
  /** Adds a chunk; returns the events it completed. */
  push(chunk: Buffer): SseEvent[];
  /**
   * At end of stream: the events still held. A final event the upstream left without its closing blank
   * line is read like any other (some clients act on it), so it is filtered and inspected too.
   */
  end(): SseEvent[];
  /** Drops the event being read (one over the size limit) and the rest of it, up to its closing blank line. */
  drop(): void;
  /** The bytes of the event being read. */
  heldBytes(): number;
}

export function createSseSplitter(): SseSplitter {
  const decoder = new TextDecoder('utf-8');
  /** The complete lines of the event being read. */
  let lines: string[] = [];
  let linesBytes = 0;
  /** The line being read (while dropping, only whether it is empty). */
  let line = '';
  /** The text so far ended with a CR: an LF first in the next text is the second half of a CRLF. */
  let afterCr = false;
  let dropping = false;

  const endLine = (complete: string, events: SseEvent[]): void => {
    if (dropping) {
      if (complete === '') dropping = false;
      return;
    }
    if (complete !== '') {
      lines.push(complete);
      linesBytes += Buffer.byteLength(complete) + 1;
      return;
    }
    if (lines.length > 0) events.push(eventOf(lines));
    lines = [];
    linesBytes = 0;
  };

  const read = (text: string, events: SseEvent[]): void => {
    if (text.length === 0) return;
    let start = afterCr && text.charCodeAt(0) === 10 ? 1 : 0;
    afterCr = false;
    let cr = text.indexOf('\r', start);
    let lf = text.indexOf('\n', start);
    while (cr >= 0 || lf >= 0) {
      const at = lf < 0 || (cr >= 0 && cr < lf) ? cr : lf;
      endLine(line + text.slice(start, at), events);
      line = '';
      start = at + 1;
      if (at === cr) {
        if (start === text.length) afterCr = true;
        else if (text.charCodeAt(start) === 10) start++;
        cr = text.indexOf('\r', start);
      }
      if (lf >= 0 && lf < start) lf = text.indexOf('\n', start);
    }
    line += text.slice(start);
    if (dropping && line.length > 1) line = line.slice(0, 1);
  };

  return {
    push(chunk) {
      const events: SseEvent[] = [];
      read(decoder.decode(chunk, { stream: true }), events);
      return events;
    },
    end() {
      const events: SseEvent[] = [];
      read(decoder.decode(), events);
      if (!dropping) {
        if (line !== '') lines.push(line);
        if (lines.length > 0) events.push(eventOf(lines));
      }
      lines = [];
      linesBytes = 0;
      line = '';
      afterCr = false;
      dropping = false;
      return events;
    },
    drop() {
      dropping = true;
      lines = [];
      linesBytes = 0;
      line = line === '' ? '' : line.slice(0, 1);
    },
    heldBytes() {
      return linesBytes + Buffer.byteLength(line);
    },
  };
}

function eventOf(lines: string[]): SseEvent {
  let data: string | null = null;
  for (const l of lines) if (isDataField(l)) data = data === null ? valueOf(l) : `${data}\n${valueOf(l)}`;
  return { raw: lines.join('\n'), data };
}

/** A data field: "data: value", "data:value", or "data" alone (an empty value). */
function isDataField(line: string): boolean {
  return line.startsWith('data') && (line.length === 4 || line.charCodeAt(4) === 58);
}

/** A field's value: after the colon, less one leading space. */
function valueOf(line: string): string {
  const colon = line.indexOf(':');
  if (colon < 0) return '';
  return line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
}

/** Splits text at every line end a client reads (CRLF, LF or CR). */
function linesOf(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 10 && c !== 13) continue;
    out.push(text.slice(start, i));
    if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
    start = i + 1;
  }
  out.push(text.slice(start));
  return out;
}

/**
 * Rebuilds an event whose data changed, keeping its other fields (event:, id:, retry:). The new data
 * is split at every line end a client reads, so no line of it can become a field of its own.
 */
export function withData(event: SseEvent, data: string): string {
  const others = event.raw.split('\n').filter((l) => !isDataField(l));
  return [...others, ...linesOf(data).map((l) => `data: ${l}`)].join('\n');
}
