// Labelled samples for every detector of the catalogue beyond the first families of generate.ts:
// fresh valid values where a check digit or a vendor shape makes them cheap to draw, the catalogue
// examples otherwise, each in a JSON tool result with the context a real document has (a labelled
// field, a sentence, a config file) and, where the detector needs none, without it. Hard negatives per
// family: the same values with one character changed so the check fails, labelled as the real ones
// are; vendor tokens with the right prefix but a short body, a foreign character or a failing CRC.
// Every generated positive passes the detector's own validator and every mutated negative fails it,
// or generation stops: a disagreement is a bug here or in the engine, to be looked at, not sampled.
import { base62, crc32 } from '../../ext-proc/dlp/checksums.ts';
import { builtInDetectors } from '../../ext-proc/dlp/catalogue.ts';
import { keywordPattern } from '../../ext-proc/dlp/compile.ts';
import type { DetectorDefinition } from '../../ext-proc/dlp/detector.ts';
import stdnumExamples from '../../ext-proc/dlp/detectors/stdnum-examples.json' with { type: 'json' };
import {
  bcPhnDigit, cbuDigit, chineseIdCheck, clabeDigit, codiceFiscaleLetter, curpDigit, deaDigit, dniLetter, koreanRrnDigit, luhnDigit,
  medicareDigit, mod11Brazil, mod11Digit, nirKey, segwitAddress, vinCheck,
} from './check-digits.ts';
import { alnum, credentialShapes, hex, type CredentialShape, type Piece } from './credential-shapes.ts';
import { createRandom, type LabelledSample } from './generate.ts';

const byId = new Map(builtInDetectors.map((d) => [d.id, d]));

function detector(id: string): DetectorDefinition {
  const d = byId.get(id);
  if (!d) throw new Error(`no detector ${id}`);
  return d;
}

/**
 * Valid values the engine's validator rejects, confirmed against the format's rule: kept in the corpus
 * as positives (the evaluation counts them as misses) instead of being filtered out.
 */
export const knownValidatorDefects: Record<string, { applies: (value: string) => boolean; why: string }> = {
  'ar-cbu': {
    applies: (v) => v[7] === '0' || v[21] === '0',
    why: 'stdnum AR.cbu computes a block check digit as 10 - (sum mod 10) without the final mod 10, so a CBU whose check digit is 0 never validates',
  },
};

/** A generated positive must pass its detector's validator; else the generator (or the validator) is wrong. */
function checked(id: string, value: string): string {
  const d = detector(id);
  if (d.validate && !d.validate(value) && !knownValidatorDefects[id]?.applies(value)) throw new Error(`generated ${id} value ${value} fails the detector's validator`);
  return value;
}

export interface Draw {
  rnd: () => number;
  digits(n: number): string;
  chars(n: number, set?: string): string;
  pick<T>(xs: readonly T[]): T;
  int(lo: number, hi: number): number;
}

export function drawFrom(rnd: () => number): Draw {
  return {
    rnd,
    digits: (n) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join(''),
    chars: (n, set = alnum) => Array.from({ length: n }, () => set[Math.floor(rnd() * set.length)]).join(''),
    pick: (xs) => xs[Math.floor(rnd() * xs.length)]!,
    int: (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)),
  };
}

/**
 * The value with one digit changed (a letter for another letter if it has no digit) so that the
 * detector's validator rejects it. A changed value that another detector would rightly report is no
 * hard negative, so the change must also fail every validator of a detector the context lets run:
 * those sharing a keyword with `label`, and the checksum-backed ones that need no context (a mutated
 * VAT number in a "vat" field can be another country's valid VAT number; a mutated 16-digit number
 * can pass Luhn as a card). Tries positions in a seeded order; null if none works (a label shared with
 * a detector that checks only the shape, such as "cui", has no hard negative of this kind).
 */
