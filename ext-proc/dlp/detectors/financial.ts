// Payment cards (PCI-DSS), bank identifiers and crypto wallets.
import { stdnumCheck } from './stdnum-check.ts';
import {
  abaRoutingValid, arCbuValid, bech32AddressValid, bicValid, bitcoinBase58Valid, cardExpiryValid, digitsOf, firstCardDigitRun, ibanValid, luhnValid,
} from '../checksums.ts';
import { checksumConfidence, contextConfidence, weakConfidence, type DetectorDefinition } from '../detector.ts';

const cardKeywords = ['card', 'credit', 'debit', 'visa', 'mastercard', 'amex', 'pan', 'cc_number', 'ccnum', 'payment', 'cardnumber', 'card_number'];
const cardNegative = ['order', 'tracking', 'invoice', 'isbn', 'serial', 'sku', 'reference'];

/** Issuer prefix ranges of the brand detectors below, [digits, first, last]: Visa, Mastercard, Amex, Discover, JCB, Diners, Maestro, Mir. */
const cardBrandPrefixes: [number, number, number][] = [
  [1, 4, 4], [2, 51, 55], [3, 222, 229], [2, 23, 26], [3, 270, 271], [4, 2720, 2720], [2, 34, 34], [2, 37, 37],
  [4, 6011, 6011], [2, 65, 65], [3, 644, 649], [2, 62, 62], [4, 3528, 3529], [3, 353, 358], [3, 300, 305], [2, 36, 36], [2, 38, 38],
  [4, 5018, 5018], [4, 5020, 5020], [4, 5038, 5038], [4, 5893, 5893], [4, 6304, 6304], [4, 6759, 6759], [4, 6761, 6763], [4, 2200, 2204],
];

/** A card's digits (ASCII digits only) start with one of the brands' issuer prefixes. */
export function hasCardBrandPrefix(digits: string): boolean {
  let prefix = 0;
  for (let n = 1; n <= 4 && n <= digits.length; n++) {
    prefix = prefix * 10 + digits.charCodeAt(n - 1) - 48;
    for (const [length, first, last] of cardBrandPrefixes) if (length === n && prefix >= first && prefix <= last) return true;
  }
  return false;
}

/**
 * Card digits split in a way the brand detectors do not accept: groups of up to eight digits with at
 * least one separator that is not a single space, dash or dot (an underscore, slash, comma, colon...,
 * or two or three in a row); or four-digit groups whose space, dash or dot separators are mixed; or one
 * space, dash or dot between every digit.
 */
const separatedCardShape = (() => {
  const any = '[ _/.,:;|*+~-]{1,3}';
  const unusual = '(?:[ .-]{0,2}[_/,:;|*+~][ _/.,:;|*+~-]{0,2}|[ .-]{2,3})';
  const odd = `\\d{1,8}(?:${any}\\d{1,8}){0,17}?${unusual}\\d{1,8}(?:${any}\\d{1,8}){0,17}`;
  const mixed = '\\d{4}(?: \\d{4}(?: \\d{4}[-.]|[-.]\\d{4}[ .-])|-\\d{4}(?:-\\d{4}[ .]|[ .]\\d{4}[ .-])|\\.\\d{4}(?:\\.\\d{4}[ -]|[ -]\\d{4}[ .-]))\\d{1,7}';
  const spread = '\\d(?:[ .-]\\d){12,18}';
  return `\\b(?:${odd}|${mixed}|${spread})\\b`;
})();

