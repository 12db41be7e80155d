import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  auMedicareValid, base58Decode, bicValid, cardExpiryValid, ipv4Valid, looksRandom, mbiValid,
  aadhaarValid, abaRoutingValid, arCbuValid, basicAuthValid, bech32AddressValid, bitcoinBase58Valid, canadianSinValid, deaValid, firstCardDigitRun, ibanValid, imeiValid,
  base62, crc32, jwtValid, luhnValid, nhsValid, npiValid, prefixedCrc32TokenValid, ssnValid, verhoeffCheckDigit, vinValid,
} from './checksums.ts';
import { checksummedToken } from './detectors/secrets.ts';
import { stdnumValidators } from './detectors/stdnum-check.ts';
import { hasCardBrandPrefix } from './detectors/financial.ts';
import { builtInDetectors } from './catalogue.ts';
import { isUnicodeLetterOrDigit } from './fingerprint.ts';
import { isTopLevelId } from './inspect.ts';
import { labelBefore } from './scan.ts';
import { isJsonLinesType } from './stream.ts';

test('Luhn accepts published test card numbers and rejects a changed digit', () => {
  assert.ok(luhnValid('4111111111111111'));
  assert.ok(luhnValid('378282246310005'));
  assert.equal(luhnValid('4111111111111112'), false);
});

test('IBAN mod-97 and per-country length', () => {
  assert.ok(ibanValid('GB82 WEST 1234 5698 7654 32'));
  assert.ok(ibanValid('DE89370400440532013000'));
  assert.equal(ibanValid('DE89370400440532013001'), false);
  assert.equal(ibanValid('DE8937040044053201300'), false, 'wrong length for DE');
});

test('ABA routing 3-7-1 checksum', () => {
  assert.ok(abaRoutingValid('021000021'));
  assert.ok(abaRoutingValid('011000015'));
  assert.equal(abaRoutingValid('021000022'), false);
});

test('NPI uses Luhn over the 80840 prefix', () => {
  assert.ok(npiValid('1234567893'));
  assert.equal(npiValid('1234567890'), false);
});

test('Argentine CBU: both check digits, a check digit of 0 included (stdnum 1.12 rejects those)', () => {
  assert.ok(arCbuValid('2850590940090418135201'));
  assert.ok(arCbuValid('5708549090690444780490'), 'both blocks end in a check digit of 0');
  for (let i = 0; i < 22; i++) {
    const changed = `5708549090690444780490`.slice(0, i) + String((Number('5708549090690444780490'[i]) + 1) % 10) + '5708549090690444780490'.slice(i + 1);
    assert.equal(arCbuValid(changed), false, changed);
  }
  assert.equal(arCbuValid('570854909069044478049'), false);
  assert.equal(arCbuValid('5708549-090690444780490'), false);
});

test('DEA check digit', () => {
  assert.ok(deaValid('AB1234563'));
  assert.equal(deaValid('AB1234564'), false);
});

test('NHS mod-11', () => {
  assert.ok(nhsValid('943 476 5919'));
  assert.equal(nhsValid('943 476 5918'), false);
});

test('Verhoeff / Aadhaar', () => {
  const partial = '23456789012';
  const full = partial + verhoeffCheckDigit(partial);
  assert.ok(aadhaarValid(full));
  const wrong = partial + String((Number(full.at(-1)) + 1) % 10);
  assert.equal(aadhaarValid(wrong), false);
  assert.equal(aadhaarValid('1' + full.slice(1)), false, 'Aadhaar never starts with 0 or 1');
});

test('SSN area, group and serial rules', () => {
  assert.ok(ssnValid('123-45-6788'));
  for (const bad of ['000-12-3456', '666-12-3456', '900-12-3456', '123-00-4567', '123-45-0000', '078-05-1120']) assert.equal(ssnValid(bad), false, bad);
});

test('IMEI and Canadian SIN use Luhn', () => {
  assert.ok(imeiValid('490154203237518'));
  assert.equal(imeiValid('490154203237519'), false);
  assert.ok(canadianSinValid('130 692 544'));
  assert.equal(canadianSinValid('130 692 545'), false);
  assert.equal(canadianSinValid('046 454 286'), false, 'SINs starting with 0 are not issued');
});

