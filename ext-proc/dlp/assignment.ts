// How a credential's value follows the word that names it in running text.
//
// "password: hunter22", "DB_PASSWORD=hunter22", "--password hunter22", "the password is hunter22"
// name a value; "client_secret_basic", "password string", "token endpoint" and the name of a
// variable in code (`client_secret: options.clientSecret`) do not. A detector with an
// `assignment` setting takes its value here, from the text after its context word, instead of
// taking any candidate near the word: the word must end the name it is part of, an assignment
// (or a linking word) must follow, and the value starts right after it. A quoted value runs to
// its closing quote, spaces included.
//
// Only short spans are read (a name, a link, a value of at most maxValueLength characters), with
// plain loops: no backtracking engine runs over the data.

/** How the value is tied to its name. */
export type AssignmentLink =
  /** `:`, `=`, `:=`, `=>`, `==`, or a command-line flag followed by a space (`--password x`). */
  | 'operator'
  /** "is" / "was" ("the password is x"), or nothing but spaces ("password x"). */
  | 'weak';

export interface AssignedValue {
  /** Offsets in the text. */
  start: number;
  end: number;
  link: AssignmentLink;
  /** The value was in quotes: it ends at the closing quote, spaces included. */
  quoted: boolean;
}

export const maxValueLength = 128;
const maxNameTail = 64;

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function isQuote(c: number): boolean {
  return c === 34 || c === 39 || c === 96;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * The end of the name a context word begins or ends: `db_pass` runs on to `db_password`,
 * `client_secret` to `client_secret_basic`. A dot or hyphen belongs to the name only between
 * word characters (`spring.datasource.password`, `x-api-key`), not at the end of a sentence.
 */
export function nameEnd(text: string, from: number, limit: number): number {
  let i = from;
  while (i < limit) {
    const c = text.charCodeAt(i);
    if (isWordChar(c)) i++;
    else if ((c === 46 || c === 45) && i + 1 < limit && isWordChar(text.charCodeAt(i + 1))) i++;
    else break;
  }
  return i;
}

/**
 * Last words of a name that say how a value is written, or which one it is, not what it is: `password_hash`,
 * `secret_key_base`, `private_key_pem`, `private_key_id` still name the secret (or, for an id, are kept as
 * carefully as one).
 */
const valueFormSuffixes = ['id', 'value', 'hash', 'hashed', 'pem', 'base64', 'b64', 'hex', 'raw', 'plain', 'plaintext', 'encoded', 'encrypted', 'enc', 'base', 'str', 'string', 'text', 'data'];

function endsWithWord(nameLower: string, end: number, wordsLower: readonly string[]): boolean {
  for (const w of wordsLower) {
    if (end < w.length || nameLower.slice(end - w.length, end) !== w) continue;
    const before = end - w.length - 1;
    if (before < 0) return true;
    const c = nameLower.charCodeAt(before);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122))) return true;
  }
  return false;
}

/**
 * Does the name (lower case) end with one of the words, not glued to a letter or digit before it,
 * or with one of them and a word saying how the value is written? `db_password`, `x-api-key` and
 * `password_hash` name a credential; `client_secret_basic`, `token_endpoint` and `password.txt` do not.
 */
export function nameEndsWithWord(nameLower: string, wordsLower: readonly string[]): boolean {
  const end = withoutVariantSuffix(nameLower);
  if (endsWithWord(nameLower, end, wordsLower)) return true;
  for (const suffix of valueFormSuffixes) {
    const at = end - suffix.length - 1;
    if (at <= 0 || nameLower.slice(at + 1, end) !== suffix) continue;
    const sep = nameLower.charCodeAt(at);
    if ((sep === 95 || sep === 45 || sep === 46) && endsWithWord(nameLower, at, wordsLower)) return true;
  }
  return false;
}

/** Last words of a name that say which of several it is: `PASSWORD2`, `API_KEY_V2`, `DB_PASSWORD_PROD`. */
const variantSuffixes = ['prod', 'production', 'dev', 'development', 'staging', 'stage', 'test', 'qa', 'uat', 'live', 'old', 'new', 'primary', 'secondary', 'backup', 'current', 'previous', 'next'];

/** Where the name ends without a version or environment suffix (digits, `_v2`, `_prod`...). */
function withoutVariantSuffix(nameLower: string): number {
  let end = nameLower.length;
  // a version is one or two digits (`PASSWORD2`, `API_KEY_V12`); `Unexpected_token_1012` is a message number
  while (end > 0 && nameLower.length - end < 3 && nameLower.charCodeAt(end - 1) >= 48 && nameLower.charCodeAt(end - 1) <= 57) end--;
  if (end > 0 && nameLower.charCodeAt(end - 1) >= 48 && nameLower.charCodeAt(end - 1) <= 57) return nameLower.length;
  if (end > 0 && nameLower.charCodeAt(end - 1) === 118 && end < nameLower.length) end--; // v2
  for (const suffix of variantSuffixes) {
    const at = end - suffix.length - 1;
    if (at > 0 && nameLower.slice(at + 1, end) === suffix && (nameLower.charCodeAt(at) === 95 || nameLower.charCodeAt(at) === 45)) return at;
  }
  const sep = nameLower.charCodeAt(end - 1);
  return end < nameLower.length && (sep === 95 || sep === 45) ? end - 1 : end;
}

