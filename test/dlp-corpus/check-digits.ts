// Check-digit computations for the corpus generator, written here from each format's published rule
// rather than taken from the engine, so that a generated value is evidence about the engine's
// validator instead of a copy of it. generate.ts verifies every value with the engine's validator
// and stops if the two disagree.

export function luhnDigit(partial: string): string {
  let sum = 0;
  for (let i = 0; i < partial.length; i++) {
    let d = Number(partial[partial.length - 1 - i]);
    if (i % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

/** DEA: (d1 + d3 + d5) + 2 (d2 + d4 + d6), last digit of the sum. */
export function deaDigit(six: string): string {
  const d = [...six].map(Number);
  return String((d[0]! + d[2]! + d[4]! + 2 * (d[1]! + d[3]! + d[5]!)) % 10);
}

/** NHS / CHI: weights 10..2, 11 - (sum mod 11), 11 becomes 0; null when the result is 10 (never issued). */
export function mod11Digit(nine: string): string | null {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i);
  const c = 11 - (sum % 11);
  return c === 10 ? null : String(c % 11);
}

const cfOdd: Record<string, number> = {
  0: 1, 1: 0, 2: 5, 3: 7, 4: 9, 5: 13, 6: 15, 7: 17, 8: 19, 9: 21,
  A: 1, B: 0, C: 5, D: 7, E: 9, F: 13, G: 15, H: 17, I: 19, J: 21, K: 2, L: 4, M: 18,
  N: 20, O: 11, P: 3, Q: 6, R: 8, S: 12, T: 14, U: 16, V: 10, W: 22, X: 25, Y: 24, Z: 23,
};

/** Italian codice fiscale: odd positions through the conversion table, even ones by value, sum mod 26 as a letter. */
export function codiceFiscaleLetter(fifteen: string): string {
  let sum = 0;
  for (let i = 0; i < 15; i++) {
    const c = fifteen[i]!;
    sum += i % 2 === 0 ? cfOdd[c]! : /\d/.test(c) ? Number(c) : c.charCodeAt(0) - 65;
  }
  return String.fromCharCode(65 + (sum % 26));
}

/** Spanish DNI / NIE control letter: the number mod 23 into a fixed letter table. */
export function dniLetter(digits: string): string {
  return 'TRWAGMYFPDXBNJZSQVHLCKE'[Number(digits) % 23]!;
}

/** French NIR key: 97 - (the 13 digits mod 97), Corsican departments 2A/2B counted as 19/18. */
export function nirKey(thirteen: string): string {
  const n = BigInt(thirteen.replace('2A', '19').replace('2B', '18'));
  return String(97n - (n % 97n)).padStart(2, '0');
}

/** Chinese resident ID: weights 2^(17-i) mod 11, ISO 7064 MOD 11-2, 10 written X. */
export function chineseIdCheck(seventeen: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(seventeen[i]) * (2 ** (17 - i) % 11);
  const c = (12 - (sum % 11)) % 11;
  return c === 10 ? 'X' : String(c);
}

/** Korean RRN: weights 2..9,2..5 over the first twelve digits, (11 - sum mod 11) mod 10. */
export function koreanRrnDigit(twelve: string): string {
  const w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(twelve[i]) * w[i]!;
  return String((11 - (sum % 11)) % 10);
}

/** Mexican CURP: each character's place in 0-9A-NÑO-Z times (18 - position), (10 - sum mod 10) mod 10. */
export function curpDigit(seventeen: string): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ';
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += alphabet.indexOf(seventeen[i]!) * (18 - i);
  return String((10 - (sum % 10)) % 10);
}

/** Australian Medicare: weights 1,3,7,9,1,3,7,9 over the first eight digits, sum mod 10. */
export function medicareDigit(eight: string): string {
  const w = [1, 3, 7, 9, 1, 3, 7, 9];
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += Number(eight[i]) * w[i]!;
  return String(sum % 10);
}

/** British Columbia PHN: 9 then eight digits weighted 2,4,8,5,10,9,7,3; 11 - sum mod 11; null for 10 or 11. */
export function bcPhnDigit(nine: string): string | null {
  const w = [2, 4, 8, 5, 10, 9, 7, 3];
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += (Number(nine[i + 1]) * w[i]!) % 11;
  const c = 11 - (sum % 11);
  return c >= 10 ? null : String(c);
}

/** Mexican CLABE: weights 3,7,1 repeated, each product mod 10, (10 - sum mod 10) mod 10. */
export function clabeDigit(seventeen: string): string {
  const w = [3, 7, 1];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += (Number(seventeen[i]) * w[i % 3]!) % 10;
  return String((10 - (sum % 10)) % 10);
}

/** Argentine CBU block check digit: weights 3,1,7,9 from the right, (10 - sum mod 10) mod 10. */
export function cbuDigit(block: string): string {
  const w = [3, 1, 7, 9];
  let sum = 0;
  for (let i = 0; i < block.length; i++) sum += Number(block[block.length - 1 - i]) * w[i % 4]!;
  return String((10 - (sum % 10)) % 10);
}

/** Brazilian CNPJ / CPF style mod-11 digit: weights given, r < 2 gives 0, otherwise 11 - r. */
export function mod11Brazil(digits: string, weights: number[]): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) sum += Number(digits[i]) * weights[i]!;
  const r = sum % 11;
  return String(r < 2 ? 0 : 11 - r);
}

const vinValues: Record<string, number> = {
  A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, J: 1, K: 2, L: 3, M: 4, N: 5, P: 7, R: 9,
  S: 2, T: 3, U: 4, V: 5, W: 6, X: 7, Y: 8, Z: 9,
};

/** North American VIN check character (position 9): weighted sum mod 11, 10 written X. */
export function vinCheck(vin17: string): string {
  const w = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const c = vin17[i]!;
    sum += (/\d/.test(c) ? Number(c) : vinValues[c]!) * w[i]!;
  }
  const r = sum % 11;
  return r === 10 ? 'X' : String(r);
}

const bech32Alphabet = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

function bech32Mod(values: number[]): number {
  const g = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const b = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((b >>> i) & 1) chk ^= g[i]!;
  }
  return chk >>> 0;
}

/** A segwit address (BIP 173 bech32 for version 0, BIP 350 bech32m for 1) for a witness program. */
export function segwitAddress(hrp: string, version: number, program: Uint8Array): string {
  const five: number[] = [version];
  let acc = 0;
  let bits = 0;
  for (const byte of program) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      five.push((acc >>> bits) & 31);
    }
  }
  if (bits > 0) five.push((acc << (5 - bits)) & 31);
  const expanded = [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
  const constant = version === 0 ? 1 : 0x2bc830a3;
  const mod = bech32Mod([...expanded, ...five, 0, 0, 0, 0, 0, 0]) ^ constant;
  const check = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...five, ...check].map((v) => bech32Alphabet[v]).join('')}`;
}