export function mutated(id: string, value: string, draw: Draw, label = ''): string | null {
  const d = detector(id);
  const digitPositions = [...value].map((_, i) => i).filter((i) => /\d/.test(value[i]!));
  const positions = digitPositions.length > 0 ? digitPositions : [...value].map((_, i) => i).filter((i) => /[A-Za-z]/.test(value[i]!));
  const rivals = rivalsOf(id, label.toLowerCase());
  for (let attempt = 0; attempt < 100; attempt++) {
    const i = draw.pick(positions);
    const c = value[i]!;
    const set = /\d/.test(c) ? '0123456789' : /[A-Z]/.test(c) ? 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' : 'abcdefghijklmnopqrstuvwxyz';
    const other = draw.pick([...set].filter((x) => x !== c));
    const candidate = value.slice(0, i) + other + value.slice(i + 1);
    if (!d.validate || d.validate(candidate)) continue;
    const forms = [candidate, candidate.replace(/[\s.\/-]/g, '')];
    if (!rivals.some((r) => forms.some((f) => r.validate!(f)))) return candidate;
  }
  if (!d.validate) throw new Error(`${id} has no validator to fail`);
  return null;
}

const rivalCache = new Map<string, DetectorDefinition[]>();

/** The other detectors with a validator that would look at a value labelled `label`. */
function rivalsOf(id: string, label: string): DetectorDefinition[] {
  const key = `${id}|${label}`;
  let rivals = rivalCache.get(key);
  if (!rivals) {
    rivals = builtInDetectors.filter((r) => r.id !== id && r.validate && (
      (!r.requiresContext && r.validation === 'checksum') ||
      (r.keywords?.length && new RegExp(keywordPattern(r.keywords), 'i').test(label))
    ));
    rivalCache.set(key, rivals);
  }
  return rivals;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** A calendar date between 1940 and 2005 (day up to 28 so every month has it). */
function birthDate(draw: Draw): { y: number; m: number; d: number } {
  return { y: draw.int(1940, 2005), m: draw.int(1, 12), d: draw.int(1, 28) };
}

function spacedGroups(value: string, sizes: number[], sep = ' '): string {
  const out: string[] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(value.slice(at, at + n));
    at += n;
  }
  return out.join(sep);
}