function startsWithWordAt(text: string, at: number, wordLower: string, limit: number): boolean {
  if (at + wordLower.length > limit) return false;
  for (let k = 0; k < wordLower.length; k++) {
    if ((text.charCodeAt(at + k) | 32) !== wordLower.charCodeAt(k)) return false;
  }
  const next = at + wordLower.length;
  return next >= limit || !isWordChar(text.charCodeAt(next));
}

/**
 * The value assigned to the name that starts at nameStart (the context word's first character)
 * and whose context word ends at wordEnd, or null when the text names no value there.
 * `limit` is the end of the text to read (the end of the JSON value).
 */
export function assignedValueAt(text: string, nameStart: number, wordEnd: number, limit: number, wordsLower: readonly string[], textStart = 0): AssignedValue | null {
  // A name runs on at most maxNameTail characters past its context word: a longer run is no name.
  const end = nameEnd(text, wordEnd, Math.min(limit, wordEnd + maxNameTail));
  if (end === wordEnd + maxNameTail && end < limit && isWordChar(text.charCodeAt(end))) return null;
  if (end > wordEnd && !nameEndsWithWord(text.slice(nameStart, end).toLowerCase(), wordsLower)) return null;
  const flag = nameStart - 2 >= textStart && text.charCodeAt(nameStart - 1) === 45 && text.charCodeAt(nameStart - 2) === 45;
  let i = end;
  // the closing quote or bracket of the name ("password": x, ['password'] = x, `password`: x), then spaces
  while (i < limit && i - end < 2) {
    const c = text.charCodeAt(i);
    if (isQuote(c) || c === 93 || c === 41) i++;
    else break;
  }
  const spaced = i;
  while (i < limit && i - spaced < 8 && isBlank(text.charCodeAt(i))) i++;
  let link: AssignmentLink | null = null;
  const c0 = text.charCodeAt(i);
  const c1 = i + 1 < limit ? text.charCodeAt(i + 1) : 0;
  if (c0 === 58 /* : */) {
    link = 'operator';
    i += c1 === 61 ? 2 : 1;
  } else if (c0 === 45 /* - */ && c1 === 62 /* > */) {
    link = 'operator';
    i += 2;
  } else if (c0 === 61 /* = */) {
    link = 'operator';
    i += c1 === 62 || c1 === 61 ? 2 : 1;
    if (i < limit && text.charCodeAt(i) === 61) i++;
  } else if (startsWithWordAt(text, i, 'is', limit) || startsWithWordAt(text, i, 'was', limit)) {
    link = 'weak';
    i += startsWithWordAt(text, i, 'is', limit) ? 2 : 3;
    if (i < limit && text.charCodeAt(i) === 58) i++;
  } else if (i > spaced) {
    link = flag ? 'operator' : 'weak';
  } else {
    return null;
  }
  while (i < limit && isBlank(text.charCodeAt(i))) i++;
  // YAML puts a value on the next line, indented: `password:\n  hunter22`
  if (link === 'operator' && text.charCodeAt(i - 1) === 58 && (text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13)) {
    let j = i + (text.charCodeAt(i) === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1);
    const indent = j;
    while (j < limit && isBlank(text.charCodeAt(j))) j++;
    if (j > indent && j - indent <= 16) i = j;
  }
  if (i >= limit) return null;
  const open = text.charCodeAt(i);
  if (isQuote(open)) {
    // to the closing quote on the same line, a backslash-escaped quote included ("abc\"def1")
    const close = closingCharacter(text, i + 1, Math.min(limit, i + 2 + maxValueLength), open, true);
    if (close < 0 || close === i + 1) return null;
    return { start: i + 1, end: close, link, quoted: true };
  }
  // a placeholder, "<your password>", names no value
  if (open === 60 /* < */ && closingCharacter(text, i + 1, Math.min(limit, i + 65), 62, false) >= 0) return null;
  return { start: i, end: i, link, quoted: false };
}

/** The offset of `close` in text[from, to) before any line break, or -1: only that span is read. */
function closingCharacter(text: string, from: number, to: number, close: number, escapes: boolean): number {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === close) return i;
    if (c === 10 || c === 13) return -1;
    if (escapes && c === 92) i++;
  }
  return -1;
}

/**
 * Extends an unquoted value over `&` when what follows is not the next `name=` parameter of a
 * query or form: `password=Tr0ub4dor&3` is one value, `password=x&user=y` is two fields.
 */
