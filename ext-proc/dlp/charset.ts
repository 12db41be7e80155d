// The charset an upstream declares for its answer, or an agent for its REST request body, decides how Mandate reads it. Read as UTF-8, an
// answer in another charset hides what is in it: UTF-16 puts a NUL between the digits of a card, and
// ISO-8859-1 writes a no-break space as the byte 0xA0, which is not UTF-8 at all. Single-byte charsets
// are decoded, inspected and written back in the same charset; any other one cannot be read.

export type SingleByteCharset = 'iso-8859-1' | 'windows-1252';

export type DeclaredCharset =
  | { kind: 'utf-8' }
  | { kind: 'single-byte'; charset: SingleByteCharset }
  | { kind: 'unsupported'; charset: string };

const utf8Labels = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'x-unicode20utf8']);

/**
 * Labels read as ISO-8859-1, a byte for each character (U+0000-U+00FF). US-ASCII is one of them: an
 * ASCII answer reads the same either way, and one with bytes above 0x7F is read as browsers read it.
 */
const latin1Labels = new Set([
  'iso-8859-1', 'iso8859-1', 'iso_8859-1', 'iso_8859-1:1987', 'iso88591', 'latin1', 'l1', 'cp819', 'ibm819', 'iso-ir-100', 'csisolatin1',
  'us-ascii', 'ascii', 'ansi_x3.4-1968', 'iso646-us', 'cp367', 'ibm367', 'csascii',
]);

/** windows-1252 differs from ISO-8859-1 in 0x80-0x9F (the euro sign, curly quotes, dashes...). */
const windows1252Labels = new Set(['windows-1252', 'cp1252', 'x-cp1252']);

/** The charset parameter of a content type, lower case and unquoted; null when there is none. */
export function charsetParameter(contentType: string): string | null {
  for (const parameter of contentType.split(';').slice(1)) {
    const eq = parameter.indexOf('=');
    if (eq < 0 || parameter.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const value = parameter.slice(eq + 1).trim();
    return (value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1) : value).trim().toLowerCase();
  }
  return null;
}

/** How a body (an answer, a REST request) with this content type is read: as UTF-8 (no charset declared, or UTF-8), a single-byte charset, or not at all. */
export function declaredCharset(contentType: string): DeclaredCharset {
  const charset = charsetParameter(contentType);
  if (charset === null || utf8Labels.has(charset)) return { kind: 'utf-8' };
  if (latin1Labels.has(charset)) return { kind: 'single-byte', charset: 'iso-8859-1' };
  if (windows1252Labels.has(charset)) return { kind: 'single-byte', charset: 'windows-1252' };
  return { kind: 'unsupported', charset };
}

/** windows-1252 as the WHATWG decoder reads it: every byte is one character, so the table is a bijection. */
const windows1252Characters = new TextDecoder('windows-1252').decode(Uint8Array.from({ length: 256 }, (_, byte) => byte));
const windows1252Bytes = new Map([...windows1252Characters].map((character, byte) => [character.charCodeAt(0), byte]));

export function decodeSingleByte(bytes: Buffer, charset: SingleByteCharset): string {
  return charset === 'iso-8859-1' ? bytes.toString('latin1') : new TextDecoder('windows-1252').decode(bytes);
}

/**
 * Text back in a single-byte charset. Characters it cannot hold can only come from Mandate (a mask
 * character outside it): in JSON they are written as `\u` escapes, which stand inside strings only and
 * mean the same; elsewhere as "?".
 */
export function encodeSingleByte(text: string, charset: SingleByteCharset, json: boolean): Buffer {
  const out = Buffer.allocUnsafe(text.length * (json ? 6 : 1));
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const byte = charset === 'iso-8859-1' ? (c <= 0xff ? c : -1) : c < 0x80 ? c : (windows1252Bytes.get(c) ?? -1);
    if (byte >= 0) out[n++] = byte;
    else if (json) n += out.write(`\\u${c.toString(16).padStart(4, '0')}`, n, 'latin1');
    else out[n++] = 0x3f;
  }
  return out.subarray(0, n);
}

/**
 * Bytes that are binary rather than text in any charset: a NUL byte, or more than one in ten control
 * bytes other than tab, line feed, carriage return, form feed and escape.
 */
export function isBinaryBytes(bytes: Uint8Array): boolean {
  let control = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x20) continue;
    if (b === 0) return true;
    if (b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) control++;
  }
  return control * 10 > bytes.length;
}
