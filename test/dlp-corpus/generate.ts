// Deterministic, seeded generator for the DLP evaluation corpus and the
// benchmark bodies. True positives carry valid checksums; hard negatives are
// look-alikes (order numbers, UUIDs, timestamps, digit runs failing the
// checksum, phone-like numbers). detector-samples.ts adds every other detector
// and its family's hard negatives. Run: sh deploy/bootstrap.sh node test/dlp-corpus/generate.ts
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  abaRoutingValid, base58CheckPayload, base58Encode, ibanCheckDigits, luhnCheckDigit, luhnValid, nhsCheckDigit, npiValid, verhoeffCheckDigit,
} from '../../ext-proc/dlp/checksums.ts';
import { checksummedToken } from '../../ext-proc/dlp/detectors/secrets.ts';
import { nationalDetectors } from '../../ext-proc/dlp/detectors/national.ts';
import stdnumExamples from '../../ext-proc/dlp/detectors/stdnum-examples.json' with { type: 'json' };
import { detectorSamples } from './detector-samples.ts';

/** "br-cpf" -> "BR.cpf" (the detector id is the stdnum path, lower-cased). */
function stdnumPathOf(id: string): string {
  const [country, ...rest] = id.split('-');
  const name = rest.join('_');
  const key = Object.keys(stdnumExamples).find((k) => k.toLowerCase() === `${country}.${name}`);
  return key ?? '';
}

export function createRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LabelledSample {
  /** Detector that must report it, or null for a hard negative. */
  detector: string | null;
  /** A JSON tool result holding the value. */
  body: unknown;
  note: string;
}

