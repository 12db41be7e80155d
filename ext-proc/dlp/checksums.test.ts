import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  aadhaarValid, abaRoutingValid, arCbuValid, basicAuthValid, bech32AddressValid, bitcoinBase58Valid, canadianSinValid, deaValid, firstCardDigitRun, ibanValid, imeiValid,
  base62, crc32, jwtValid, luhnValid, nhsValid, npiValid, prefixedCrc32TokenValid, ssnValid, verhoeffCheckDigit, vinValid,
} from './checksums.ts';
import { checksummedToken } from './detectors/secrets.ts';
import { builtInDetectors } from './catalogue.ts';

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
test('the DEA, VIN, Basic credentials and track data validators use no JavaScript RegExp', () => {
  const exec = RegExp.prototype.exec;
  let calls = 0;
  RegExp.prototype.exec = function (this: RegExp, text: string) {
    calls++;
    return exec.call(this, text);
  };
  try {
    const byId = new Map(builtInDetectors.map((d) => [d.id, d]));
    const run = (id: string, candidate: string) => byId.get(id)!.validate!(candidate);
    assert.ok(run('us-dea-number', 'AB1234563'));
    assert.ok(run('vehicle-identification-number', '1M8GDM9AXKP042788'));
    assert.ok(run('http-basic-auth-header', `Basic ${Buffer.from('admin:hunter22').toString('base64')}`));
    assert.ok(run('payment-card-track-data', ';4111111111111111=25121010000000000?'));
  } finally {
    RegExp.prototype.exec = exec;
  }
  assert.equal(calls, 0);
});
