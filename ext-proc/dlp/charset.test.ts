import assert from 'node:assert/strict';
import { test } from 'node:test';
import { declaredCharset, charsetParameter, decodeSingleByte, encodeSingleByte } from './charset.ts';

test('the charset parameter is read whatever its case, quoting and place among the parameters', () => {
  assert.equal(charsetParameter('application/json'), null);
  assert.equal(charsetParameter('application/json; charset=UTF-16LE'), 'utf-16le');
  assert.equal(charsetParameter('text/plain;format=flowed; Charset="ISO-8859-1" '), 'iso-8859-1');
  assert.equal(charsetParameter('text/plain; charset= windows-1252'), 'windows-1252');
});

test('answers are read as UTF-8, as a single-byte charset, or not at all', () => {
  assert.deepEqual(declaredCharset('application/json'), { kind: 'utf-8' });
  assert.deepEqual(declaredCharset('application/json; charset=utf8'), { kind: 'utf-8' });
  assert.deepEqual(declaredCharset('text/plain; charset=latin1'), { kind: 'single-byte', charset: 'iso-8859-1' });
  assert.deepEqual(declaredCharset('text/plain; charset=us-ascii'), { kind: 'single-byte', charset: 'iso-8859-1' });
  assert.deepEqual(declaredCharset('text/plain; charset=cp1252'), { kind: 'single-byte', charset: 'windows-1252' });
  for (const charset of ['utf-16le', 'utf-16', 'utf-32', 'shift_jis', 'x-unknown', '']) {
    assert.deepEqual(declaredCharset(`application/json; charset=${charset}`), { kind: 'unsupported', charset });
  }
});

test('every byte decodes and encodes back to itself; windows-1252 is not ISO-8859-1 in 0x80-0x9F', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, byte) => byte));
  for (const charset of ['iso-8859-1', 'windows-1252'] as const) {
    assert.deepEqual(encodeSingleByte(decodeSingleByte(all, charset), charset, false), all, charset);
  }
  assert.equal(decodeSingleByte(Buffer.from([0x80, 0xa0]), 'windows-1252'), '\u20ac\u00a0');
  assert.equal(decodeSingleByte(Buffer.from([0x80, 0xa0]), 'iso-8859-1'), '\u0080\u00a0');
});

test('a character the charset cannot hold is a \\u escape in JSON and "?" elsewhere', () => {
  assert.equal(encodeSingleByte('{"n":"\u2588\u2588 \u20ac"}', 'iso-8859-1', true).toString('latin1'), '{"n":"\\u2588\\u2588 \\u20ac"}');
  assert.deepEqual(encodeSingleByte('{"n":"\u20ac"}', 'windows-1252', true), Buffer.from('{"n":"\x80"}', 'latin1'));
  assert.equal(encodeSingleByte('card \u2588\u2588 1111', 'windows-1252', false).toString('latin1'), 'card ?? 1111');
});