/** Generators of fresh valid values for detectors whose check digit (or structure) is cheap to compute. */
export const valueGenerators: Record<string, (draw: Draw) => string> = {
  'payment-card-discover': (g) => card(g, g.pick(['6011', '65', '644', '649']), 16),
  'payment-card-jcb': (g) => card(g, g.pick(['3528', '3530', '3589', '3566']), 16),
  'payment-card-diners': (g) => card(g, g.pick(['300', '305', '36', '38']), 14, [4, 6, 4]),
  'payment-card-unionpay': (g) => card(g, g.pick(['62', '6212', '6250']), 16),
  'payment-card-maestro': (g) => {
    const partial = g.pick(['5018', '5020', '5038', '6304', '6759', '6761']) + g.digits(g.pick([8, 11, 14]));
    return partial + luhnDigit(partial);
  },
  'payment-card-mir': (g) => card(g, g.pick(['2200', '2201', '2202', '2204']), 16),
  'us-dea-number': (g) => {
    const six = g.digits(6);
    return g.pick([...'ABFGMPR']) + g.chars(1, 'ABCDEFGHJKLMNPRSTUVWXYZ') + six + deaDigit(six);
  },
  'uk-chi-number': (g) => {
    for (;;) {
      const { y, m, d } = birthDate(g);
      const nine = pad2(d) + pad2(m) + pad2(y % 100) + g.digits(3);
      const c = mod11Digit(nine);
      if (c !== null) return nine + c;
    }
  },
  'it-codice-fiscale': (g) => {
    const { y, m, d } = birthDate(g);
    const day = g.rnd() < 0.5 ? d : d + 40;
    const fifteen = g.chars(6, 'BCDFGLMNPRSTVZ') + pad2(y % 100) + 'ABCDEHLMPRST'[m - 1] + pad2(day) + g.pick(['H', 'F', 'L', 'A']) + g.digits(3);
    return fifteen + codiceFiscaleLetter(fifteen);
  },
  'es-dni': (g) => {
    const n = String(g.int(10_000_000, 79_999_999));
    return n + (g.rnd() < 0.3 ? '-' : '') + dniLetter(n);
  },
  'es-nie': (g) => {
    const prefix = g.pick(['X', 'Y', 'Z']);
    const seven = g.digits(7);
    return prefix + seven + dniLetter('XYZ'.indexOf(prefix) + seven);
  },
  'fr-nir': (g) => {
    const { y, m } = birthDate(g);
    const thirteen = g.pick(['1', '2']) + pad2(y % 100) + pad2(m) + pad2(g.int(1, 95)).replace('20', '21') + g.digits(3).replace(/^0{3}$/, '101') + String(g.int(1, 999)).padStart(3, '0');
    const full = thirteen + nirKey(thirteen);
    return g.rnd() < 0.5 ? full : spacedGroups(full, [1, 2, 2, 2, 3, 3, 2]);
  },
  'cn-resident-id': (g) => {
    const { y, m, d } = birthDate(g);
    const seventeen = g.pick(['110101', '310104', '440106', '510107', '330106', '420102']) + y + pad2(m) + pad2(d) + g.digits(3);
    return seventeen + chineseIdCheck(seventeen);
  },
  'kr-rrn': (g) => {
    const { y, m, d } = birthDate(g);
    const century = y >= 2000 ? g.pick(['3', '4']) : g.pick(['1', '2']);
    const twelve = pad2(y % 100) + pad2(m) + pad2(d) + century + pad2(g.int(0, 96)) + g.digits(3);
    const full = twelve + koreanRrnDigit(twelve);
    return `${full.slice(0, 6)}-${full.slice(6)}`;
  },
  'mx-curp': (g) => {
    const { y, m, d } = birthDate(g);
    const seventeen = g.chars(1, 'BCDFGHJLMNPRSTVZ') + g.pick([...'AEIOU']) + g.chars(2, 'BCDFGHJLMNPRSTVZ') + pad2(y % 100) + pad2(m) + pad2(d) +
      g.pick(['H', 'M']) + g.pick(['AS', 'BC', 'CL', 'DF', 'JC', 'NL', 'PL', 'VZ', 'YN']) + g.chars(3, 'BCDFGHJKLMNPQRSTVWXZ') + (y >= 2000 ? 'A' : '0');
    return seventeen + curpDigit(seventeen);
  },
  'se-personnummer': (g) => {
    const { y, m, d } = birthDate(g);
    const nine = pad2(y % 100) + pad2(m) + pad2(d) + g.digits(3);
    const full = nine + luhnDigit(nine);
    return `${full.slice(0, 6)}-${full.slice(6)}`;
  },
  'br-cnpj-formatted': (g) => {
    const base = g.digits(8) + '0001';
    const d1 = mod11Brazil(base, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    const d2 = mod11Brazil(base + d1, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    const c = base + d1 + d2;
    return `${c.slice(0, 2)}.${c.slice(2, 5)}.${c.slice(5, 8)}/${c.slice(8, 12)}-${c.slice(12)}`;
  },
  'au-medicare-number': (g) => {
    const eight = String(g.int(2, 6)) + g.digits(7);
    const ten = eight + medicareDigit(eight) + String(g.int(1, 9));
    return g.rnd() < 0.5 ? ten : `${ten.slice(0, 4)} ${ten.slice(4, 9)} ${ten.slice(9)}`;
  },
  'ca-ontario-health-number': (g) => {
    const nine = String(g.int(1, 9)) + g.digits(8);
    const ten = nine + luhnDigit(nine);
    return g.rnd() < 0.5 ? ten : spacedGroups(ten, [4, 3, 3], g.pick([' ', '-']));
  },
  'ca-bc-phn': (g) => {
    for (;;) {
      const nine = '9' + g.digits(8);
      const c = bcPhnDigit(nine);
      if (c !== null) return g.rnd() < 0.5 ? nine + c : spacedGroups(nine + c, [4, 3, 3]);
    }
  },
  'mx-clabe': (g) => {
    const seventeen = g.pick(['002', '012', '014', '021', '072']) + g.pick(['010', '180', '320', '580']) + g.digits(11);
    return seventeen + clabeDigit(seventeen);
  },
  'ar-cbu': (g) => {
    const first = g.pick(['285', '011', '007', '017', '072']) + g.digits(4);
    const second = g.digits(13);
    return first + cbuDigit(first) + second + cbuDigit(second);
  },
  iccid: (g) => {
    const partial = '89' + g.pick(['01', '44', '49', '33', '91']) + g.digits(g.pick([14, 15]));
    return partial + luhnDigit(partial);
  },
  'vehicle-identification-number': (g) => {
    const vinChars = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
    for (;;) {
      const raw = g.pick(['1HG', '1FT', 'JHM', 'WVW', '5YJ', '2T1', '3VW']) + g.chars(5, vinChars) + '0' + g.chars(1, 'ABCDEFGHJKLMNPRSTVWXY123456789') + g.chars(1, vinChars) + g.digits(6);
      const vin = raw.slice(0, 8) + vinCheck(raw) + raw.slice(9);
      if (/\d/.test(vin) && /[A-Z]/.test(vin)) return vin;
    }
  },
  'bitcoin-segwit-address': (g) => {
    const version = g.rnd() < 0.7 ? 0 : 1;
    const length = version === 0 ? g.pick([20, 32]) : 32;
    const program = Uint8Array.from({ length }, () => g.int(0, 255));
    return segwitAddress('bc', version, program);
  },
  'payment-card-track-data': (g) => {
    const pan = card(g, '4', 16, []);
    const expiry = `${pad2(g.int(25, 31))}${pad2(g.int(1, 12))}`;
    return g.rnd() < 0.5
      ? `%B${pan}^${g.pick(['DOE', 'ROE', 'SMITH', 'GARCIA'])}/${g.pick(['JANE', 'JOHN', 'ALEX'])}^${expiry}101${g.digits(12)}?`
      : `;${pan}=${expiry}101${g.digits(13)}?`;
  },
  'us-mbi': (g) => {
    const letter = 'ACDEFGHJKMNPQRTUVWXY';
    const both = letter + '0123456789';
    const v = String(g.int(1, 9)) + g.chars(1, letter) + g.chars(1, both) + g.digits(1) + g.chars(1, letter) + g.chars(1, both) + g.digits(1) + g.chars(2, letter) + g.digits(2);
    return g.rnd() < 0.5 ? v : `${v.slice(0, 4)}-${v.slice(4, 7)}-${v.slice(7)}`;
  },
  'uk-nino': (g) => {
    const v = g.chars(1, 'ABCEGHJKLMNPRSTWXYZ') + g.chars(1, 'ABCEGHJKLMNPRSTWXYZ') + g.digits(6) + g.pick([...'ABCD']);
    if (['GB', 'BG', 'NK', 'KN', 'TN', 'NT', 'ZZ'].includes(v.slice(0, 2))) return 'JG' + v.slice(2);
    return g.rnd() < 0.5 ? v : `${v.slice(0, 2)} ${v.slice(2, 4)} ${v.slice(4, 6)} ${v.slice(6, 8)} ${v[8]}`;
  },
  'us-ssn-unformatted': (g) => String(g.int(100, 665)) + pad2(g.int(1, 99)) + String(g.int(1, 9999)).padStart(4, '0'),
  'us-itin': (g) => `9${g.digits(2)}-${g.pick(['50', '65', '70', '78', '88', '90', '92', '94', '99'])}-${g.digits(4)}`,
  'payment-card-cvv': (g) => g.digits(g.pick([3, 3, 4])),
  'payment-card-expiry': (g) => `${pad2(g.int(1, 12))}/${g.pick([String(g.int(25, 32)), String(g.int(2025, 2032))])}`,
  'us-bank-account-number': (g) => g.digits(g.int(8, 14)),
  'swift-bic': (g) => g.chars(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') + g.pick(['DE', 'FR', 'GB', 'US', 'IT', 'ES', 'NL', 'CH']) + g.chars(2, 'ABCDEFGHIJKLMNPQRSTUVWXYZ23456789') + (g.rnd() < 0.5 ? '' : g.chars(3, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')),
  'ethereum-address': (g) => '0x' + g.chars(40, g.rnd() < 0.5 ? hex : '0123456789abcdefABCDEF'),
  'crypto-private-key-hex': (g) => g.chars(64, hex),
  'medical-record-number': (g) => g.pick(['', 'MR', 'H']) + g.digits(g.int(6, 9)),
  'icd10-diagnosis-code': (g) => g.pick(['E11.9', 'I10', 'J45.909', 'F32.A', 'M54.5', 'K21.9', 'C50.911', 'Z79.4', 'N18.3', 'G43.909', 'E78.5', 'J18.9']),
  'us-ndc-drug-code': (g) => g.pick([`${g.digits(4)}-${g.digits(4)}-${g.digits(2)}`, `${g.digits(5)}-${g.digits(3)}-${g.digits(2)}`, `${g.digits(5)}-${g.digits(4)}-${g.digits(1)}`]),
  'health-plan-member-id': (g) => g.chars(g.int(0, 3), 'ABCDEFGHJKLMNPRSTUVWXYZ') + g.digits(g.int(8, 11)),
  'passport-number': (g) => g.pick([g.chars(1, 'CFGHJKLMNPRTVWXYZ') + g.digits(8), g.digits(9), g.chars(2, 'ABCDEFGHJKLMNPRSTUVWXYZ') + g.digits(7)]),
  'us-driver-license': (g) => g.pick([g.chars(1, 'ABCDEFGHJKLMNPRSTUVWXYZ') + g.digits(7), g.digits(9), g.chars(1, 'ABCDEFGHJKLMNPRSTUVWXYZ') + g.digits(12)]),
  'date-of-birth': (g) => {
    const { y, m, d } = birthDate(g);
    return g.pick([`${y}-${pad2(m)}-${pad2(d)}`, `${pad2(d)}.${pad2(m)}.${y}`, `${m}/${d}/${y}`]);
  },
  'email-address': (g) => `${g.pick(['jane', 'j.roe', 'alex.kim', 'm.garcia', 'priya.n', 'ops-lead'])}${g.int(1, 999)}@${g.pick(['example.com', 'mail.example.org', 'corp.example.net', 'example.co.uk'])}`,
  'phone-number-e164': (g) => g.pick([`+44 20 ${g.int(7000, 7999)} ${g.digits(4)}`, `+1${g.int(201, 989)}${g.int(200, 999)}${g.digits(4)}`, `+49 30 ${g.digits(8)}`, `+33 6 ${g.digits(2)} ${g.digits(2)} ${g.digits(2)} ${g.digits(2)}`, `+81 3-${g.digits(4)}-${g.digits(4)}`]),
  'phone-number-nanp': (g) => {
    const area = g.int(201, 989);
    const exchange = g.int(200, 999);
    return g.pick([`(${area}) ${exchange}-${g.digits(4)}`, `${area}-${exchange}-${g.digits(4)}`, `${area}.${exchange}.${g.digits(4)}`]);
  },
  'phone-number-labelled': (g) => g.pick([`06 ${g.digits(2)} ${g.digits(2)} ${g.digits(2)} ${g.digits(2)}`, `030 ${g.digits(7)}`, `0${g.int(20, 79)} ${g.digits(4)} ${g.digits(4)}`, `(0${g.int(10, 99)}) ${g.digits(6)}`]),
  'street-address-us': (g) => `${g.int(1, 9999)} ${g.pick(['Maple', 'Oak Hill', 'Pennsylvania', 'Cedar', 'Sunset', 'Lincoln', 'Main'])} ${g.pick(['Street', 'Avenue', 'Road', 'Boulevard', 'Lane', 'Drive', 'Court', 'Way'])}`,
  'uk-postcode': (g) => g.pick(['SW1A 1AA', 'EC1A 1BB', 'W1A 0AX', 'M1 1AE', 'B33 8TH', 'CR2 6XH', 'DN55 1PT', 'LS1 4AP', 'EH1 1YZ', 'CF10 1EP']),
  'ipv4-address': (g) => g.pick([`203.0.113.${g.int(1, 254)}`, `198.51.100.${g.int(1, 254)}`, `${g.int(11, 223)}.${g.int(0, 255)}.${g.int(0, 255)}.${g.int(1, 254)}`]),
  'ipv6-address': (g) => g.pick([`2001:db8:${g.chars(4, hex)}:${g.chars(4, hex)}::${g.chars(3, hex)}`, `2001:0db8:${Array.from({ length: 6 }, () => g.chars(4, hex)).join(':')}`, `fe80::${g.chars(4, hex)}:${g.chars(4, hex)}:${g.chars(4, hex)}:${g.int(1000, 9999)}`]),
  'mac-address': (g) => Array.from({ length: 6 }, () => g.chars(2, '0123456789ABCDEF')).join(g.pick([':', '-'])),
  imsi: (g) => g.pick(['310150', '234150', '262010', '208010']) + g.digits(g.pick([8, 9])),
  'advertising-id': (g) => `${g.chars(8, '0123456789ABCDEF')}-${g.chars(4, '0123456789ABCDEF')}-4${g.chars(3, '0123456789ABCDEF')}-A${g.chars(3, '0123456789ABCDEF')}-${g.chars(12, '0123456789ABCDEF')}`,
  'geo-coordinates': (g) => `${(g.rnd() * 140 - 70).toFixed(5)}, ${(g.rnd() * 340 - 170).toFixed(5)}`,
};

/** A Luhn-valid card number, half the time written in groups (space or dash); `groups` empty for digits only. */
function card(g: Draw, prefix: string, length: number, groups: number[] = [4, 4, 4, 4]): string {
  const partial = prefix + g.digits(length - prefix.length - 1);
  const n = partial + luhnDigit(partial);
  const r = g.rnd();
  if (groups.length === 0 || r < 0.5) return n;
  return spacedGroups(n, groups, r < 0.8 ? ' ' : '-');
}

/** A credential drawn from its vendor shape. */
export function credential(shape: CredentialShape, g: Draw): string {
  if (shape.crc) {
    const random = g.chars(30);
    return `${shape.crc}_${random}${base62(crc32(random), 6)}`;
  }
  return shape.pieces.map((p) => (typeof p === 'string' ? p : g.chars(p.length, p.alphabet))).join('');
}

/** The three near misses of a vendor shape: body below its minimum length, a character outside its alphabet, a failing CRC. */
export function credentialNearMisses(shape: CredentialShape, g: Draw): { value: string; how: string }[] {
  if (shape.crc) {
    const random = g.chars(30);
    const good = base62(crc32(random), 6);
    const bad = good.slice(0, 5) + (good[5] === 'A' ? 'B' : 'A');
    return [
      { value: `${shape.crc}_${random}${bad}`, how: 'CRC32 fails' },
      { value: `${shape.crc}_${random}${good.slice(0, 3)}`, how: 'body three characters short' },
      { value: `${shape.crc}_${random.slice(0, 15)}.${random.slice(15)}${good}`, how: 'a dot inside the body' },
    ];
  }
  const longest = shape.pieces.reduce((best, p, i) => (typeof p !== 'string' && p.length > (shape.pieces[best] as { length: number }).length ? i : best), shape.pieces.findIndex((p) => typeof p !== 'string'));
  const build = (replace: (p: Exclude<Piece, string>) => string) => shape.pieces.map((p, i) => (typeof p === 'string' ? p : i === longest ? replace(p) : g.chars(p.length, p.alphabet))).join('');
  const outsider = (alphabet: string) => [...'.!gz#'].find((c) => !alphabet.includes(c))!;
  return [
    { value: build((p) => g.chars((p.min ?? p.length) - 3, p.alphabet)), how: 'body three characters short' },
    { value: build((p) => g.chars(Math.floor((p.min ?? p.length) / 2), p.alphabet) + outsider(p.alphabet) + g.chars(p.length - Math.floor((p.min ?? p.length) / 2) - 1, p.alphabet)), how: 'a character outside the alphabet' },
  ];
}

/** Where a value of the detector appears: after `word` (one of its keywords) as a field, in a sentence or a table cell, or with nothing naming it. */
function contexts(d: DetectorDefinition, word: string, value: string, labelledOnly = d.requiresContext): unknown[] {
  const labelled = [
    { record: { [word.replace(/\s+/g, '_')]: value, updated: '2024-05-01' } },
    { result: { content: [{ type: 'text', text: `Found the ${word}: ${value} in the uploaded form.` }] } },
    { rows: [{ kind: word, value: `${word} ${value}` }] },
  ];
  const bare = [{ result: { value, source: 'import' } }, { note: `Copied ${value} from the form before the meeting.` }];
  return labelledOnly ? labelled : [...labelled, ...bare];
}

const genericCredentialWords = [...detector('generic-api-key').keywords!, ...detector('password-field').keywords!];

const keywordOf = (d: DetectorDefinition, g: Draw) => (d.keywords?.length ? g.pick(d.keywords) : 'value');

export function detectorSamples(seed: number, perDetector: number, labelledBefore: ReadonlySet<string>): LabelledSample[] {
  const g = drawFrom(createRandom(seed));
  const samples: LabelledSample[] = [];
  const add = (detectorId: string | null, body: unknown, note: string) => samples.push({ detector: detectorId, body, note });

  // Generated values: fresh positives, and for checksum detectors the same values with one character changed.
  for (const [id, make] of Object.entries(valueGenerators)) {
    const d = detector(id);
    for (let i = 0; i < perDetector; i++) {
      const value = checked(id, make(g));
      add(id, g.pick(contexts(d, keywordOf(d, g), value)), `generated ${id}`);
      if (d.validation === 'checksum') {
        const word = keywordOf(d, g);
        const bad = mutated(id, value, g, word);
        if (bad !== null) add(null, g.pick(contexts(d, word, bad, true)), `${id} with one character changed (check fails)`);
      }
    }
  }

  // Aadhaar: 12-digit numbers that pass Verhoeff by chance (one in ten does), in fields that do not name an Aadhaar.
  for (let i = 0; i < perDetector; i++) {
    let n = String(g.int(2, 9)) + g.digits(11);
    while (!detector('in-aadhaar').validate!(n)) n = String(g.int(2, 9)) + g.digits(11);
    add(null, g.pick([{ shipment: { consignment_id: n, carrier: 'dtdc' } }, { ledger: { entry: n, amount: g.int(100, 99999) } }, { barcode: n }]), 'Verhoeff-valid 12 digits, no Aadhaar context');
  }
  // Aadhaar next to its label with one digit changed (Verhoeff catches every single-digit change).
  for (let i = 0; i < perDetector; i++) {
    let n = String(g.int(2, 9)) + g.digits(11);
    while (!detector('in-aadhaar').validate!(n)) n = String(g.int(2, 9)) + g.digits(11);
    const bad = mutated('in-aadhaar', n, g, 'aadhaar')!;
    add(null, { kyc: { aadhaar: `${bad.slice(0, 4)} ${bad.slice(4, 8)} ${bad.slice(8)}` } }, 'in-aadhaar with one digit changed (Verhoeff fails)');
  }

  // National identifiers validated by stdnum: each test vector in a sentence with another of its names,
  // and with one character changed next to its name, where the detector checks a check digit.
  for (const d of builtInDetectors) {
    const path = Object.keys(stdnumExamples).find((k) => k.toLowerCase() === d.id.replace('-', '.').replace(/-/g, '_'));
    if (!path || !d.requiresContext || d.pattern) continue;
    for (const value of (stdnumExamples as Record<string, string[]>)[path]!) {
      const word = g.pick(d.keywords!);
      add(d.id, { result: { content: [{ type: 'text', text: `Customer record updated. ${word}: ${value}. Verified by the back office.` }] } }, `stdnum ${path} in prose`);
      const label = d.keywords![0]!.replace(/ /g, '_');
      const bad = d.validation === 'checksum' ? mutated(d.id, value, g, label) : null;
      if (bad !== null) add(null, { record: { [label]: bad, updated: '2024-05-01' } }, `stdnum ${path} with one character changed (check fails)`);
    }
  }

  // Vendor credentials: in an env file, a config object, a log line, and bare; near misses in neutral fields.
  for (const [id, shape] of Object.entries(credentialShapes)) {
    detector(id);
    for (let i = 0; i < Math.ceil(perDetector / 2); i++) {
      const value = credential(shape, g);
      const shown = (shape.label ?? '') + value;
      const body = g.pick<unknown>([
        { result: { content: [{ type: 'text', text: `# .env\nNODE_ENV=production\n${shape.label ? shown : `${shape.env}=${value}`}\nLOG_LEVEL=info\n` }] } },
        { config: { service: id.split('-')[0], [shape.label ? 'header' : 'api_key']: shown, region: 'eu-west-1' } },
        { log: `2024-05-01T10:00:00Z worker started with ${shown} loaded from the vault` },
        ...(shape.label ? [] : [{ file: 'deploy/values.yaml', line: 12, text: `    credential: ${value}` }, { matches: [value] }]),
      ]);
      add(id, body, `generated ${id}`);
    }
    // A prefix that itself says "secret" or "access_token" makes any near miss a labelled secret still.
    const prefix = typeof shape.pieces[0] === 'string' ? shape.pieces[0].toLowerCase() : '';
    if (genericCredentialWords.some((w) => prefix.includes(w))) continue;
    for (const miss of credentialNearMisses(shape, g)) {
      add(null, { fixture: { ref: miss.value, build: g.int(100, 999) } }, `${id} prefix, ${miss.how}`);
    }
  }

  // Credentials with a structure of their own (URLs, headers, key files, labelled fields).
  const repeat = (id: string, make: () => unknown) => {
    for (let i = 0; i < Math.ceil(perDetector / 2); i++) add(id, make(), `generated ${id}`);
  };
  repeat('gcp-service-account-key', () => ({ content: [{ type: 'text', text: JSON.stringify({ type: 'service_account', project_id: `proj-${g.int(1000, 9999)}`, private_key_id: g.chars(40, hex), token_uri: 'https://oauth2.googleapis.com/token' }, null, 2) }] }));
  repeat('azure-storage-connection-string', () => ({ settings: { AzureWebJobsStorage: `DefaultEndpointsProtocol=https;AccountName=st${g.chars(8, 'abcdefghijklmnopqrstuvwxyz')};AccountKey=${g.chars(86, alnum + '+/')}==;EndpointSuffix=core.windows.net` } }));
  repeat('azure-sas-token', () => ({ download_url: `https://st${g.chars(6, 'abcdefghijklmnopqrstuvwxyz')}.blob.core.windows.net/exports/report.csv?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-06-01T00:00:00Z&sig=${g.chars(43, alnum)}%3D` }));
  repeat('slack-webhook-url', () => ({ alerting: { webhook: `https://hooks.slack.com/services/T${g.chars(8, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}/B${g.chars(10, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}/${g.chars(24, alnum)}` } }));
  repeat('discord-webhook-url', () => ({ notify: `https://discord.com/api/webhooks/${g.int(1, 9)}${g.digits(17)}/${g.chars(68, alnum + '_-')}` }));
  repeat('microsoft-teams-webhook', () => {
    const u = () => `${g.chars(8, hex)}-${g.chars(4, hex)}-4${g.chars(3, hex)}-a${g.chars(3, hex)}-${g.chars(12, hex)}`;
    return { channel: { incoming_webhook: `https://contoso.webhook.office.com/webhookb2/${u()}@${u()}/IncomingWebhook/${g.chars(32, hex)}/${u()}` } };
  });
  repeat('square-access-token', () => ({ square: { token: `sq0atp-${g.chars(22, alnum + '_-')}` } }));
  repeat('private-key-block', () => ({ content: [{ type: 'text', text: `-----BEGIN ${g.pick(['RSA ', 'EC ', 'OPENSSH ', ''])}PRIVATE KEY-----\n${Array.from({ length: 6 }, () => g.chars(64, alnum + '+/')).join('\n')}\n-----END PRIVATE KEY-----\n` }] }));
  repeat('putty-private-key', () => ({ file: `PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n${g.chars(64, alnum + '+/')}\nPrivate-Lines: 1\n${g.chars(44, alnum + '+/')}\n` }));
  repeat('url-embedded-credentials', () => ({ datasource: { url: `${g.pick(['postgres', 'mysql', 'mongodb', 'redis', 'amqp'])}://${g.pick(['app', 'svc_reporting', 'admin'])}:${g.chars(g.int(12, 24), alnum)}@${g.pick(['db.internal', 'cache-1.prod.internal', 'mq.internal'])}:${g.int(1024, 9999)}/main` } }));
  repeat('url-token-parameter', () => ({ request: { url: `https://api.example.com/v2/export?format=csv&${g.pick(['access_token', 'api_key', 'token', 'client_secret'])}=${g.chars(g.int(24, 40), alnum)}` } }));
  repeat('http-basic-auth-header', () => ({ request: { headers: { Authorization: `Basic ${Buffer.from(`${g.pick(['admin', 'deploy', 'ci'])}:${g.chars(g.int(10, 20), alnum)}`).toString('base64')}` } } }));
  repeat('http-bearer-token', () => ({ request: { headers: { Authorization: `Bearer ${g.chars(g.int(32, 64), alnum)}` } } }));
  repeat('password-field', () => g.pick<unknown>([{ user: { login: 'svc-report', password: g.chars(g.int(10, 18), alnum + '!#%') } }, { text: `db_pass=${g.chars(14, alnum)}` }, { smtp: { host: 'mail.internal', passwd: g.chars(12, alnum) } }]));
  repeat('generic-api-key', () => g.pick<unknown>([{ integration: { name: 'crm', api_key: g.chars(32, alnum) } }, { headers: { 'x-api-key': g.chars(40, alnum) } }, { text: `auth_token: ${g.chars(28, alnum)}` }]));

  // The catalogue examples of any detector still without a sample (a detector added later), so every one has one.
  const covered = new Set([...labelledBefore, ...samples.flatMap((s) => (s.detector ? [s.detector] : []))]);
  for (const d of builtInDetectors) {
    if (covered.has(d.id)) continue;
    for (const example of d.examples) add(d.id, { content: [{ type: 'text', text: example }] }, `catalogue example of ${d.id}`);
  }
  return samples;
}
