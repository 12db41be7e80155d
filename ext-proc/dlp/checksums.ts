// Check-digit and structure validators used by the detector catalogue.
// Each takes the candidate text as matched (separators allowed) and returns true
// only when the format's own checksum or structural rules hold.
import { createHash } from 'node:crypto';

export function digitsOf(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) {
      if (i > from) out += text.slice(from, i);
      from = i + 1;
    }
  }
  return from === 0 ? text : out + text.slice(from);
}

/** How many ASCII digits the text has. */
export function digitCount(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/** The first run of 13 or more ASCII digits, cut to 19 (the card number in track data); '' if none. */
export function firstCardDigitRun(text: string): string {
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) continue;
    if (i - start >= 13) return text.slice(start, Math.min(i, start + 19));
    start = i + 1;
  }
  return '';
}

export function luhnValid(digits: string): boolean {
  if (digits.length < 2) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** The Luhn check digit that completes `partial`. */
export function luhnCheckDigit(partial: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(partial + d)) return String(d);
  throw new Error('unreachable');
}

const ibanLengths: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28,
  HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29,
  RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22,
  VG: 24, XK: 20,
};

/** ibanLengths by country code, at (first letter - 65) * 26 + (second letter - 65); 0 for none. */
const ibanLengthByCode = new Int32Array(26 * 26);
for (const [code, length] of Object.entries(ibanLengths)) ibanLengthByCode[(code.charCodeAt(0) - 65) * 26 + code.charCodeAt(1) - 65] = length;

export function ibanValid(text: string): boolean {
  // One pass over the compact form (spaces and dashes dropped, upper case): ISO 7064 mod 97-10 over
  // the number rotated by four, letters as two digits (A=10 .. Z=35), so the first four characters
  // are kept aside and added last. The remainder is taken every 7 digits or so, which keeps the
  // running number below 97 * 10^8.
  let length = 0;
  let c0 = 0;
  let c1 = 0;
  let c2 = 0;
  let c3 = 0;
  let remainder = 0;
  let pending = 0;
  let alnum = true;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c === 32 || c === 45) continue;
    if (c >= 97 && c <= 122) c -= 32;
    if (length < 4) {
      if (length === 0) c0 = c;
      else if (length === 1) c1 = c;
      else if (length === 2) c2 = c;
      else c3 = c;
    } else if (c >= 48 && c <= 57) {
      remainder = remainder * 10 + (c - 48);
      if (++pending >= 7) {
        remainder %= 97;
        pending = 0;
      }
    } else if (c >= 65 && c <= 90) {
      remainder = remainder * 100 + (c - 55);
      pending += 2;
      if (pending >= 7) {
        remainder %= 97;
        pending = 0;
      }
    } else {
      alnum = false;
    }
    length++;
  }
  if (length < 4) return false;
  const expected = c0 >= 65 && c0 <= 90 && c1 >= 65 && c1 <= 90 ? ibanLengthByCode[(c0 - 65) * 26 + c1 - 65]! : 0;
  if (expected === 0 || length !== expected || !alnum) return false;
  for (const c of [c0, c1, c2, c3]) {
    if (c >= 48 && c <= 57) remainder = (remainder % 97) * 10 + (c - 48);
    else if (c >= 65 && c <= 90) remainder = (remainder % 97) * 100 + (c - 55);
    else return false;
  }
  return remainder % 97 === 1;
}