const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function generateCorpus(seed = 20240601, perDetector = 40): LabelledSample[] {
  const rnd = createRandom(seed);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const chars = (n: number, set = alnum) => Array.from({ length: n }, () => set[Math.floor(rnd() * set.length)]).join('');
  const samples: LabelledSample[] = [];
  const tp = (detector: string, make: () => unknown, note: string) => {
    for (let i = 0; i < perDetector; i++) samples.push({ detector, body: make(), note });
  };
  const neg = (make: () => unknown, note: string, n = perDetector) => {
    for (let i = 0; i < n; i++) samples.push({ detector: null, body: make(), note });
  };
  const card = (prefix: string, length: number) => {
    const partial = prefix + digits(length - prefix.length - 1);
    return partial + luhnCheckDigit(partial);
  };
  const spaced = (s: string) => s.replace(/(\d{4})(?=\d)/g, '$1 ');

  tp('payment-card-visa', () => ({ customer: 'C-' + digits(6), payment: { card_number: rnd() < 0.5 ? card('4', 16) : spaced(card('4', 16)), brand: 'visa' } }), 'visa');
  tp('payment-card-mastercard', () => ({ invoice: { paid_with: `card ${card(pick(['51', '52', '55', '2221']), 16)}` } }), 'mastercard');
  tp('payment-card-amex', () => ({ note: `Customer read out ${card(pick(['34', '37']), 15)} on the call` }), 'amex');
  tp('iban', () => {
    const bban = digits(18);
    return { payout: { iban: `DE${ibanCheckDigits('DE', bban)}${bban}`, holder: 'Jane Roe' } };
  }, 'german iban');
  tp('iban', () => {
    const bban = 'WEST' + digits(14);
    return { payout: { iban: `GB${ibanCheckDigits('GB', bban)}${bban}` } };
  }, 'uk iban');
  tp('us-aba-routing-number', () => {
    for (;;) {
      const r = pick(['01', '02', '11', '21', '26', '31', '06']) + digits(7);
      if (abaRoutingValid(r)) return { bank: { routing_number: r, account: 'checking' } };
    }
  }, 'aba');
  tp('us-npi', () => {
    for (;;) {
      const n = '1' + digits(9);
      if (npiValid(n)) return { provider: { npi: n, name: 'Dr. Who' } };
    }
  }, 'npi');
  tp('uk-nhs-number', () => {
    for (;;) {
      const nine = digits(9);
      const c = nhsCheckDigit(nine);
      if (c !== null) return { patient: { nhs_number: `${nine.slice(0, 3)} ${nine.slice(3, 6)} ${nine.slice(6)}${c}` } };
    }
  }, 'nhs');
  tp('us-ssn', () => ({ applicant: { ssn: `${100 + Math.floor(rnd() * 565)}-${10 + Math.floor(rnd() * 89)}-${1000 + Math.floor(rnd() * 8999)}` } }), 'ssn dashed');
  tp('in-aadhaar', () => {
    const partial = String(2 + Math.floor(rnd() * 8)) + digits(10);
    const a = partial + verhoeffCheckDigit(partial);
    return { kyc: { aadhaar: `${a.slice(0, 4)} ${a.slice(4, 8)} ${a.slice(8)}` } };
  }, 'aadhaar');
  tp('imei', () => ({ device: { imei: card('35', 15) } }), 'imei');
  tp('ca-sin', () => {
    const s = card(String(1 + Math.floor(rnd() * 7)), 9);
    return { employee: { sin: `${s.slice(0, 3)} ${s.slice(3, 6)} ${s.slice(6)}` } };
  }, 'sin');
  tp('github-personal-access-token', () => ({ config: { note: `token ${checksummedToken('ghp', chars(30))} leaked` } }), 'github pat');
  tp('bitcoin-address', () => ({ wallet: base58Encode(base58CheckPayload(Buffer.concat([Buffer.from([0]), Buffer.from(chars(20), 'latin1')]))) }), 'btc');
  tp('json-web-token', () => ({ headers: { authorization: `Bearer ${Buffer.from(JSON.stringify({ alg: 'RS256', kid: chars(8) })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: chars(12), exp: 1700000000 })).toString('base64url')}.${chars(86, alnum + '-_')}` } }), 'jwt');
  tp('br-cpf-formatted', () => {
    const base = digits(9);
    const d1 = cpfDigit(base, 10);
    const d2 = cpfDigit(base + d1, 11);
    const c = base + d1 + d2;
    return { cliente: { documento: `${c.slice(0, 3)}.${c.slice(3, 6)}.${c.slice(6, 9)}-${c.slice(9)}` } };
  }, 'cpf');

  // National identifiers of ~90 countries: the stdnum test vectors, under their own field name.
  for (const d of nationalDetectors) {
    const path = stdnumPathOf(d.id);
    for (const value of (stdnumExamples as Record<string, string[]>)[path] ?? []) {
      // A field named by a word that is a label only as a field name ("uid") when the identifier has one.
      const fieldName = d.fieldNameKeywords?.[0] ?? d.keywords![0]!;
      samples.push({ detector: d.id, body: { record: { [fieldName.replace(/ /g, '_')]: value, updated: '2024-05-01' } }, note: `stdnum ${path}` });
    }
  }

  // Hard negatives.
  neg(() => ({ order: { order_number: digits(16), total: Number((rnd() * 500).toFixed(2)) } }), 'order number 16 digits (Luhn fails half the time: we keep only failing ones)', 0);
  for (let i = 0; i < perDetector * 2; i++) {
    let n = '4' + digits(15);
    while (luhnValid(n)) n = '4' + digits(15);
    samples.push({ detector: null, body: { order: { order_number: n, status: 'shipped' } }, note: 'visa-shaped order number failing Luhn' });
  }
  neg(() => ({ id: uuid(rnd), created_at: new Date(1.6e12 + rnd() * 1e11).toISOString(), ts: 1_600_000_000_000 + Math.floor(rnd() * 1e11) }), 'uuid and timestamps', perDetector * 2);
  neg(() => ({ tracking: { tracking_number: '1Z' + chars(16, 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789'), carrier: 'ups' } }), 'tracking number');
  neg(() => ({ ticket_ref: `${digits(3)}-${digits(3)}-${digits(4)}`.replace(/^./, '1'), queue: 'support' }), 'phone-shaped ticket reference (not a valid NANP area code)');
  neg(() => ({ invoice_id: 'INV-' + digits(9), amount_cents: Math.floor(rnd() * 1e6), sku: digits(12) }), 'invoice / sku');
  // Words that abbreviate an identifier somewhere and are something else far more often, in prose,
  // URLs and ordinary field names, with numbers nearby.
  neg(() => ({ uid: `u-${digits(5)}`, note: `run ${digits(4)}: the ui tests vs the cc list passed on rc ${digits(1)}; see https://docs.example.org/page/${digits(6)}`, epic: `PROJ-${digits(4)}`, bank: 'Chase', vid: digits(8), run: digits(7) }), 'abbreviation-like words (uid, run, ui, vs, cc, rc, .org, epic, bank, vid) near numbers');
  neg(() => {
    for (;;) {
      const s = digits(9);
      if (!abaRoutingValid(s)) return { bank: { routing_number: s } };
    }
  }, 'routing-labelled digits failing ABA');
  neg(() => {
    let s = '1' + digits(9);
    while (npiValid(s)) s = '1' + digits(9);
    return { npi: s };
  }, 'npi-labelled digits failing Luhn');
  neg(() => ({ iban: 'DE00' + digits(18) }), 'iban failing mod-97');
  neg(() => ({ ssn_like: `000-${digits(2)}-${digits(4)}`, other: `666-${digits(2)}-${digits(4)}` }), 'invalid SSN areas');
  neg(() => ({ version: `${1 + Math.floor(rnd() * 9)}.${Math.floor(rnd() * 20)}.${Math.floor(rnd() * 50)}`, build: digits(8), sha: chars(40, '0123456789abcdef') }), 'versions and git shas');
  neg(() => ({ description: 'Quarterly report with 1234 5678 entries, see page 12 of 400', count: 123456789012 }), 'numbers in prose');

  // Cards split by other separators next to a card word (added last: the samples above keep their seeded values).
  const split = (n: string) => {
    const separators = ['_', '/', ' - ', '  ', ' ', '.', '-'];
    const groups = n.match(/\d{1,4}/g)!;
    return groups.map((g, i) => (i === 0 ? g : pick(separators) + g)).join('');
  };
  tp('payment-card-separated', () => ({ note: `card on file: ${split(card(pick(['4', '51', '55', '37', '6011']), 16))}` }), 'card split by mixed or unusual separators');
  tp('payment-card-separated', () => ({ payment: { method: 'visa', card_number: [...card('4', 16)].join(pick([' ', '-', '_'])) } }), 'card with a separator between every digit');
  neg(() => {
    let n = '4' + digits(15);
    while (luhnValid(n)) n = '4' + digits(15);
    return { note: `card ref ${split(n)}` };
  }, 'card-worded digit groups failing Luhn');
  neg(() => ({ note: `card printed ${digits(4)}_${digits(2)}_${digits(2)} batch ${digits(6)}`, shipped: `${digits(4)}/${digits(2)}/${digits(2)}` }), 'card-worded dates and batch numbers');

  // Every other detector, with hard negatives per family (a seed of their own: the samples above keep their values).
  const labelled = new Set(samples.flatMap((s) => (s.detector ? [s.detector] : [])));
  samples.push(...detectorSamples(seed + 1, perDetector / 2, labelled));

  // Credentials in running text and code (added last, without drawing: the samples above keep their values).
  // A tool that reads a repository returns code and docs that name credentials without holding one.
  const codeNamingCredentials = [
    "token_endpoint_auth_method: 'client_secret_basic',",
    'client_secret: options.clientSecret,',
    'client_secret: z.ZodOptional<z.ZodString>;',
    'password?: string;',
    'const password = getPassword();',
    'password: ${DB_PASSWORD}',
    'password: process.env.DB_PASSWORD,',
    'headers["x-api-key"] = config.apiKey;',
    '_password_: password string according to the openApi specification',
    'If the password is incorrect the server answers 401.',
    "[Decoding Token's Protected Header](docs/util/decode_protected_header/functions/decodeProtectedHeader.md)",
    "if (supportedMethods.includes('none')) return token;",
    'Set PASSWORD_RESET_URL to the page that sends a new password.',
    'The access_token field holds the bearer token; token_type is always Bearer.',
  ];
  codeNamingCredentials.forEach((line, i) => {
    samples.push({ detector: null, body: i % 2 === 0 ? { content: [{ type: 'text', text: `// auth.ts\n${line}\n` }] } : { file: 'README.md', text: line }, note: 'code or prose naming a credential, holding none' });
  });
  const credentialsInText = [
    'DB_PASSWORD=Xq7-vLm29sKe',
    'mysql --password Tz81kq0Lm3x -h db.internal',
    'spring.datasource.password=Pw0rd-Rotated-2024',
    'login with the password "winter quarter 77" and change it',
    'The password was Summer2024! until the reset.',
    "config['password'] = 'Zq9-xx81k'",
    'export API_TOKEN=ab12CD34ef56GH78ij90KL12',
    'api_key: "9fK2mQ7xL4pR8sT1vW6yZ3bN"',
  ];
  credentialsInText.forEach((line, i) => {
    samples.push({ detector: i < 6 ? 'password-field' : 'generic-api-key', body: { content: [{ type: 'text', text: `notes from the deploy:\n${line}\n` }] }, note: 'credential assigned in running text' });
  });
  return samples;
}

function cpfDigit(base: string, weight: number): string {
  let sum = 0;
  for (let i = 0; i < base.length; i++) sum += Number(base[i]) * (weight - i);
  const r = (sum * 10) % 11;
  return String(r === 10 ? 0 : r);
}

function uuid(rnd: () => number): string {
  const h = () => Math.floor(rnd() * 16).toString(16);
  const part = (n: number) => Array.from({ length: n }, h).join('');
  return `${part(8)}-${part(4)}-4${part(3)}-a${part(3)}-${part(12)}`;
}

/** A realistic tool result with no sensitive data: an issue tracker page. */
export function cleanToolResult(seed: number, items: number): unknown {
  const rnd = createRandom(seed);
  const words = ['deploy', 'pipeline', 'latency', 'regression', 'cache', 'index', 'timeout', 'retry', 'schema', 'migration', 'dashboard', 'alert', 'query', 'release', 'rollback', 'config', 'the', 'a', 'when', 'after', 'with', 'fails', 'slow', 'fixed', 'users', 'report', 'service'];
  const sentence = (n: number) => Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]).join(' ');
  return {
    jsonrpc: '2.0',
    id: 7,
    result: {
      content: [
        {
          type: 'text',
          text: JSON.stringify({
            total: items,
            issues: Array.from({ length: items }, (_, i) => ({
              id: uuid(rnd),
              number: 1000 + i,
              title: sentence(6),
              state: rnd() < 0.7 ? 'open' : 'closed',
              labels: ['bug', 'p2'].slice(0, 1 + Math.floor(rnd() * 2)),
              created_at: new Date(1.6e12 + rnd() * 1e11).toISOString(),
              updated_ms: 1_600_000_000_000 + Math.floor(rnd() * 1e11),
              comments: Math.floor(rnd() * 40),
              body: sentence(40),
              url: `https://tracker.internal/projects/core/issues/${1000 + i}`,
              assignee: { login: 'user' + Math.floor(rnd() * 500), team: 'platform' },
              estimate_hours: Number((rnd() * 12).toFixed(1)),
            })),
          }),
        },
      ],
    },
  };
}

/** The same shape, dense with sensitive values: customer records. */
export function denseToolResult(seed: number, items: number): unknown {
  const rnd = createRandom(seed);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');
  return {
    jsonrpc: '2.0',
    id: 8,
    result: {
      content: [
        {
          type: 'text',
          text: JSON.stringify({
            customers: Array.from({ length: items }, (_, i) => {
              const partial = '4' + digits(14);
              const bban = digits(18);
              return {
                id: 10_000 + i,
                name: `Customer ${i}`,
                email: `customer${i}@example.com`,
                phone: `+1 415 555 ${digits(4)}`,
                card: partial + luhnCheckDigit(partial),
                iban: `DE${ibanCheckDigits('DE', bban)}${bban}`,
                ssn: `${100 + (i % 500)}-${10 + (i % 80)}-${1000 + (i % 8000)}`,
                note: `Called about order ${digits(8)}; prefers email.`,
              };
            }),
          }),
        },
      ],
    },
  };
}

/**
 * Customer records at a realistic density: about 400 bytes each (ids, dates,
 * address, plan, a sentence of notes) with an email on every record and an
 * IBAN on every third one, so one or two sensitive values per record.
 */
export function customerRecordsToolResult(seed: number, items: number): unknown {
  const rnd = createRandom(seed);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');
  const words = ['renewal', 'invoice', 'onboarding', 'meeting', 'support', 'upgrade', 'the', 'a', 'asked', 'about', 'next', 'quarter', 'team', 'plan', 'seats', 'call', 'notes'];
  const sentence = (n: number) => Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]).join(' ');
  return {
    jsonrpc: '2.0',
    id: 9,
    result: {
      content: [
        {
          type: 'text',
          text: JSON.stringify({
            customers: Array.from({ length: items }, (_, i) => {
              const bban = digits(18);
              return {
                id: uuid(rnd),
                account: 20_000 + i,
                name: `Customer ${i}`,
                company: `Company ${Math.floor(rnd() * 900)} GmbH`,
                email: `customer${i}@example.com`,
                address: { street: `${1 + Math.floor(rnd() * 200)} Market Street`, city: 'Springfield', country: 'DE' },
                plan: rnd() < 0.5 ? 'team' : 'enterprise',
                seats: 1 + Math.floor(rnd() * 300),
                created_at: new Date(1.6e12 + rnd() * 1e11).toISOString(),
                ...(i % 3 === 0 ? { iban: `DE${ibanCheckDigits('DE', bban)}${bban}` } : {}),
                notes: sentence(18),
              };
            }),
          }),
        },
      ],
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const here = dirname(fileURLToPath(import.meta.url));
  const corpus = generateCorpus();
  writeFileSync(join(here, 'corpus.json'), JSON.stringify(corpus) + '\n');
  console.log(`wrote ${corpus.length} labelled samples to test/dlp-corpus/corpus.json`);
}
