// application/x-www-form-urlencoded text (an HTML form body, a query string): read into fields as
// URLSearchParams reads it, and written back after data protection edited some values with every
// other byte as the agent sent it. Pure.

/** A form's fields by name, decoded; a repeated name as an array. */
export type FormFields = Record<string, string | string[]>;

/**
 * Fields as an object, a repeated name as an array. Built from entries, so every name is an own
 * property: `__proto__=...` assigned into an object literal would set its prototype and vanish from
 * what is inspected.
 */
export function parameters(params: URLSearchParams): FormFields {
  const byName = new Map<string, string | string[]>();
  for (const [key, value] of params) {
    const existing = byName.get(key);
    byName.set(key, existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value]);
  }
  return Object.fromEntries(byName);
}

/** Fields encoded whole, as URLSearchParams writes them. */
export function encodedFields(fields: FormFields): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) for (const v of Array.isArray(value) ? value : [value]) params.append(key, v);
  return params.toString();
}

/**
 * `text` with the fields data protection changed (`read`, as parameters read it, became `edited`)
 * written in place: a name or value that changed is encoded again, everything else stays byte for
 * byte (the separators, `+` or `%20`, escapes that are not valid). Falls back to encoding the edited
 * fields whole when they no longer line up with the text (a different number of names).
 */
export function withEditedFields(text: string, read: FormFields, edited: FormFields): string {
  const names = Object.keys(read);
  const editedNames = Object.keys(edited);
  if (names.length !== editedNames.length) return encodedFields(edited);
  // Data protection keeps the order of an object's members: a masked name sits where it was.
  const renamed = new Map(names.map((name, i) => [name, editedNames[i]!]));
  const occurrences = new Map<string, number>();
  const pieces: string[] = [];
  for (const [at, piece] of text.split('&').entries()) {
    // Read as the whole text was: URLSearchParams drops a "?" that starts the text, and only there.
    const entry = new URLSearchParams(at === 0 ? piece : `&${piece}`).entries().next();
    if (entry.done) {
      pieces.push(piece);
      continue;
    }
    const [name, value] = entry.value;
    const index = occurrences.get(name) ?? 0;
    occurrences.set(name, index + 1);
    const newName = renamed.get(name);
    const now = newName === undefined ? undefined : edited[newName];
    const newValue = Array.isArray(now) ? now[index] : index === 0 ? now : undefined;
    if (newName === undefined || newValue === undefined) return encodedFields(edited);
    const equals = piece.indexOf('=');
    const rawName = equals < 0 ? piece : piece.slice(0, equals);
    const outName = newName === name ? rawName : encodeFormText(newName, true);
    if (equals < 0 && newValue === '') pieces.push(outName);
    else pieces.push(`${outName}=${newValue === value && equals >= 0 ? piece.slice(equals + 1) : encodeFormText(newValue, false)}`);
  }
  return pieces.join('&');
}

/** Characters a form name or value may carry as they are (a value also "="): what a mask or redaction writes stays readable. */
const literal = /^[A-Za-z0-9*\-._~!$'(),;:@/?[\]]$/;

/** A name or value encoded for a form: space as "+", characters outside `literal` as UTF-8 percent escapes. */
function encodeFormText(text: string, name: boolean): string {
  let out = '';
  for (const char of text) {
    if (char === ' ') out += '+';
    else if (literal.test(char) || (!name && char === '=')) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