/** ISO 7064 mod 97-10 over letters-as-numbers (A=10 .. Z=35), computed piecewise. */
export function mod97(alnum: string): number {
  let remainder = 0;
  for (const ch of alnum) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 && code <= 90 ? String(code - 55) : ch;
    for (const d of value) remainder = (remainder * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return remainder;
}

export function ibanCheckDigits(country: string, bban: string): string {
  const r = mod97(bban + country + '00');
  return String(98 - r).padStart(2, '0');
}

/** ABA routing transit number: 3-7-1 weighted sum divisible by 10, valid Federal Reserve prefix. */
export function abaRoutingValid(text: string): boolean {
  const d = digitsOf(text);
  if (d.length !== 9) return false;
  const prefix = Number(d.slice(0, 2));
  if (!((prefix >= 0 && prefix <= 12) || (prefix >= 21 && prefix <= 32) || (prefix >= 61 && prefix <= 72) || prefix === 80)) return false;
  const w = [3, 7, 1];
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += (d.charCodeAt(i) - 48) * (w[i % 3] ?? 0);
  return sum % 10 === 0 && d !== '000000000';
}

/**
 * Argentine CBU: 22 digits in two blocks, each ending in a check digit: the block's digits weighted
 * 7,1,3,9 repeating from the right of the block (before its check digit), and the check digit makes the
 * sum a multiple of 10. Written here because stdnum's AR.cbu (1.12) computes 10 - sum % 10 without the
 * final % 10, so it rejects every valid CBU whose check digit is 0 (about one in ten per block).
 */
export function arCbuValid(text: string): boolean {
  const d = digitsOf(text);
  if (d.length !== 22 || d.length !== text.length) return false;
  return cbuBlockValid(d, 0, 7) && cbuBlockValid(d, 8, 21);
}

function cbuBlockValid(d: string, start: number, checkAt: number): boolean {
  const weights = [3, 1, 7, 9];
  let sum = 0;
  for (let i = checkAt - 1, k = 0; i >= start; i--, k++) sum += (d.charCodeAt(i) - 48) * weights[k % 4]!;
  return (10 - (sum % 10)) % 10 === d.charCodeAt(checkAt) - 48;
}

/** DEA registration number: 2 letters + 7 digits; (d1+d3+d5) + 2*(d2+d4+d6) ends in d7. */
export function deaValid(text: string): boolean {
  const t = text.toUpperCase();
  if (t.length !== 9 || !deaRegistrantLetters.includes(t[0]!)) return false;
  const second = t.charCodeAt(1);
  if (!isUpperAsciiLetter(second) && second !== 57) return false;
  if (!allAsciiDigits(t, 2, 9)) return false;
  const n = (i: number) => t.charCodeAt(2 + i) - 48;
  const sum = (n(0) + n(2) + n(4)) + 2 * (n(1) + n(3) + n(5));
  return sum % 10 === n(6);
}

const deaRegistrantLetters = 'ABCDEFGHJKLMPRSTUX';

function isAsciiDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isUpperAsciiLetter(c: number): boolean {
  return c >= 65 && c <= 90;
}

function allAsciiDigits(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isAsciiDigit(text.charCodeAt(i))) return false;
  return true;
}

