import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { compileDataProtection, type CompiledDataProtection } from './compile.ts';
import { inspectBody, inspectJson } from './inspect.ts';
import { decode } from './scan.ts';

const request = { direction: 'request' as const, upstream: 'mailer', tool: 'send_email' };

function compile(policy: object): CompiledDataProtection & { ok: true } {
  const c = compileDataProtection(policy as never);
  assert.ok(c.ok, JSON.stringify(!c.ok && c.issues));
  return c;
}

const all = compile({ defaultAction: 'redact' });

/** The short values: a bare card (16 and 15 digits), an SSN with dashes (11 characters), an AWS key. */
const values: [string, string][] = [
  ['4539148803436467', 'payment-card-visa'],
  ['378282246310005', 'payment-card-amex'],
  ['123-45-6788', 'us-ssn'],
  ['AKIAZ3MQ7HW2XK4JLP5R', 'aws-access-key-id'],
];

const spellings: [string, (s: string) => string][] = [
  ['base64', (s) => Buffer.from(s).toString('base64')],
  ['base64 without padding', (s) => Buffer.from(s).toString('base64').replace(/=+$/, '')],
  ['base64url', (s) => Buffer.from(s).toString('base64url')],
];

function found(value: unknown): string[] {
  return inspectJson(all, value, request).findings.map((f) => `${f.location} ${f.detector}`);
}

test('short values in base64 (standard, unpadded, URL-safe) are decoded: alone, in prose, in JSON nested in a string', () => {
  for (const [value, detector] of values) {
    for (const [name, encode] of spellings) {
      const encoded = encode(value);
      assert.deepEqual(found({ v: encoded }), [`$.v (base64) ${detector}`], `${name} of ${value}: ${encoded}`);
      assert.deepEqual(found({ v: `please forward ${encoded} to accounts` }), [`$.v (base64) ${detector}`], `${name} of ${value} in prose`);
      assert.deepEqual(found({ v: `payload=${encoded};` }), [`$.v (base64) ${detector}`], `${name} of ${value} after "payload="`);
      assert.deepEqual(found({ v: JSON.stringify({ data: encoded }) }), [`$.v<json>.data (base64) ${detector}`], `${name} of ${value} in nested JSON`);
      const raw = inspectBody(all, Buffer.from(JSON.stringify({ note: encoded })), request);
      assert.deepEqual(raw.findings.map((f) => f.detector), [detector], `${name} of ${value}, raw body`);
      assert.equal(raw.value.toString().includes(encoded), false, 'the run is redacted whole');
    }
  }
  assert.deepEqual(found({ v: Buffer.from('ssn 123-45-6788').toString('base64') }), ['$.v (base64) us-ssn']);
});

test('URL-safe base64 with "-" or "_" among its first characters, and base64 after a path or a dashed name', () => {
  const text = 'ab?cd>4539148803436467';
  assert.match(Buffer.from(text).toString('base64url'), /^[^-_]{0,11}[-_]/);
  assert.deepEqual(found({ v: Buffer.from(text).toString('base64url') }), ['$.v (base64) payment-card-visa']);
  assert.deepEqual(found({ v: Buffer.from(text).toString('base64') }), ['$.v (base64) payment-card-visa']);
  const card = Buffer.from('4539148803436467').toString('base64');
  const r = inspectJson(all, { a: `see /files/${card}`, b: `id-${Buffer.from('4539148803436467').toString('base64url')}` }, request);
  assert.deepEqual(r.value, { a: 'see /files/[REDACTED:payment-card]', b: 'id-[REDACTED:payment-card]' });
});

test('short values in hex are decoded: an SSN is 22 hex digits', () => {
  for (const [value, detector] of values) {
    const hex = Buffer.from(value).toString('hex');
    assert.deepEqual(found({ v: hex }), [`$.v (hex) ${detector}`], hex);
    assert.deepEqual(found({ v: `dump ${hex.toUpperCase()} end` }), [`$.v (hex) ${detector}`], hex);
  }
});

test('long identifiers, words, UUIDs and hashes are not decoded into findings', () => {
  const words = [
    'internationalization', 'INTERNATIONALIZATION', 'getElementsByClassName', 'XMLHttpRequestEventTarget', 'ProcessingResponseHeaderMutation',
    'createDataProtectionCompiler', 'AbstractSingletonProxyFactoryBean', 'shouldComponentUpdate', 'mandate_gateway_listener_name',
    'Supercalifragilistic', 'ThisIsAVeryLongIdentifierName2024', 'SomeModule/SubModule/ComponentName', 'a3f1c2d4-5b6a-4c3d-9e8f-0a1b2c3d4e5f',
  ];
  for (let i = 0; i < 50; i++) {
    const sha1 = createHash('sha1').update(`x${i}`).digest('hex');
    const sha256 = createHash('sha256').update(`x${i}`).digest('hex');
    words.push(sha1, sha256, sha256.toUpperCase(), createHash('md5').update(`x${i}`).digest('base64'), createHash('sha256').update(`x${i}`).digest('base64url'));
    words.push(crypto.randomUUID(), crypto.randomUUID().toUpperCase(), crypto.randomUUID().replaceAll('-', ''));
    // hashes decode to bytes that are not text: dropped before any detector reads them
    assert.equal(decode('hex', sha1), null, sha1);
    assert.equal(decode('hex', sha256), null, sha256);
  }
  const r = inspectJson(all, { items: words, prose: words.join(' '), named: Object.fromEntries(words.map((w, i) => [`field${i}`, w])) }, request);
  assert.deepEqual(r.findings, []);
  assert.equal(r.changed, false);
});