test('GitHub token CRC32 checksum', () => {
  assert.equal(crc32('123456789'), 0xcbf43926, 'the CRC-32 check value');
  assert.equal(base62(0xcbf43926, 6), '3jZRME');
  const token = checksummedToken('ghp', 'abcdefghijklmnopqrstuvwxyz0123');
  assert.ok(prefixedCrc32TokenValid(token));
  assert.equal(prefixedCrc32TokenValid(token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a')), false);
});

test('JWT is decoded, not just shape-matched', () => {
  const head = Buffer.from('{"alg":"HS256"}').toString('base64url');
  const body = Buffer.from('{"sub":"x"}').toString('base64url');
  assert.ok(jwtValid(`${head}.${body}.sig`));
  assert.equal(jwtValid(`${body}.${body}.sig`), false, 'header without alg');
  assert.equal(jwtValid('eyJhbGciOi.eyJzdWIi.sig'), false, 'not decodable JSON');
});

test('crypto addresses: base58check and bech32', () => {
  assert.ok(bitcoinBase58Valid('1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2'));
  assert.equal(bitcoinBase58Valid('1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3'), false);
  assert.ok(bech32AddressValid('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'));
  assert.equal(bech32AddressValid('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp'), false);
});

test('VIN check digit', () => {
  assert.ok(vinValid('1M8GDM9AXKP042788'));
  assert.equal(vinValid('1M8GDM9A1KP042788'), false);
});

test('DEA, VIN and Basic credentials: the edges of their rules', () => {
  assert.ok(deaValid('ab1234563'), 'lower case is read as upper case');
  assert.ok(deaValid('A91234563'), 'a 9 stands for a business name starting with a digit');
  assert.equal(deaValid('IB1234563'), false, 'I is not a registrant letter');
  assert.equal(deaValid('AB12345630'), false);
  assert.equal(deaValid('AB123456'), false);
  assert.ok(vinValid('1m8gdm9axkp042788'));
  assert.equal(vinValid('1M8GDM9AXKP04278'), false);
  assert.equal(vinValid('1M8GDM9AXKP0427O8'), false, 'no I, O or Q in a VIN');
  const basic = (decoded: string, scheme = 'Basic ') => basicAuthValid(scheme + Buffer.from(decoded).toString('base64'));
  assert.ok(basic('admin:hunter22'));
  assert.ok(basic('a:b:c'), 'the password may hold a colon');
  assert.ok(basic('user:pass word'), 'and spaces');
  assert.ok(basic('admin:hunter22', 'bASIC \t'));
  assert.ok(basic('admin:hunter22', ''), 'the scheme is optional');
  assert.equal(basic('ad min:hunter22'), false, 'no space in the user');
  assert.equal(basic(':hunter22'), false);
  assert.equal(basic('admin:'), false);
  assert.equal(basic('admin:tab\there'), false);
  assert.ok(basic(`${'u'.repeat(128)}:p`));
  assert.equal(basic(`${'u'.repeat(129)}:p`), false);
  assert.ok(basic(`u:${'p'.repeat(256)}`));
  assert.equal(basic(`u:${'p'.repeat(257)}`), false);
  assert.ok(basic(`u:u:${'p'.repeat(256)}`), 'a later colon leaves the password its length');
});

test('track data: the card number is the first run of 13 to 19 digits', () => {
  assert.equal(firstCardDigitRun('%B4111111111111111^DOE/JOHN^2512101000000000?'), '4111111111111111');
  assert.equal(firstCardDigitRun(';123=4111111111111111=2512'), '4111111111111111');
  assert.equal(firstCardDigitRun(';41111111111111110000000=25'), '4111111111111111000');
  assert.equal(firstCardDigitRun('4111111111111111'), '4111111111111111');
  assert.equal(firstCardDigitRun(';411111111111=2512'), '');
});

// Validators run on candidates in the data path, where no backtracking regular expression engine runs.
test('the data path runs no JavaScript RegExp: every validator but stdnum\'s, and the checks on matched text', () => {
  const byId = new Map(builtInDetectors.map((d) => [d.id, d]));
  const ours = builtInDetectors.filter((d) => d.validate && !stdnumValidators.has(d.validate));
  assert.ok(ours.length >= 40, `${ours.length} validators of our own`);
  for (const id of ['payment-card-separated', 'payment-card-expiry', 'swift-bic', 'us-mbi', 'ipv4-address', 'ipv6-address', 'au-medicare-number', 'imei', 'bitcoin-address', 'passport-number', 'generic-api-key']) {
    assert.ok(ours.includes(byId.get(id)!), id);
  }
  // Candidates: each detector's examples, whole and cut at separators, and text of every kind.
  const candidates = new Set<string>(['', '1', 'abc', '0000000000', '12/25', '12 - 2025', 'DEUTDEFF500', '1EG4-TE5-MK73', '::1', '203.0.113.42', '4539_1488_0343_6467', 'C03005988', 'aZ3xQ9mK2pL8vN4tR7wY1bC6', 'İſ٣\u00a0\u3000é😀']);
  for (const d of builtInDetectors) for (const e of d.examples ?? []) {
    candidates.add(e);
    for (const part of e.split(/[:=]\s*|\s+/)) candidates.add(part);
  }
  isUnicodeLetterOrDigit(0xe9); // (a block's table is worked out from its code points when first met)
  const exec = RegExp.prototype.exec;
  let calls = 0;
  RegExp.prototype.exec = function (this: RegExp, text: string) {
    calls++;
    return exec.call(this, text);
  };
  try {
    for (const d of ours) for (const c of candidates) d.validate!(c);
    for (const c of candidates) {
      labelBefore(c.toLowerCase());
      isTopLevelId(c);
      isJsonLinesType(c);
    }
    isJsonLinesType('application/x-ndjson; charset=utf-8');
    isUnicodeLetterOrDigit(0xea);
  } finally {
    RegExp.prototype.exec = exec;
  }
  assert.equal(calls, 0);
});

test('structure checks at their edges (character checks, no regular expressions)', () => {
  assert.deepEqual(['4', '51', '55', '2221', '2720', '271', '34', '37', '6011', '65', '644', '62', '3528', '353', '300', '36', '38', '5018', '6763', '2204'].map(hasCardBrandPrefix), Array(20).fill(true));
  assert.deepEqual(['50', '56', '2210', '2730', '33', '6010', '643', '3527', '359', '306', '37'.slice(0, 1), '', '1'].map(hasCardBrandPrefix), [false, false, false, false, false, false, false, false, false, false, false, false, false]);
  assert.deepEqual(['12/25', '01-2030', '12 / 25', '12\u00a0/\u300025', '12 /25'].map(cardExpiryValid), [true, true, true, true, true]);
  assert.deepEqual(['13/25', '00/25', '12/2', '12/253', '12  /25', '12/25\n', '1a/25', '12.25', '12/25 '].map(cardExpiryValid), Array(9).fill(false));
  assert.deepEqual(['DEUTDEFF', 'DEUTDEFF500', 'BOFAUS3N', 'CHASUS33XXX'].map(bicValid), [true, true, true, true]);
  assert.deepEqual(['DEUTXXFF', 'DEU1DEFF', 'DEUTDEFF50', 'deutdeff', 'DEUTDEFF5000', 'DEUTDEfF'].map(bicValid), Array(6).fill(false));
  assert.deepEqual(['1EG4-TE5-MK73', '1eg4te5mk73', '9AA0A00AA00'].map(mbiValid), [true, true, true]);
  assert.deepEqual(['0EG4-TE5-MK73', '1BG4-TE5-MK73', '1EG4-TE5-MK7', '1EG4-TE5-MK73-', '1EGA-TE5-MK73', '1EG4-SE5-MK73'].map(mbiValid), [false, false, false, true, false, false]);
  assert.deepEqual(['2123456701', '6123456701', '1123456701', '7123456701'].map((n) => auMedicareValid(n) || n[0] === '2' || n[0] === '6'), [true, true, false, false]);
  assert.deepEqual(['0.0.0.0', '255.255.255.255', '1.2.3.4'].map(ipv4Valid), [true, true, true]);
  assert.deepEqual(['256.1.1.1', '01.1.1.1', '1.2.3', '1.2.3.4.5', '1..3.4', '1.2.3.٣', '1.2.3.+4', '1.2.3.4 '].map(ipv4Valid), Array(8).fill(false));
  assert.equal(base58Decode('11')!.toString('hex'), '0000');
  assert.equal(base58Decode('112')!.toString('hex'), '000001');
  assert.equal(base58Decode('10'), null);
  assert.equal(looksRandom('aaaaaaaaaaaaaaaaaaaa'), false);
  assert.equal(looksRandom('q8Zr2LmX4vT9bN6cK1pW'), true);
  assert.equal(looksRandom('qzrlmxvtbnckpwasdfgh'), false, 'one class of characters');
});

test('a label before a match, top-level ids and JSON-lines types, read without regular expressions', () => {
  assert.equal(labelBefore('charged to card number: '), 'charged to card');
  assert.equal(labelBefore('invoice no. #'), 'invoice');
  assert.equal(labelBefore('order ref-id = '), 'order');
  assert.equal(labelBefore('card_no '), 'card_no', 'a word glued by "_" is no label');
  assert.equal(labelBefore('ids '), 'ids');
  assert.equal(labelBefore('line one\nref '), '');
  assert.equal(labelBefore('x'.repeat(40) + ' code '), 'x'.repeat(26));
  assert.deepEqual(['$.id', '$[0].id', '$[12].id'].map(isTopLevelId), [true, true, true]);
  assert.deepEqual(['$[].id', '$.ids', '$.a.id', '$[1a].id', '$.id ', 'x$.id'].map(isTopLevelId), Array(6).fill(false));
  assert.deepEqual(['application/x-ndjson', 'Application/JSONL; charset=utf-8', 'application/json-seq', 'application/jsonlİ'].map(isJsonLinesType), [true, true, true, true]);
  assert.deepEqual(['application/json', 'application/jsonlx', 'text/x-ndjson', 'application/ndjson_x', 'applicatıon/ndjson'].map(isJsonLinesType), Array(5).fill(false));
});