const verhoeffD = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
  [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1], [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
  [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const verhoeffP = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
  [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1], [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const verhoeffInv = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

export function verhoeffValid(digits: string): boolean {
  let c = 0;
  for (let i = 0; i < digits.length; i++) {
    const d = digits.charCodeAt(digits.length - 1 - i) - 48;
    c = verhoeffD[c]![verhoeffP[i % 8]![d]!]!;
  }
  return c === 0;
}

export function verhoeffCheckDigit(partial: string): string {
  let c = 0;
  for (let i = 0; i < partial.length; i++) {
    const d = partial.charCodeAt(partial.length - 1 - i) - 48;
    c = verhoeffD[c]![verhoeffP[(i + 1) % 8]![d]!]!;
  }
  return String(verhoeffInv[c]);
}

/** Aadhaar: 12 digits, first not 0 or 1, Verhoeff check digit. */
export function aadhaarValid(text: string): boolean {
  const d = digitsOf(text);
  return d.length === 12 && d[0] !== '0' && d[0] !== '1' && verhoeffValid(d);
}

/** NHS number: 10 digits, weights 10..2, check = 11 - (sum mod 11); 10 is invalid, 11 means 0. */
export function nhsValid(text: string): boolean {
  const d = digitsOf(text);
  if (d.length !== 10) return false;
  const check = nhsCheckDigit(d.slice(0, 9));
  return check !== null && check === d[9];
}

export function nhsCheckDigit(nine: string): string | null {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += (nine.charCodeAt(i) - 48) * (10 - i);
  const check = 11 - (sum % 11);
  if (check === 10) return null;
  return String(check === 11 ? 0 : check);
}

/** NPI: 10 digits starting 1 or 2, Luhn over "80840" + the number. */
export function npiValid(text: string): boolean {
  const d = digitsOf(text);
  return d.length === 10 && (d[0] === '1' || d[0] === '2') && luhnValid('80840' + d);
}

/** US SSN structure: area not 000, 666 or 900-999; group not 00; serial not 0000; known advertising numbers excluded. */
export function ssnValid(text: string): boolean {
  let area = 0;
  let group = 0;
  let serial = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    if (n < 3) area = area * 10 + c;
    else if (n < 5) group = group * 10 + c;
    else serial = serial * 10 + c;
    n++;
  }
  if (n !== 9) return false;
  const d = area * 1000000 + group * 10000 + serial;
  if (area === 0 || area === 666 || area >= 900 || group === 0 || serial === 0) return false;
  if (d === 78051120 || d === 219099999 || d === 123456789) return false;
  return true;
}

/** US ITIN: 9xx-[50-65|70-88|90-92|94-99]-xxxx. */
export function itinValid(text: string): boolean {
  const d = digitsOf(text);
  if (d.length !== 9 || d[0] !== '9') return false;
  const g = Number(d.slice(3, 5));
  return (g >= 50 && g <= 65) || (g >= 70 && g <= 88) || (g >= 90 && g <= 92) || (g >= 94 && g <= 99);
}

export function imeiValid(text: string): boolean {
  const d = digitsOf(text);
  return d.length === 15 && luhnValid(d) && !allZeros(d);
}

function allZeros(digits: string): boolean {
  for (let i = 0; i < digits.length; i++) if (digits.charCodeAt(i) !== 48) return false;
  return digits.length > 0;
}

/** Vehicle identification number, North American check digit at position 9. */
export function vinValid(text: string): boolean {
  const vin = text.toUpperCase();
  if (vin.length !== 17) return false;
  const translit = '0123456789.ABCDEFGH..JKLMN.P.R..STUVWXYZ';
  const weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const c = vin.charCodeAt(i);
    // letters I, O and Q are never used (they read as 1 and 0)
    if (!isAsciiDigit(c) && (!isUpperAsciiLetter(c) || c === 73 || c === 79 || c === 81)) return false;
    const value = isAsciiDigit(c) ? c - 48 : translit.indexOf(vin[i]!) % 10;
    sum += value * weights[i]!;
  }
  const check = sum % 11;
  return vin[8] === (check === 10 ? 'X' : String(check));
}

/** At least one ASCII upper-case letter and one ASCII digit. */
export function hasUpperLetterAndDigit(text: string): boolean {
  let letter = false;
  let digit = false;
  for (let i = 0; i < text.length && !(letter && digit); i++) {
    const c = text.charCodeAt(i);
    letter ||= isUpperAsciiLetter(c);
    digit ||= isAsciiDigit(c);
  }
  return letter && digit;
}

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const base62Alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function base62(value: number, width: number): string {
  let out = '';
  let v = value;
  while (v > 0) {
    out = base62Alphabet[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out.padStart(width, '0');
}

/**
 * GitHub and npm token checksum: the last 6 characters are the base62 CRC32 of
 * the 30 random characters that follow the prefix.
 */
export function prefixedCrc32TokenValid(token: string): boolean {
  const underscore = token.indexOf('_');
  const body = token.slice(underscore + 1);
  if (body.length !== 36) return false;
  return base62(crc32(body.slice(0, 30)), 6) === body.slice(30);
}

/** A JWT whose header decodes to a JSON object naming an algorithm and whose payload is a JSON object. */
export function jwtValid(token: string): boolean {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as unknown;
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return typeof header === 'object' && header !== null && 'alg' in header && typeof payload === 'object' && payload !== null;
  } catch {
    return false;
  }
}

const base58Alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58Decode(text: string): Buffer | null {
  let value = 0n;
  for (const ch of text) {
    const i = base58Alphabet.indexOf(ch);
    if (i < 0) return null;
    value = value * 58n + BigInt(i);
  }
  let hex = value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let leading = 0;
  while (leading < text.length && text.charCodeAt(leading) === 49) leading++;
  return Buffer.concat([Buffer.alloc(leading), value === 0n ? Buffer.alloc(0) : Buffer.from(hex, 'hex')]);
}

export function base58Encode(bytes: Buffer): string {
  let value = BigInt('0x' + (bytes.toString('hex') || '0'));
  let out = '';
  while (value > 0n) {
    out = base58Alphabet[Number(value % 58n)] + out;
    value /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    out = '1' + out;
  }
  return out;
}

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

export function base58CheckPayload(payload: Buffer): Buffer {
  return Buffer.concat([payload, sha256(sha256(payload)).subarray(0, 4)]);
}

/** Bitcoin legacy (P2PKH/P2SH) address: base58check, 25 bytes, version 0x00 or 0x05. */
export function bitcoinBase58Valid(text: string): boolean {
  const bytes = base58Decode(text);
  if (!bytes || bytes.length !== 25 || (bytes[0] !== 0 && bytes[0] !== 5)) return false;
  return sha256(sha256(bytes.subarray(0, 21))).subarray(0, 4).equals(bytes.subarray(21));
}

const bech32Charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

function bech32Polymod(values: number[]): number {
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= gen[i]!;
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  return [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
}

/** Bitcoin segwit address (bech32 or bech32m checksum). */
export function bech32AddressValid(text: string): boolean {
  const lower = text.toLowerCase();
  if (lower !== text && text.toUpperCase() !== text) return false;
  const sep = lower.lastIndexOf('1');
  if (sep < 1) return false;
  const hrp = lower.slice(0, sep);
  const data = [...lower.slice(sep + 1)].map((c) => bech32Charset.indexOf(c));
  if (data.length < 6 || data.some((v) => v < 0)) return false;
  const check = bech32Polymod([...hrpExpand(hrp), ...data]);
  return check === 1 || check === 0x2bc830a3;
}

export function bech32Encode(hrp: string, data: number[], bech32m: boolean): string {
  const values = [...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0];
  const mod = bech32Polymod(values) ^ (bech32m ? 0x2bc830a3 : 1);
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return hrp + '1' + [...data, ...checksum].map((v) => bech32Charset[v]).join('');
}

/** Shannon entropy in bits per character. */
export function shannonEntropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** A secret-looking token: long enough, high entropy, mixing character classes. */
export function looksRandom(text: string, minEntropy = 3.5): boolean {
  if (text.length < 16) return false;
  let lower = 0;
  let upper = 0;
  let digit = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 97 && c <= 122) lower = 1;
    else if (isUpperAsciiLetter(c)) upper = 1;
    else if (isAsciiDigit(c)) digit = 1;
  }
  return lower + upper + digit >= 2 && shannonEntropy(text) >= minEntropy;
}

export function ipv4Valid(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => p.length >= 1 && p.length <= 3 && allAsciiDigits(p, 0, p.length) && Number(p) <= 255 && !(p.length > 1 && p[0] === '0'));
}

