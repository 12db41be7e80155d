import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDataProtection } from './compile.ts';
import { binaryTypes, createStreamInspector, looksBinary, rawStreamTail } from './stream.ts';

const compiled = compileDataProtection({ defaultAction: 'mask', maxStreamHoldBytes: 4096 } as never);
const ctx = { direction: 'response' as const, upstream: 'billing' };

function feed(inspector: ReturnType<typeof createStreamInspector>, text: string, size: number): { out: string; emittedBeforeEnd: number } {
  let out = '';
  let emittedBeforeEnd = 0;
  for (let i = 0; i < text.length; i += size) {
    const piece = inspector.push(Buffer.from(text.slice(i, i + size)));
    emittedBeforeEnd += piece.length;
    out += piece.toString();
  }
  out += inspector.end().toString();
  return { out, emittedBeforeEnd };
}

test('SSE: a card number split across chunks is masked; events stay well-formed JSON-RPC', () => {
  const events = [1, 2, 3].map((id) => `event: message\nid: ${id}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `card 4111 1111 1111 1111 row ${id}` }] } })}\n\n`).join('');
  for (const size of [1, 7, 33]) {
    const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
    const { out } = feed(inspector, events, size);
    assert.ok(!out.includes('4111 1111 1111 1111'), `chunk size ${size}`);
    const parsed = out.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
    assert.equal(parsed.length, 3);
    assert.equal(parsed[2].result.content[0].text, 'card **** **** **** 1111 row 3');
    assert.ok(out.includes('id: 2\n'));
    assert.equal(inspector.findings().length, 3);
  }
});

test('SSE: complete events flow immediately, only the incomplete one is held', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream; charset=utf-8' });
  const first = inspector.push(Buffer.from('data: {"a":1}\n\ndata: {"b":'));
  assert.equal(first.toString(), 'data: {"a":1}\n\n');
  assert.equal(inspector.push(Buffer.from('2}\n\n')).toString(), 'data: {"b":2}\n\n');
});

test('raw text stream: split values are masked, output keeps flowing with a bounded tail', () => {
  const line = 'log line with card 4111111111111111 and more words here\n';
  const text = line.repeat(40);
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' });
  const { out, emittedBeforeEnd } = feed(inspector, text, 13);
  assert.equal(out, text.replaceAll('4111111111111111', '************1111'));
  assert.ok(emittedBeforeEnd >= text.length - rawStreamTail - line.length, 'stream kept flowing before end()');
  assert.equal(inspector.findings().length, 40);
});

test('SSE event larger than the hold limit is inspected as text and released', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
  const big = 'data: ' + 'x'.repeat(5000) + ' 4111111111111111';
  const out = inspector.push(Buffer.from(big)).toString();
  assert.ok(out.length > 4096);
  assert.ok(!out.includes('4111111111111111'));
});

test('multi-byte characters split across chunks survive', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' });
  const bytes = Buffer.from('Käufer ✓ '.repeat(50));
  let out = '';
  for (let i = 0; i < bytes.length; i += 5) out += inspector.push(bytes.subarray(i, i + 5)).toString();
  out += inspector.end().toString();
  assert.equal(out, bytes.toString());
});

test('looksBinary: NUL bytes, control bytes or bytes that are not UTF-8 are binary; text in any script is not', () => {
  assert.equal(looksBinary(Buffer.from('{"card":"4111 1111 1111 1111"}')), false);
  assert.equal(looksBinary(Buffer.from('café 中文 ١٢٣\n\ttab')), false);
  assert.equal(looksBinary(Buffer.from('中文').subarray(0, 4)), false, 'a character cut at the end of the sample is still text');
  assert.equal(looksBinary(Buffer.alloc(0)), false);
  assert.equal(looksBinary(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d])), true, 'PNG signature');
  assert.equal(looksBinary(Buffer.from([0x1f, 0x8b, 0x08, 0x00])), true, 'gzip');
  assert.equal(looksBinary(Buffer.from([0xff, 0xfe, 0x41, 0x42, 0x43])), true, 'not UTF-8');
  assert.equal(looksBinary(Buffer.from('ab\x01\x02\x03\x04cd')), true, 'mostly control bytes');
  assert.equal(binaryTypes.test('image/png') && binaryTypes.test('application/pdf') && !binaryTypes.test('application/octet-stream') && !binaryTypes.test(''), true);
});