/** Luhn over the digits of the candidate (separators skipped), 13 to 19 of them. */
const luhnCard = (c: string) => {
  let sum = 0;
  let n = 0;
  for (let i = c.length - 1; i >= 0; i--) {
    let d = c.charCodeAt(i) - 48;
    if (d < 0 || d > 9) continue;
    if (n % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    n++;
  }
  return n >= 13 && n <= 19 && sum % 10 === 0;
};

function card(id: string, brand: string, pattern: string, example: string): DetectorDefinition {
  return {
    id,
    group: 'financial',
    dataClass: 'payment-card',
    description: `${brand} payment card number (PAN), Luhn-validated`,
    examples: [example],
    pattern: `\\b${pattern}\\b`,
    keywords: cardKeywords,
    negativeKeywords: cardNegative,
    validation: 'checksum',
    validate: luhnCard,
    confidence: checksumConfidence,
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  };
}

/** Groups of digits with one consistent separator (none, space, dash or dot), so UUID pieces do not look like cards. */
function grouped(first: string, groups: number[]): string {
  const rest = (sep: string) => groups.map((n) => `${sep}\\d{${n}}`).join('');
  return `${first}(?:${rest('')}|${rest(' ')}|${rest('-')}|${rest('\\.')})`;
}
export const financialDetectors: DetectorDefinition[] = [
  card('payment-card-visa', 'Visa', `${grouped('4\\d{3}', [4, 4, 4])}(?:\\d{3})?`, '4111 1111 1111 1111'),
  card('payment-card-mastercard', 'Mastercard', grouped('(?:5[1-5]\\d{2}|222[1-9]|22[3-9]\\d|2[3-6]\\d{2}|27[01]\\d|2720)', [4, 4, 4]), '5555-5555-5555-4444'),
  card('payment-card-amex', 'American Express', grouped('3[47]\\d{2}', [6, 5]), '378282246310005'),
  card('payment-card-discover', 'Discover', grouped('6(?:011|5\\d{2}|4[4-9]\\d)', [4, 4, 4]), '6011111111111117'),
  card('payment-card-jcb', 'JCB', grouped('35(?:2[89]|[3-8]\\d)', [4, 4, 4]), '3530111333300000'),
  card('payment-card-diners', 'Diners Club', grouped('3(?:0[0-5]|[68]\\d)\\d', [6, 4]), '30569309025904'),
  card('payment-card-unionpay', 'UnionPay', `${grouped('62\\d{2}', [4, 4, 4])}(?:\\d{3})?`, '6200000000000005'),
  card('payment-card-maestro', 'Maestro', `(?:5018|5020|5038|5893|6304|6759|676[1-3])\\d{8,15}`, '6759649826438453'),
  card('payment-card-mir', 'Mir', grouped('220[0-4]', [4, 4, 4]), '2200 0000 0000 0004'),
  {
    // The brand detectors above accept no separator or one consistent space, dash or dot between
    // groups, which keeps UUID pieces and references out. A card written so as not to look like one
    // (underscores, slashes, mixed or doubled separators, one between every digit) has a shape of its
    // own that ordinary text seldom has, so this detector costs nothing until such a shape appears;
    // then only a card word nearby (in the text or the field name) lifts it over the confidence bar.
    id: 'payment-card-separated',
    group: 'financial',
    dataClass: 'payment-card',
    description: 'Payment card number (PAN) with its digits split by other separators (underscores, slashes, mixed or repeated), next to a card word; Luhn-validated, known brand prefix',
    examples: ['card: 4539_1488_0343_6467', 'visa 4539/1488/0343/6467', 'card 4539-1488 0343.6467', 'card 4 5 3 9 1 4 8 8 0 3 4 3 6 4 6 7'],
    pattern: separatedCardShape,
    keywords: cardKeywords,
    negativeKeywords: cardNegative,
    validation: 'checksum',
    validate: (c) => luhnCard(c) && hasCardBrandPrefix(digitsOf(c)),
    // Below the default bar (0.6) alone, over it with a card word nearby.
    confidence: { base: 0.3, contextBoost: 0.55, negativePenalty: 0.3 },
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'payment-card-track-data',
    group: 'financial',
    dataClass: 'payment-card',
    description: 'Magnetic stripe track 1/2 data (card number with expiry and service code)',
    examples: ['%B4111111111111111^DOE/JOHN^2512101000000000?', ';4111111111111111=25121010000000000?'],
    pattern: '(?:%B\\d{13,19}\\^[^^\\n]{2,26}\\^\\d{4}|;\\d{13,19}=\\d{4})\\d{0,40}\\??',
    validation: 'structure',
    validate: (c) => luhnValid(firstCardDigitRun(c)),
    confidence: { base: 0.95, contextBoost: 0.04, negativePenalty: 0.1 },
    profiles: ['pci-dss'],
    maskKeep: 0,
  },
  {
    id: 'payment-card-cvv',
    group: 'financial',
    dataClass: 'card-security-code',
    description: 'Card verification value (CVV/CVC) next to its label',
    examples: ['cvv: 123'],
    pattern: '\\b\\d{3,4}\\b',
    keywords: ['cvv', 'cvc', 'cvv2', 'cvc2', 'cid', 'security code', 'card_verification'],
    requiresContext: true,
    contextWindow: 12,
    confidence: contextConfidence,
    profiles: ['pci-dss'],
    maskKeep: 0,
  },
  {
    id: 'payment-card-expiry',
    group: 'financial',
    dataClass: 'card-expiry',
    description: 'Card expiry date next to its label',
    examples: ['exp: 12/27'],
    pattern: '\\b\\d{2}\\s?[/-]\\s?(?:\\d{4}|\\d{2})\\b',
    keywords: ['exp', 'expiry', 'expiration', 'valid thru', 'exp_date', 'expiry_date'],
    requiresContext: true,
    contextWindow: 16,
    validation: 'structure',
    validate: cardExpiryValid,
    confidence: weakConfidence,
    profiles: ['pci-dss'],
    maskKeep: 0,
  },
  {
    id: 'iban',
    group: 'financial',
    dataClass: 'bank-account',
    description: 'International Bank Account Number, country length and ISO 7064 mod-97 validated',
    examples: ['DE89 3704 0044 0532 0130 00', 'GB82WEST12345698765432'],
    pattern: '\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\\b',
    keywords: ['iban', 'account', 'bank'],
    validation: 'checksum',
    validate: ibanValid,
    confidence: { base: 0.9, contextBoost: 0.08, negativePenalty: 0.2 },
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'us-aba-routing-number',
    group: 'financial',
    dataClass: 'bank-routing',
    description: 'US ABA routing transit number (3-7-1 checksum, Federal Reserve prefix) next to its label',
    examples: ['routing number 021000021'],
    pattern: '\\b\\d{9}\\b',
    keywords: ['routing', 'aba', 'rtn', 'routing_number', 'transit'],
    requiresContext: true,
    validation: 'checksum',
    validate: abaRoutingValid,
    confidence: checksumConfidence,
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 0,
  },
  {
    id: 'us-bank-account-number',
    group: 'financial',
    dataClass: 'bank-account',
    description: 'Bank account number (8-17 digits) next to an account label',
    examples: ['account number: 000123456789'],
    pattern: '\\b\\d{8,17}\\b',
    keywords: ['account number', 'account_number', 'acct', 'bank account', 'checking', 'savings', 'accountnumber'],
    requiresContext: true,
    contextWindow: 24,
    confidence: weakConfidence,
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'swift-bic',
    group: 'financial',
    dataClass: 'bank-identifier',
    description: 'SWIFT/BIC bank identifier code next to its label',
    examples: ['swift: DEUTDEFF500'],
    pattern: '\\b[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\\b',
    keywords: ['swift', 'bic', 'swift_code', 'bic_code'],
    requiresContext: true,
    contextWindow: 16,
    validation: 'structure',
    validate: bicValid,
    confidence: weakConfidence,
    profiles: ['gdpr-pii'],
    maskKeep: 0,
  },
  {
    id: 'mx-clabe',
    group: 'financial',
    dataClass: 'bank-account',
    description: 'Mexican CLABE bank account (18 digits, weighted check digit via stdnum)',
    examples: ['clabe 002010077777777771'],
    pattern: '\\b\\d{18}\\b',
    keywords: ['clabe'],
    requiresContext: true,
    validation: 'checksum',
    validate: stdnumCheck('MX.clabe'),
    confidence: checksumConfidence,
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'ar-cbu',
    group: 'financial',
    dataClass: 'bank-account',
    description: 'Argentine CBU bank account (22 digits, two check digits)',
    examples: ['cbu 2850590940090418135201'],
    pattern: '\\b\\d{22}\\b',
    keywords: ['cbu'],
    requiresContext: true,
    validation: 'checksum',
    validate: arCbuValid,
    confidence: checksumConfidence,
    profiles: ['pci-dss', 'gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'bitcoin-address',
    group: 'crypto',
    dataClass: 'crypto-wallet',
    description: 'Bitcoin legacy address (base58check, double SHA-256 checksum)',
    examples: ['1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2'],
    pattern: '\\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\\b',
    keywords: ['bitcoin', 'btc', 'wallet'],
    validation: 'checksum',
    validate: bitcoinBase58Valid,
    confidence: { base: 0.85, contextBoost: 0.1, negativePenalty: 0.2 },
    profiles: ['gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'bitcoin-segwit-address',
    group: 'crypto',
    dataClass: 'crypto-wallet',
    description: 'Bitcoin segwit address (bech32/bech32m checksum)',
    examples: ['bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'],
    pattern: '\\b(?:bc|tb)1[02-9ac-hj-np-z]{11,71}\\b',
    keywords: ['bitcoin', 'btc', 'wallet'],
    validation: 'checksum',
    validate: bech32AddressValid,
    confidence: { base: 0.9, contextBoost: 0.08, negativePenalty: 0.2 },
    profiles: ['gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'ethereum-address',
    group: 'crypto',
    dataClass: 'crypto-wallet',
    description: 'Ethereum address (0x + 40 hex) next to a wallet label',
    examples: ['wallet 0x52908400098527886E0F7030069857D2E4169EE7'],
    pattern: '\\b0x[0-9a-fA-F]{40}\\b',
    keywords: ['eth', 'ethereum', 'wallet', 'address'],
    requiresContext: true,
    confidence: contextConfidence,
    profiles: ['gdpr-pii'],
    maskKeep: 4,
  },
  {
    id: 'crypto-private-key-hex',
    group: 'crypto',
    dataClass: 'credential',
    description: 'Raw 256-bit private key (64 hex) next to a private-key label',
    examples: ['private_key: 4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'],
    pattern: '\\b(?:0x)?[0-9a-fA-F]{64}\\b',
    keywords: ['private key', 'private_key', 'privatekey', 'secret key', 'mnemonic', 'seed'],
    requiresContext: true,
    contextWindow: 24,
    confidence: contextConfidence,
    profiles: ['secrets'],
    maskKeep: 0,
  },
];