/** Canadian SIN: 9 digits, Luhn, first digit not 0 or 8. */
export function canadianSinValid(text: string): boolean {
  const d = digitsOf(text);
  return d.length === 9 && d[0] !== '0' && d[0] !== '8' && luhnValid(d);
}

/** Australian Medicare number: 10-11 digits, first 2-6, weighted check digit at position 9. */
export function auMedicareValid(text: string): boolean {
  const d = digitsOf(text);
  if (d.length !== 10 && d.length !== 11) return false;
  const first = d.charCodeAt(0);
  if (first < 50 || first > 54) return false;
  const w = [1, 3, 7, 9, 1, 3, 7, 9];
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += (d.charCodeAt(i) - 48) * w[i]!;
  return sum % 10 === d.charCodeAt(8) - 48;
}

/** ICCID (SIM serial): 19-20 digits starting 89, Luhn. */
export function iccidValid(text: string): boolean {
  const d = digitsOf(text);
  return (d.length === 19 || d.length === 20) && d.startsWith('89') && luhnValid(d);
}

/** SWIFT/BIC structure: bank(4 letters) country(2 letters, known) location(2) branch(3 optional). */
export function bicValid(text: string): boolean {
  if (text.length !== 8 && text.length !== 11) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!isUpperAsciiLetter(c) && (i < 6 || !isAsciiDigit(c))) return false;
  }
  const country = text.slice(4, 6);
  return ibanLengths[country] !== undefined || bicCountriesWithoutIban.includes(country);
}