export function ampersandContinues(text: string, at: number, limit: number): boolean {
  if (at >= limit || text.charCodeAt(at) !== 38) return false;
  let i = at + 1;
  const nameStart = i;
  while (i < limit && (isWordChar(text.charCodeAt(i)) || text.charCodeAt(i) === 46 || text.charCodeAt(i) === 45 || text.charCodeAt(i) === 91 || text.charCodeAt(i) === 93)) i++;
  if (i > nameStart && i < limit && text.charCodeAt(i) === 61) return false;
  return at + 1 < limit && !isBlank(text.charCodeAt(at + 1)) && text.charCodeAt(at + 1) !== 10 && text.charCodeAt(at + 1) !== 13;
}

/** Where an unquoted value's run ends: at a space, a quote, `,`, `;` or `&`. */
export function unquotedValueEnd(text: string, from: number, limit: number): number {
  let i = from;
  while (i < limit) {
    const c = text.charCodeAt(i);
    if (c <= 32 || isQuote(c) || c === 44 || c === 59 || c === 38) break;
    i++;
  }
  return i;
}

const typeNames = new Set([
  'string', 'str', 'number', 'int', 'integer', 'float', 'double', 'boolean', 'bool', 'null', 'nil', 'none', 'undefined',
  'true', 'false', 'bytes', 'any', 'unknown', 'object', 'optional', 'secretstr', 'char', 'text', 'varchar', 'required',
]);

function isIdentifierStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36;
}

/**
 * A value that is code, not data: a type name (`password: string`), a member chain or call
 * (`options.clientSecret`, `getPassword()`, `process.env.DB_PASSWORD`), a template or variable
 * reference (`${DB_PASSWORD}`, `{{ secret }}`, `$DB_PASSWORD`, `%(password)s`) or a placeholder
 * (`<password>`).
 */
export function isCodeReference(value: string): boolean {
  const v = value.endsWith(';') || value.endsWith(',') ? value.slice(0, -1) : value;
  if (v.length === 0) return true;
  if (typeNames.has(v.toLowerCase())) return true;
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(v.length - 1);
  if (v.startsWith('${') && last === 125) return true;
  if (v.startsWith('{{') && v.endsWith('}}')) return true;
  if (v.startsWith('%(') && v.endsWith(')s')) return true;
  if (first === 60 && last === 62) return true;
  if (first === 36) {
    // $NAME: an environment variable (a bcrypt hash "$2b$..." is not one)
    let upper = v.length > 1;
    for (let i = 1; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95)) upper = false;
    }
    if (upper && isIdentifierStart(v.charCodeAt(1))) return true;
  }
  // identifier(.identifier)* with an optional call: no digit in any part, at least a dot or a call
  if (!isIdentifierStart(first)) return false;
  let parts = 1;
  let i = 0;
  while (i < v.length) {
    const c = v.charCodeAt(i);
    if (isWordChar(c) || c === 36) {
      if (c >= 48 && c <= 57) return false;
      i++;
    } else if (c === 46 || (c === 63 && v.charCodeAt(i + 1) === 46)) {
      i += c === 63 ? 2 : 1;
      if (i >= v.length || !isIdentifierStart(v.charCodeAt(i))) return false;
      parts++;
    } else if (c === 40 || c === 91 || c === 60) {
      // a call ends the chain (getPassword(), config.get("x")), as do an index or type arguments
      // after a member chain (os.environ['X'], z.ZodOptional<z.ZodString>)
      return c === 40 || parts >= 2;
    } else {
      return false;
    }
  }
  return parts >= 2;
}

const hasDigit = 1;
const hasAsciiLetter = 2;
const hasOtherLetter = 4;
/** A character other than a letter, a digit and the joiners . - _ ( ) and space. */
const hasSymbol = 8;

/** Which kinds of character a value holds (the bits above). */
function characterKinds(value: string): number {
  let kinds = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 48 && c <= 57) kinds |= hasDigit;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) kinds |= hasAsciiLetter;
    else if (c > 127) kinds |= hasOtherLetter;
    else if (c !== 46 && c !== 45 && c !== 95 && c !== 32 && c !== 41 && c !== 40) kinds |= hasSymbol;
  }
  return kinds;
}

/** Digits and letters together, or a symbol: "hunter22", "Tr0ub4dor&3", "p@ss"; not "incorrect". */
export function looksLikePassword(value: string): boolean {
  const kinds = characterKinds(value);
  return (kinds & hasSymbol) !== 0 || ((kinds & hasDigit) !== 0 && (kinds & (hasAsciiLetter | hasOtherLetter)) !== 0);
}

/** Digits and letters together (a random token has both; a word, a path or an identifier often not). */
export function hasDigitsAndLetters(value: string): boolean {
  const kinds = characterKinds(value);
  return (kinds & hasDigit) !== 0 && (kinds & hasAsciiLetter) !== 0;
}