const bicCountriesWithoutIban = ['US', 'CA', 'AU', 'JP', 'CN', 'IN', 'SG', 'HK', 'MX', 'ZA', 'NZ', 'KR'];

/** Card expiry MM/YY or MM/YYYY with a real month (a whitespace character allowed on either side of the / or -). */
export function cardExpiryValid(text: string): boolean {
  if (text.length < 5 || !allAsciiDigits(text, 0, 2)) return false;
  let i = 2;
  if (isJsWhitespace(text.charCodeAt(i))) i++;
  const separator = text.charCodeAt(i++);
  if (separator !== 47 && separator !== 45) return false;
  if (isJsWhitespace(text.charCodeAt(i))) i++;
  const year = text.length - i;
  const month = (text.charCodeAt(0) - 48) * 10 + text.charCodeAt(1) - 48;
  return (year === 2 || year === 4) && allAsciiDigits(text, i, text.length) && month >= 1 && month <= 12;
}

/** Base64 that decodes to "user:password" (HTTP Basic credentials). */
export function basicAuthValid(text: string): boolean {
  const decoded = Buffer.from(withoutBasicScheme(text), 'base64').toString('utf8');
  return isUserColonPassword(decoded);
}

/** The text after a leading "Basic" (any case) and the whitespace that follows it, or the text itself. */
function withoutBasicScheme(text: string): string {
  if (text.length < 6 || !isJsWhitespace(text.charCodeAt(5))) return text;
  for (let i = 0; i < 5; i++) if ((text.charCodeAt(i) | 0x20) !== 'basic'.charCodeAt(i)) return text;
  let i = 6;
  while (i < text.length && isJsWhitespace(text.charCodeAt(i))) i++;
  return text.slice(i);
}

/** What \s matches in a JavaScript regular expression. */
function isJsWhitespace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * Printable ASCII as "user:password": 1-128 characters without a space, a colon, then 1-256
 * characters (spaces allowed). The user part may hold colons too, so any colon that leaves both
 * parts their lengths will do.
 */
function isUserColonPassword(decoded: string): boolean {
  let firstSpace = decoded.length;
  for (let i = 0; i < decoded.length; i++) {
    const c = decoded.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
    if (c === 0x20 && firstSpace === decoded.length) firstSpace = i;
  }
  const lowest = Math.max(1, decoded.length - 257);
  const highest = Math.min(128, firstSpace, decoded.length - 2);
  for (let colon = lowest; colon <= highest; colon++) if (decoded.charCodeAt(colon) === 58) return true;
  return false;
}

/** US Medicare Beneficiary Identifier position rules: by position, d a digit 1-9, n 0-9, a a letter (no B I L O S Z), x either. */
export function mbiValid(text: string): boolean {
  const t = text.replaceAll('-', '').toUpperCase();
  if (t.length !== mbiPositions.length) return false;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    const kind = mbiPositions[i];
    const digit = isAsciiDigit(c) && (kind !== 'd' || c !== 48);
    const letter = isUpperAsciiLetter(c) && !mbiExcludedLetters.includes(t[i]!);
    if (kind === 'a' ? !letter : kind === 'x' ? !(letter || digit) : !digit) return false;
  }
  return true;
}

const mbiPositions = 'daxnaxnaann';
const mbiExcludedLetters = 'BILOSZ';
